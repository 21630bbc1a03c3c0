"""Retries of failing handlers, checked on the wire (CONTRACT.md, "Failure handling").

Every clause is observed through the raw aiormq client: queue depths, the copies in
``<q>.delay`` (taken as they arrive and put back), the dead-lettered copy in ``<q>.dlq``, and
handler call times measured with ``loop.time()`` (lower bounds only: a delay was respected).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import aiormq
import aiormq.abc
from aiormq import spec

from eventrabbit import RetryConfig
from tests.conftest import Names, Services
from tests.helpers import Calls, assert_absent, collect, event, eventually, publish_raw, queue_depth

Channel = aiormq.abc.AbstractChannel

#: Headers RabbitMQ owns; a retry or dead-letter copy must not carry them.
BROKER_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)


# --- local helpers ------------------------------------------------------------------------


async def peek(channel: Channel, queue: str) -> aiormq.abc.DeliveredMessage | None:
    """The head of ``queue`` without taking it (one basic.get, then reject with requeue)."""
    message = await channel.basic_get(queue, no_ack=False)
    if not isinstance(message.delivery, spec.Basic.GetOk):
        return None
    assert message.delivery_tag is not None
    await channel.basic_reject(message.delivery_tag, requeue=True)
    return message


def headers_of(message: aiormq.abc.DeliveredMessage) -> dict[str, Any]:
    return dict(message.header.properties.headers or {})


def assert_no_broker_headers(message: aiormq.abc.DeliveredMessage) -> None:
    present = sorted(set(headers_of(message)) & set(BROKER_HEADERS))
    assert not present, f"broker-owned headers leaked into the copy: {present}"


# --- tests --------------------------------------------------------------------------------


async def test_fails_twice_then_succeeds_three_calls_spaced_by_the_delay(
    services: Services, amqp_channel: Channel
) -> None:
    delay = 0.5
    target = services.target("retry")
    queue = target.queue_name
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=2, retry_delay_seconds=delay)
    )
    loop = asyncio.get_running_loop()
    calls: list[tuple[float, int]] = []
    succeeded = asyncio.Event()

    @events.consumer("FLAKY")
    async def flaky(n: int) -> None:
        calls.append((loop.time(), n))
        if len(calls) < 3:
            raise RuntimeError(f"transient failure {len(calls)}")
        succeeded.set()

    await services.consume(handle, target)
    await publish_raw(amqp_channel, event("FLAKY", {"n": 7}), queue)
    await asyncio.wait_for(succeeded.wait(), timeout=10)
    await handle.close()
    # The handle is closed: whatever it was going to publish or ack is settled now.

    assert [n for _, n in calls] == [7, 7, 7]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(calls)]
    for gap in gaps:
        assert gap >= 0.8 * delay, f"retry came after {gap:.3f} s, delay is {delay} s: {gaps}"
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, f"{queue}.delay") == 0
    assert await queue_depth(amqp_channel, f"{queue}.dlq") == 0, "a success was dead-lettered"


async def test_retry_copies_count_up_keep_publisher_properties_and_drop_broker_headers(
    services: Services, amqp_channel: Channel
) -> None:
    target = services.target("retry")
    queue = target.queue_name
    delay_queue, dlq = f"{queue}.delay", f"{queue}.dlq"
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=2, retry_delay_seconds=0.6)
    )
    calls: Calls[int] = Calls()

    @events.consumer("ALWAYS_FAILS")
    async def always_fails(n: int) -> None:
        calls.add(n)
        raise RuntimeError("still broken")

    body = event("ALWAYS_FAILS", {"n": 1})
    stamp = datetime(2024, 5, 17, 12, 30, 45, tzinfo=UTC)
    properties: dict[str, Any] = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "delivery_mode": 2,
        "priority": 3,
        "correlation_id": f"corr-{uuid.uuid4().hex}",
        "message_id": f"msg-{uuid.uuid4().hex}",
        "timestamp": stamp,
        "message_type": "test.event",
        "app_id": "retry-tests",
    }
    # Publisher headers, plus look-alikes of the broker's own (RabbitMQ 3.10 accepts them
    # from a client): they must be stripped from the very first copy.
    publisher_headers = {"tenant": "acme", "trace": {"span": "abc", "depth": 2}}
    forged = {
        "x-death": [
            {
                "count": 3,
                "reason": "rejected",
                "queue": "elsewhere",
                "exchange": "",
                "routing-keys": ["elsewhere"],
            }
        ],
        "x-first-death-queue": "elsewhere",
        "x-first-death-reason": "rejected",
        "x-first-death-exchange": "",
        "x-last-death-queue": "elsewhere",
        "x-last-death-reason": "rejected",
        "x-last-death-exchange": "",
        "x-delivery-count": 5,
    }

    def assert_publisher_side_kept(message: aiormq.abc.DeliveredMessage, what: str) -> None:
        assert message.body == body, what
        got = message.header.properties
        for name, value in properties.items():
            assert getattr(got, name) == value, f"{what}: property {name} changed"
        headers = headers_of(message)
        for name, value in publisher_headers.items():
            assert headers.get(name) == value, f"{what}: header {name} lost or changed"
        assert_no_broker_headers(message)

    await services.consume(handle, target)
    await publish_raw(
        amqp_channel, body, queue, headers={**publisher_headers, **forged}, **properties
    )
    # Each copy is looked at as it arrives in the delay queue and left there (keeping its
    # expiry); the second arrives only after the first went back and failed again.
    seen = {}
    for number in (1, 2):
        [seen[number]] = await collect(amqp_channel, delay_queue, 1, ack=False)
        await calls.count(number + 1)
    [dead] = await collect(amqp_channel, dlq, 1)
    await handle.close()

    retry_counts = [headers_of(message).get("x-retry-count") for message in seen.values()]
    assert retry_counts == [1, 2], f"x-retry-count of the copies in .delay: {retry_counts}"
    # Copy 1 came from the client's delivery (forged headers); copy 2 from a delivery the
    # broker dead-lettered out of .delay (real x-death and x-first/last-death-* headers).
    for number, message in seen.items():
        value = headers_of(message)["x-retry-count"]
        assert type(value) is int, f"x-retry-count is {type(value).__name__}"
        assert_publisher_side_kept(message, f"retry copy {number}")
    assert_publisher_side_kept(dead, "dead-lettered copy")
    assert headers_of(dead)["x-retry-count"] == 2
    assert headers_of(dead)["x-eventrabbit-error"] == "RuntimeError: still broken"
    assert calls.values == [1, 1, 1]
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, delay_queue) == 0


async def test_retry_goes_back_only_to_the_failing_queue_of_a_fanout(
    services: Services, amqp_channel: Channel, names: Names
) -> None:
    exchange = names.exchange("fan")
    retry = RetryConfig(max_retries=2, retry_delay_seconds=0.3)
    events_a, handle_a = services.build(retry_config=retry)
    events_b, handle_b = services.build(retry_config=retry)
    calls_a: list[int] = []
    calls_b: list[int] = []

    @events_a.consumer("ORDER_PLACED")
    async def a_fails(order: int) -> None:
        calls_a.append(order)
        raise RuntimeError("A is down")

    @events_b.consumer("ORDER_PLACED")
    async def b_works(order: int) -> None:
        calls_b.append(order)

    target_a, target_b = (
        services.target(name, exchange_name=exchange, exchange_type="fanout")
        for name in ("fan-a", "fan-b")
    )
    queue_a, queue_b = target_a.queue_name, target_b.queue_name
    await services.consume(handle_a, target_a)
    await services.consume(handle_b, target_b)
    await publish_raw(amqp_channel, event("ORDER_PLACED", {"order": 1}), "", exchange=exchange)
    # A's retries are all done once its message reaches A's dead-letter queue.
    [dead] = await collect(amqp_channel, f"{queue_a}.dlq", 1)
    await handle_a.close()
    await handle_b.close()
    # Both handles are closed: nothing is in flight any more.

    assert headers_of(dead)["x-retry-count"] == 2
    assert calls_a == [1, 1, 1]
    assert calls_b == [1], f"queue B saw A's retries: {calls_b}"
    for name in (queue_b, f"{queue_b}.delay", f"{queue_b}.dlq", queue_a, f"{queue_a}.delay"):
        assert await queue_depth(amqp_channel, name) == 0, name


async def test_delay_queue_has_the_ttl_and_dead_letters_into_the_work_queue(
    services: Services, amqp_channel: Channel
) -> None:
    delay = 1.0
    target = services.target("delay")
    queue = target.queue_name
    delay_queue = f"{queue}.delay"
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=3, retry_delay_seconds=delay)
    )
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[float] = loop.create_future()

    @events.consumer("PARKED")
    async def parked(n: int) -> None:
        if not arrived.done():
            arrived.set_result(loop.time())

    await services.consume(handle, target)
    # The declare arguments, read back through the broker's equivalence check: the same
    # arguments are accepted, any other TTL or target is refused with 406.
    expected = {
        "x-message-ttl": int(delay * 1000),
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
    }
    await amqp_channel.queue_declare(delay_queue, durable=True, arguments=expected)
    for wrong in ({"x-message-ttl": 999}, {"x-dead-letter-routing-key": delay_queue}):
        probe = await amqp_channel.connection.channel()
        try:
            await probe.queue_declare(delay_queue, durable=True, arguments={**expected, **wrong})
        except aiormq.ChannelPreconditionFailed:
            pass
        else:
            raise AssertionError(f"{delay_queue} accepted the arguments {wrong}")
        finally:
            if not probe.is_closed:
                await probe.close()
    # The work queue itself gets no x- arguments: a plain declare matches it.
    await amqp_channel.queue_declare(queue, durable=True)

    # Behaviour: a message parked in .delay by the test reaches the handler after the TTL.
    published = loop.time()
    await publish_raw(amqp_channel, event("PARKED", {"n": 1}), delay_queue)
    handled_at = await asyncio.wait_for(arrived, timeout=10)
    await handle.close()

    waited = handled_at - published
    assert waited >= 0.8 * delay, f"handled {waited:.3f} s after parking, delay {delay} s"
    assert await queue_depth(amqp_channel, delay_queue) == 0
    assert await queue_depth(amqp_channel, queue) == 0


async def test_max_retries_zero_dead_letters_the_first_failure_without_delay(
    services: Services, amqp_channel: Channel
) -> None:
    target = services.target("noretry")
    queue = target.queue_name
    # Were the failure retried, it would wait 30 s: far beyond the 10 s collect deadline.
    events, handle = services.build(retry_config=RetryConfig(max_retries=0, retry_delay_seconds=30))
    calls: list[int] = []

    @events.consumer("ONCE")
    async def once(n: int) -> None:
        calls.append(n)
        raise ValueError("bad luck")

    body = event("ONCE", {"n": 3})
    await services.consume(handle, target)
    await publish_raw(amqp_channel, body, queue, message_id="m-zero")
    [dead] = await collect(amqp_channel, f"{queue}.dlq", 1)
    await handle.close()

    assert calls == [3]
    # No delay queue was even declared: nothing could have waited in one.
    await assert_absent(amqp_channel, queues=(f"{queue}.delay",))
    assert dead.body == body
    assert dead.header.properties.message_id == "m-zero"
    headers = headers_of(dead)
    assert headers["x-retry-count"] == 0
    assert type(headers["x-retry-count"]) is int
    assert headers["x-eventrabbit-error"] == "ValueError: bad luck"
    assert headers["x-eventrabbit-queue"] == queue
    assert await queue_depth(amqp_channel, queue) == 0


async def test_a_waiting_retry_survives_a_restart_of_the_service(
    services: Services, amqp_channel: Channel
) -> None:
    delay = 1.0
    retry = RetryConfig(max_retries=-1, retry_delay_seconds=delay)
    target = services.target("restart")
    queue = target.queue_name

    events_1, handle_1 = services.build(retry_config=retry)
    first_calls: list[str] = []
    failed = asyncio.Event()

    @events_1.consumer("JOB")
    async def job_fails(job: str) -> None:
        first_calls.append(job)
        failed.set()
        raise RuntimeError("crashing before the restart")

    await services.consume(handle_1, target)
    await publish_raw(amqp_channel, event("JOB", {"job": "j-1"}), queue)
    await asyncio.wait_for(failed.wait(), timeout=10)
    # Stopping waits for the failure's retry copy to be confirmed: it waits in the delay queue.
    await handle_1.close()
    assert first_calls == ["j-1"], "the retry came back before the service stopped"

    # No process holds the delay: the broker moves the copy into the idle work queue.
    async def moved() -> bool:
        return await queue_depth(amqp_channel, queue) == 1

    await eventually(moved, what=f"the retry copy in {queue}")
    assert await queue_depth(amqp_channel, f"{queue}.delay") == 0
    parked = await peek(amqp_channel, queue)
    assert parked is not None
    assert headers_of(parked).get("x-retry-count") == 1

    events_2, handle_2 = services.build(retry_config=retry)
    handled = asyncio.Event()
    second_calls: list[str] = []

    @events_2.consumer("JOB")
    async def job_works(job: str) -> None:
        second_calls.append(job)
        handled.set()

    await services.consume(handle_2, target)
    await asyncio.wait_for(handled.wait(), timeout=10)
    await handle_2.close()

    assert first_calls == ["j-1"]
    assert second_calls == ["j-1"]
    for name in (queue, f"{queue}.delay", f"{queue}.dlq"):
        assert await queue_depth(amqp_channel, name) == 0, name
