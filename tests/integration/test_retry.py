"""Retries of failing handlers, checked on the wire (CONTRACT.md, "Failure handling").

Every clause is observed through the raw aiormq client: queue depths, the copies waiting in
``<q>.delay`` (peeked with basic.get + reject/requeue, which keeps their expiry), the
dead-lettered copy in ``<q>.dlq``, and handler call times measured with ``loop.time()``.
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

from eventrabbit import RetryConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel
from tests.conftest import Names
from tests.helpers import depth_is, event, get_one, publish_raw, queue_depth, serving, wait_for

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
    """The head of ``queue`` without taking it: basic.get, then reject with requeue.

    A requeued message keeps its original expiry, so peeking a TTL queue does not delay it.
    """
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
    broker_url: str, amqp_channel: Channel, names: Names
) -> None:
    delay = 0.5
    queue = names.queue("retry")
    events, handle = build_event_dependencies(
        broker_url, retry_config=RetryConfig(max_retries=2, retry_delay_seconds=delay)
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

    async with serving(handle, amqp_channel, ConsumeChannel(url=broker_url, queue_name=queue)):
        await publish_raw(amqp_channel, event("FLAKY", {"n": 7}), queue)
        await asyncio.wait_for(succeeded.wait(), timeout=10)
    # The handle is closed: whatever it was going to publish or ack is settled now.

    assert [n for _, n in calls] == [7, 7, 7]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(calls)]
    for gap in gaps:
        assert gap >= 0.8 * delay, f"retry came after {gap:.3f} s, delay is {delay} s: {gaps}"
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, f"{queue}.delay") == 0
    assert await queue_depth(amqp_channel, f"{queue}.dlq") == 0, "a success was dead-lettered"


async def test_retry_copies_count_up_keep_publisher_properties_and_drop_broker_headers(
    broker_url: str, amqp_channel: Channel, names: Names
) -> None:
    queue = names.queue("retry")
    delay_queue, dlq = f"{queue}.delay", f"{queue}.dlq"
    events, handle = build_event_dependencies(
        broker_url, retry_config=RetryConfig(max_retries=2, retry_delay_seconds=0.6)
    )
    calls = 0

    @events.consumer("ALWAYS_FAILS")
    async def always_fails(n: int) -> None:
        nonlocal calls
        calls += 1
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

    seen: dict[int, aiormq.abc.DeliveredMessage] = {}

    async def copy_seen(number: int) -> bool:
        message = await peek(amqp_channel, delay_queue)
        if message is not None:
            seen.setdefault(headers_of(message).get("x-retry-count"), message)
        return number in seen

    async with serving(handle, amqp_channel, ConsumeChannel(url=broker_url, queue_name=queue)):
        await publish_raw(
            amqp_channel, body, queue, headers={**publisher_headers, **forged}, **properties
        )
        # Each copy waits 0.6 s in the delay queue; polling every 20 ms sees each one.
        await wait_for(lambda: copy_seen(1), timeout=10, message="retry copy 1 in .delay")
        await wait_for(lambda: copy_seen(2), timeout=10, message="retry copy 2 in .delay")
        dead = await get_one(amqp_channel, dlq, timeout=10)

    assert set(seen) == {1, 2}, f"x-retry-count values seen in .delay: {sorted(seen)}"
    # Copy 1 came from the client's delivery (forged headers); copy 2 from a delivery the
    # broker dead-lettered out of .delay (real x-death and x-first/last-death-* headers).
    for number, message in seen.items():
        value = headers_of(message)["x-retry-count"]
        assert type(value) is int, f"x-retry-count is {type(value).__name__}"
        assert_publisher_side_kept(message, f"retry copy {number}")
    assert_publisher_side_kept(dead, "dead-lettered copy")
    assert headers_of(dead)["x-retry-count"] == 2
    assert headers_of(dead)["x-eventrabbit-error"] == "RuntimeError: still broken"
    assert calls == 3
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, delay_queue) == 0


async def test_retry_goes_back_only_to_the_failing_queue_of_a_fanout(
    broker_url: str, amqp_channel: Channel, names: Names
) -> None:
    exchange = names.exchange("fan")
    queue_a, queue_b = names.queue("fan-a"), names.queue("fan-b")
    retry = RetryConfig(max_retries=2, retry_delay_seconds=0.3)
    events_a, handle_a = build_event_dependencies(broker_url, retry_config=retry)
    events_b, handle_b = build_event_dependencies(broker_url, retry_config=retry)
    calls_a: list[int] = []
    calls_b: list[int] = []

    @events_a.consumer("ORDER_PLACED")
    async def a_fails(order: int) -> None:
        calls_a.append(order)
        raise RuntimeError("A is down")

    @events_b.consumer("ORDER_PLACED")
    async def b_works(order: int) -> None:
        calls_b.append(order)

    def channel(queue: str) -> ConsumeChannel:
        return ConsumeChannel(
            url=broker_url, queue_name=queue, exchange_name=exchange, exchange_type="fanout"
        )

    async with (
        serving(handle_a, amqp_channel, channel(queue_a)),
        serving(handle_b, amqp_channel, channel(queue_b)),
    ):
        await publish_raw(amqp_channel, event("ORDER_PLACED", {"order": 1}), "", exchange=exchange)
        # A's retries are all done once its message reaches A's dead-letter queue.
        dead = await get_one(amqp_channel, f"{queue_a}.dlq", timeout=10)
    # Both handles are closed: nothing is in flight any more.

    assert headers_of(dead)["x-retry-count"] == 2
    assert calls_a == [1, 1, 1]
    assert calls_b == [1], f"queue B saw A's retries: {calls_b}"
    for name in (queue_b, f"{queue_b}.delay", f"{queue_b}.dlq", queue_a, f"{queue_a}.delay"):
        assert await queue_depth(amqp_channel, name) == 0, name


async def test_delay_queue_has_the_ttl_and_dead_letters_into_the_work_queue(
    broker_url: str, amqp_channel: Channel, names: Names
) -> None:
    delay = 1.0
    queue = names.queue("delay")
    delay_queue = f"{queue}.delay"
    events, handle = build_event_dependencies(
        broker_url, retry_config=RetryConfig(max_retries=3, retry_delay_seconds=delay)
    )
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[float] = loop.create_future()

    @events.consumer("PARKED")
    async def parked(n: int) -> None:
        if not arrived.done():
            arrived.set_result(loop.time())

    async with serving(handle, amqp_channel, ConsumeChannel(url=broker_url, queue_name=queue)):
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
                await probe.queue_declare(
                    delay_queue, durable=True, arguments={**expected, **wrong}
                )
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

    waited = handled_at - published
    assert waited >= 0.8 * delay, f"handled {waited:.3f} s after parking, delay {delay} s"
    assert waited < delay + 3, f"handled only {waited:.3f} s after parking"
    assert await queue_depth(amqp_channel, delay_queue) == 0
    assert await queue_depth(amqp_channel, queue) == 0


async def test_max_retries_zero_dead_letters_the_first_failure_without_delay(
    broker_url: str, amqp_channel: Channel, names: Names
) -> None:
    queue = names.queue("noretry")
    # A delay long enough that a retry could not finish within the test's timeouts.
    events, handle = build_event_dependencies(
        broker_url, retry_config=RetryConfig(max_retries=0, retry_delay_seconds=30)
    )
    loop = asyncio.get_running_loop()
    calls: list[float] = []

    @events.consumer("ONCE")
    async def once(n: int) -> None:
        calls.append(loop.time())
        raise ValueError("bad luck")

    body = event("ONCE", {"n": 3})
    async with serving(handle, amqp_channel, ConsumeChannel(url=broker_url, queue_name=queue)):
        await publish_raw(amqp_channel, body, queue, message_id="m-zero")
        dead = await get_one(amqp_channel, f"{queue}.dlq", timeout=5)
        dead_at = loop.time()

    assert len(calls) == 1
    assert dead_at - calls[0] < 3, "the dead letter waited like a retry"
    assert dead.body == body
    assert dead.header.properties.message_id == "m-zero"
    headers = headers_of(dead)
    assert headers["x-retry-count"] == 0
    assert type(headers["x-retry-count"]) is int
    assert headers["x-eventrabbit-error"] == "ValueError: bad luck"
    assert headers["x-eventrabbit-queue"] == queue
    assert await queue_depth(amqp_channel, queue) == 0


async def test_a_waiting_retry_survives_a_restart_of_the_service(
    broker_url: str, amqp_channel: Channel, names: Names
) -> None:
    delay = 1.0
    queue = names.queue("restart")
    retry = RetryConfig(max_retries=-1, retry_delay_seconds=delay)
    target = ConsumeChannel(url=broker_url, queue_name=queue)

    events_1, handle_1 = build_event_dependencies(broker_url, retry_config=retry)
    first_calls: list[str] = []
    failed = asyncio.Event()

    @events_1.consumer("JOB")
    async def job_fails(job: str) -> None:
        first_calls.append(job)
        failed.set()
        raise RuntimeError("crashing before the restart")

    async with serving(handle_1, amqp_channel, target):
        await publish_raw(amqp_channel, event("JOB", {"job": "j-1"}), queue)
        await asyncio.wait_for(failed.wait(), timeout=10)
        # The retry copy is parked in the delay queue when the service stops.
        await wait_for(depth_is(amqp_channel, f"{queue}.delay", 1), timeout=5)
    assert first_calls == ["j-1"], "the retry came back before the service stopped"

    # No process holds the delay: the broker moves the copy into the idle work queue.
    await wait_for(depth_is(amqp_channel, queue, 1), timeout=delay + 5)
    assert await queue_depth(amqp_channel, f"{queue}.delay") == 0
    parked = await peek(amqp_channel, queue)
    assert parked is not None
    assert headers_of(parked).get("x-retry-count") == 1

    events_2, handle_2 = build_event_dependencies(broker_url, retry_config=retry)
    handled = asyncio.Event()
    second_calls: list[str] = []

    @events_2.consumer("JOB")
    async def job_works(job: str) -> None:
        second_calls.append(job)
        handled.set()

    async with serving(handle_2, amqp_channel, target):
        await asyncio.wait_for(handled.wait(), timeout=10)

    assert first_calls == ["j-1"]
    assert second_calls == ["j-1"]
    for name in (queue, f"{queue}.delay", f"{queue}.dlq"):
        assert await queue_depth(amqp_channel, name) == 0, name
