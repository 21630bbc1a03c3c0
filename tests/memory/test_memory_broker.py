"""Real eventrabbit services on ``memory://``: the library runs unchanged on the in-memory
broker, and the test sees the broker's side through :class:`MemoryBroker`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import aiormq.abc
import pytest
from aiormq import spec

from eventrabbit import (
    BrokerUnavailable,
    ExchangeType,
    PublishError,
    QueueConfig,
    ReconnectConfig,
    RemoteError,
    RetryConfig,
    RPCTimeout,
    TopologyError,
    UnroutableError,
    build_event_dependencies,
)
from eventrabbit.common import ConsumeChannel
from eventrabbit.connection import register_transport
from eventrabbit.events import Events
from eventrabbit.handle import Handle
from eventrabbit.testing import MemoryBroker, consuming, memory_broker, redirect_amqp
from eventrabbit.testing.transport import connect_memory

Channel = aiormq.abc.AbstractChannel
Service = tuple[Events, Handle]
Build = Callable[..., Service]


async def until(broker: MemoryBroker, done: Callable[[], bool]) -> None:
    """Wait until ``done()`` holds, looking again whenever the broker's state changes."""
    await broker.changes.until(done, lambda: None, timeout=5)


def has_consumer(broker: MemoryBroker, queue: str) -> Callable[[], bool]:
    return lambda: queue in broker.queues and broker.consumer_count(queue) > 0


class Calls:
    """Records handler calls and lets a test wait for them."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self._changed = asyncio.Event()

    def add(self, value: Any) -> None:
        self.seen.append(value)
        self._changed.set()

    async def wait(self, count: int = 1, timeout: float = 5.0) -> list[Any]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.seen) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.seen


# ----------------------------------------------------------------------- consume, publish


async def test_consumer_handles_an_event_and_acks(broker: MemoryBroker, service: Build) -> None:
    events, handle = service()
    calls = Calls()

    @events.consumer("USER_CREATED")
    async def created(user_id: int, name: str) -> None:
        calls.add((user_id, name))

    async with consuming(handle, ConsumeChannel(broker.url, "users")):
        broker.publish({"user_id": 1, "name": "Ada"}, routing_key="users", action="USER_CREATED")
        assert await calls.wait() == [(1, "Ada")]
        await broker.wait_idle("users")
    assert broker.queue_depth("users") == 0
    assert broker.unacked_count("users") == 0


async def test_consume_declares_the_topology(broker: MemoryBroker, service: Build) -> None:
    _, handle = service(retry_config=RetryConfig(retry_delay_seconds=2))
    channel = ConsumeChannel(broker.url, "jobs", "work", ExchangeType.DIRECT)
    async with consuming(handle, channel):
        assert {"jobs", "jobs.delay", "jobs.dlq"} <= set(broker.queues_declared)
        assert [(b.queue, b.routing_key) for b in broker.bindings("work")] == [("jobs", "jobs")]
        assert broker.consumer_count("jobs") == 1
        [delay] = [q for q in broker.queues.values() if q.name == "jobs.delay"]
        assert delay.arguments["x-message-ttl"] == 2000
        assert delay.arguments["x-dead-letter-routing-key"] == "jobs"


async def test_producer_publishes_its_result(
    broker: MemoryBroker, service: Build, channel: Channel
) -> None:
    events, _ = service()
    await channel.exchange_declare("orders", exchange_type="direct", durable=True)
    await channel.queue_declare("placed")
    await channel.queue_bind("placed", "orders", routing_key="eu")

    @events.producer("orders", "ORDER_PLACED", key="eu")
    async def place(order_id: int) -> dict[str, int]:
        return {"order_id": order_id}

    assert await place(7) == {"order_id": 7}
    [sent] = broker.published
    assert (sent.exchange, sent.routing_key, sent.queues) == ("orders", "eu", ("placed",))
    assert sent.json() == {"action": "ORDER_PLACED", "data": {"order_id": 7}}
    assert sent.properties.content_type == "application/json"
    assert sent.properties.delivery_mode == 2
    assert sent.properties.message_id
    assert [m.json()["data"] for m in broker.messages("placed")] == [{"order_id": 7}]


async def test_producer_to_a_missing_exchange_raises(service: Build) -> None:
    events, _ = service()

    @events.producer("nowhere", "LOST")
    async def send() -> int:
        return 1

    with pytest.raises(PublishError, match="nowhere"):
        await send()


async def test_unroutable_mandatory_producer_raises(broker: MemoryBroker, service: Build) -> None:
    events, _ = service()
    with pytest.raises(UnroutableError):
        await events.publish("amq.direct", "NOBODY", {}, key="no-queue", mandatory=True)
    await events.publish("amq.direct", "NOBODY", {}, key="no-queue")
    assert events.publisher.unroutable_count == 2
    assert broker.published[-1].queues == ()


async def test_function_chain(broker: MemoryBroker, service: Build) -> None:
    events, handle = service()
    calls = Calls()

    @events.function("ORDER_PLACED", "billing", action_reply="INVOICE_REQUESTED", key="invoices")
    async def bill(order_id: int) -> dict[str, Any]:
        return {"order_id": order_id, "amount": 10 * order_id}

    @events.consumer("INVOICE_REQUESTED")
    async def invoice(order_id: int, amount: int) -> None:
        calls.add((order_id, amount))

    channels = [
        ConsumeChannel(broker.url, "orders", "shop", ExchangeType.FANOUT),
        ConsumeChannel(broker.url, "invoices", "billing", ExchangeType.DIRECT),
    ]
    async with consuming(handle, *channels):
        broker.publish({"order_id": 3}, "shop", action="ORDER_PLACED")
        assert await calls.wait() == [(3, 30)]
    assert [m.exchange for m in broker.published] == ["shop", "billing"]


# -------------------------------------------------------------------------------- routing


async def test_fanout_reaches_every_queue(broker: MemoryBroker, service: Build) -> None:
    events, handle = service()
    calls = Calls()

    @events.consumer("PING")
    async def ping(n: int) -> None:
        calls.add(n)

    channels = [ConsumeChannel(broker.url, q, "pings", "fanout") for q in ("a", "b", "c")]
    async with consuming(handle, *channels):
        message = broker.publish({"n": 1}, "pings", routing_key="ignored", action="PING")
        assert sorted(message.queues) == ["a", "b", "c"]
        assert await calls.wait(3) == [1, 1, 1]


async def test_direct_routes_by_key(broker: MemoryBroker, service: Build) -> None:
    _, handle = service()
    channels = [
        ConsumeChannel(broker.url, "eu", "regions", "direct", binding_keys=("eu", "de")),
        ConsumeChannel(broker.url, "us", "regions", "direct", binding_keys=("us",)),
    ]
    async with consuming(handle, *channels):
        assert broker.publish(b"{}", "regions", "de").queues == ("eu",)
        assert broker.publish(b"{}", "regions", "us").queues == ("us",)
        assert broker.publish(b"{}", "regions", "fr").queues == ()


async def test_topic_routes_by_pattern(broker: MemoryBroker, service: Build) -> None:
    _, handle = service()
    channels = [
        ConsumeChannel(broker.url, "all", "events", "topic", binding_keys=("orders.#",)),
        ConsumeChannel(broker.url, "created", "events", "topic", binding_keys=("*.*.created",)),
    ]
    async with consuming(handle, *channels):
        assert broker.publish(b"{}", "events", "orders").queues == ("all",)
        assert broker.publish(b"{}", "events", "orders.eu.created").queues == ("all", "created")
        assert broker.publish(b"{}", "events", "users.eu.created").queues == ("created",)
        assert broker.publish(b"{}", "events", "orders.created").queues == ("all",)


async def test_headers_routes_by_headers(broker: MemoryBroker, service: Build) -> None:
    events, handle = service()
    calls = Calls()

    @events.consumer("REPORT")
    async def report(name: str) -> None:
        calls.add(name)

    connection = await connect_memory(broker.url)
    setup = await connection.channel()
    await setup.exchange_declare("reports", exchange_type="headers", durable=True)
    await setup.queue_declare("pdf", durable=True)
    await setup.queue_bind("pdf", "reports", arguments={"x-match": "all", "format": "pdf"})
    channel = ConsumeChannel(broker.url, "pdf", "reports", binding_keys=())  # bound already
    async with consuming(handle, channel):
        broker.publish({"name": "q1"}, "reports", action="REPORT", headers={"format": "pdf"})
        broker.publish({"name": "q2"}, "reports", action="REPORT", headers={"format": "zip"})
        assert await calls.wait() == ["q1"]
        await broker.wait_idle("pdf")
        assert calls.seen == ["q1"]
    await connection.close()


# ------------------------------------------------------------------------------ reply_to


async def test_reply_to_with_direct_reply_to(broker: MemoryBroker, service: Build) -> None:
    events, handle = service()

    @events.consumer("ADD")
    async def add(a: int, b: int) -> int:
        return a + b

    client = await connect_memory(broker.url)
    channel = await client.channel()
    replies: asyncio.Queue[Any] = asyncio.Queue()

    async def on_reply(message: Any) -> None:
        await replies.put(message)

    await channel.basic_consume("amq.rabbitmq.reply-to", on_reply, no_ack=True)
    async with consuming(handle, ConsumeChannel(broker.url, "math")):
        request = b'{"action": "ADD", "data": {"a": 2, "b": 3}}'
        properties = spec.Basic.Properties(reply_to="amq.rabbitmq.reply-to", correlation_id="c9")
        await channel.basic_publish(request, routing_key="math", properties=properties)
        async with asyncio.timeout(5):
            reply = await replies.get()
        assert reply.body == b'{"data":5}'
        assert reply.header.properties.correlation_id == "c9"
    await client.close()


async def test_call(broker: MemoryBroker, service: Build) -> None:
    events, handle = service()

    @events.consumer("DOUBLE")
    async def double(n: int) -> int:
        await asyncio.sleep(0)  # yield, so that the hundred calls overlap
        return 2 * n

    async with consuming(handle, ConsumeChannel(broker.url, "math")):
        assert await events.call("DOUBLE", {"n": 21}, key="math") == 42
        results = await asyncio.gather(
            *(events.call("DOUBLE", {"n": n}, key="math", timeout=10) for n in range(100))
        )
        assert results == [2 * n for n in range(100)]
        assert events.rpc.pending == 0


async def test_call_through_an_exchange(broker: MemoryBroker, service: Build) -> None:
    events, handle = service()

    @events.consumer("ECHO")
    async def echo(**data: Any) -> Any:
        return data

    channel = ConsumeChannel(broker.url, "echo", "rpc", "topic", binding_keys=("echo.*",))
    async with consuming(handle, channel):
        assert await events.call("ECHO", {"x": [1]}, exchange_name="rpc", key="echo.v1") == {
            "x": [1]
        }


async def test_call_raises_remote_error(broker: MemoryBroker, service: Build) -> None:
    events, handle = service(retry_config=RetryConfig(max_retries=1, retry_delay_seconds=0))

    @events.consumer("FAIL")
    async def fail() -> None:
        raise LookupError("no such thing")

    async with consuming(handle, ConsumeChannel(broker.url, "svc")):
        with pytest.raises(RemoteError) as info:
            await events.call("FAIL", {}, key="svc", timeout=5)
    assert (info.value.type, info.value.message) == ("LookupError", "no such thing")
    [dead] = broker.messages("svc.dlq")
    assert dead.headers["x-retry-count"] == 1


async def test_call_times_out_and_the_request_expires(broker: MemoryBroker, service: Build) -> None:
    events, _ = service()
    await (await (await connect_memory(broker.url)).channel()).queue_declare("idle")
    with pytest.raises(RPCTimeout):
        await events.call("ANYTHING", {}, key="idle", timeout=0.05)
    assert events.rpc.pending == 0
    [request] = [m for m in broker.published if m.routing_key == "idle"]
    assert request.properties.expiration == "50"
    await broker.wait_idle("idle")  # its expiration drops it: nobody is left waiting for it


async def test_call_to_no_queue_is_unroutable(service: Build) -> None:
    events, _ = service()
    with pytest.raises(UnroutableError):
        await events.call("ANYTHING", {}, key="no-such-queue", timeout=1)


# ------------------------------------------------------------------------------- failures


@pytest.mark.parametrize("delay", [0, 0.05])
async def test_retries_then_dead_letter(broker: MemoryBroker, service: Build, delay: float) -> None:
    events, handle = service(retry_config=RetryConfig(max_retries=2, retry_delay_seconds=delay))
    loop = asyncio.get_running_loop()
    attempts = Calls()

    @events.consumer("FLAKY")
    async def flaky(n: int) -> None:
        attempts.add(loop.time())
        raise RuntimeError(f"attempt failed for {n}")

    async with consuming(handle, ConsumeChannel(broker.url, "work", "jobs", "fanout")):
        broker.publish({"n": 5}, "jobs", action="FLAKY", headers={"trace": "t1"})
        [dead] = await broker.wait_for_messages("work.dlq")
    times = await attempts.wait(3)
    assert len(times) == 3
    assert all(later - earlier >= delay for earlier, later in itertools.pairwise(times))
    assert dead.headers["x-eventrabbit-error"] == "RuntimeError: attempt failed for 5"
    assert dead.headers["x-retry-count"] == 2
    assert dead.headers["x-eventrabbit-queue"] == "work"
    assert dead.headers["trace"] == "t1"
    assert "x-death" not in dead.headers
    assert dead.json() == {"action": "FLAKY", "data": {"n": 5}}
    assert broker.queue_depth("work") == broker.queue_depth("work.delay") == 0


async def test_a_retry_succeeds(broker: MemoryBroker, service: Build) -> None:
    events, handle = service(retry_config=RetryConfig(max_retries=3, retry_delay_seconds=0))
    calls = Calls()

    @events.consumer("ONCE_BROKEN")
    async def once_broken() -> None:
        calls.add(None)
        if len(calls.seen) == 1:
            raise ValueError("first time")

    async with consuming(handle, ConsumeChannel(broker.url, "q")):
        broker.publish({}, routing_key="q", action="ONCE_BROKEN")
        await calls.wait(2)
        await broker.wait_idle("q")
    assert broker.queue_depth("q.dlq") == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"not json", "not valid JSON", id="not-json"),
        pytest.param(b"[1, 2]", "not an object", id="array"),
        pytest.param(b'{"action": "NOPE", "data": {}}', "no handler", id="no-handler"),
        pytest.param(b'{"action": "OK", "data": {"bad": 1}}', "unexpected keys bad", id="misfit"),
    ],
)
async def test_bad_input_goes_to_the_dlq(
    broker: MemoryBroker, service: Build, body: bytes, reason: str
) -> None:
    events, handle = service()
    calls = Calls()

    @events.consumer("OK")
    async def ok(n: int) -> None:
        calls.add(n)

    async with consuming(handle, ConsumeChannel(broker.url, "input")):
        broker.publish(body, routing_key="input")
        broker.publish({"n": 1}, routing_key="input", action="OK")
        [dead] = await broker.wait_for_messages("input.dlq")
        assert await calls.wait() == [1]  # the consumer went on
    assert dead.body == body
    assert reason in dead.headers["x-eventrabbit-error"]
    assert dead.headers["x-retry-count"] == 0


async def test_topology_clash_ends_consume_with_an_error(
    broker: MemoryBroker, service: Build
) -> None:
    _, handle = service()
    connection = await connect_memory(broker.url)
    await (await connection.channel()).queue_declare("taken", durable=False)
    with pytest.raises(TopologyError, match="taken"):
        async with consuming(handle, ConsumeChannel(broker.url, "taken")):
            pass
    await connection.close()


# ------------------------------------------------------------------- concurrency, shutdown


async def test_prefetch_bounds_concurrent_handlers(broker: MemoryBroker, service: Build) -> None:
    events, handle = service(queue_config=QueueConfig(prefetch_count=3))
    release = asyncio.Event()
    three = asyncio.Event()
    running = 0
    most = 0

    @events.consumer("SLOW")
    async def slow() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 3:
            three.set()
        await release.wait()
        running -= 1

    async with consuming(handle, ConsumeChannel(broker.url, "slow")):
        for _ in range(10):
            broker.publish({}, routing_key="slow", action="SLOW")
        # Delivery is synchronous: the broker handed out three and holds back the rest, and
        # hands out more only when one is acked, which no blocked handler does.
        assert (broker.unacked_count("slow"), broker.queue_depth("slow")) == (3, 7)
        async with asyncio.timeout(5):
            await three.wait()
        assert most == 3
        release.set()
        await broker.wait_idle("slow")
    assert most == 3


async def test_close_lets_in_flight_handlers_finish(broker: MemoryBroker, service: Build) -> None:
    events, handle = service()
    started = asyncio.Event()
    release = asyncio.Event()
    finished = Calls()

    @events.consumer("WORK")
    async def work() -> None:
        started.set()
        await release.wait()
        finished.add(True)

    channel = ConsumeChannel(broker.url, "w")
    task = asyncio.create_task(handle.consume(channel))
    await handle.ready(channel, timeout=5)
    broker.publish({}, routing_key="w", action="WORK")
    async with asyncio.timeout(5):
        await started.wait()
    closing = asyncio.create_task(handle.close())
    await until(broker, lambda: broker.consumer_count("w") == 0)  # no new deliveries
    assert not closing.done()  # it waits for the handler
    assert finished.seen == []
    release.set()
    await closing
    assert finished.seen == [True]
    assert (broker.queue_depth("w"), broker.unacked_count("w")) == (0, 0)
    assert task.done()
    assert broker.connection_count == 0


async def test_close_past_the_grace_time_leaves_the_message_for_redelivery(
    broker: MemoryBroker, service: Build
) -> None:
    events, handle = service()
    started = asyncio.Event()

    @events.consumer("STUCK")
    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()  # until cancelled

    channel = ConsumeChannel(broker.url, "s")
    task = asyncio.create_task(handle.consume(channel))
    await handle.ready(channel, timeout=5)
    broker.publish({}, routing_key="s", action="STUCK")
    async with asyncio.timeout(5):
        await started.wait()
    await handle.close(timeout=0.01)
    [back] = broker.messages("s")
    assert back.redelivered is True
    assert task.done()


# ------------------------------------------------------------------------- connections


async def test_idle_publisher_connection_closes_and_reopens(
    broker: MemoryBroker, service: Build
) -> None:
    events, _ = service(idle_timeout=0.02)

    await events.publish("amq.fanout", "TICK", {})
    assert broker.connection_count == 1
    await until(broker, lambda: broker.connection_count == 0)
    await events.publish("amq.fanout", "TICK", {})
    assert broker.connection_count == 1


async def test_consumer_survives_a_dropped_connection(broker: MemoryBroker, service: Build) -> None:
    events, handle = service(reconnect=ReconnectConfig(initial_delay=0.01, max_delay=0.02))
    calls = Calls()
    first = asyncio.Event()

    @events.consumer("JOB")
    async def job(n: int) -> None:
        if n == 1 and not first.is_set():
            first.set()
            await asyncio.Event().wait()  # lost with the connection, then redelivered
        calls.add(n)

    async with consuming(handle, ConsumeChannel(broker.url, "jobs")):
        broker.publish({"n": 1}, routing_key="jobs", action="JOB")
        await first.wait()
        broker.drop_connections()
        broker.publish({"n": 2}, routing_key="jobs", action="JOB")
        assert sorted(await calls.wait(2)) == [1, 2]


async def test_consumer_survives_its_queue_being_deleted(
    broker: MemoryBroker, service: Build
) -> None:
    events, handle = service(reconnect=ReconnectConfig(initial_delay=0.01, max_delay=0.02))
    calls = Calls()

    @events.consumer("JOB")
    async def job() -> None:
        calls.add(None)

    async with consuming(handle, ConsumeChannel(broker.url, "fragile")):
        connection = await connect_memory(broker.url)
        await (await connection.channel()).queue_delete("fragile")
        await connection.close()
        await until(broker, has_consumer(broker, "fragile"))  # declared and consumed again
        broker.publish({}, routing_key="fragile", action="JOB")
        await calls.wait()


async def test_redirect_amqp_runs_an_amqp_service_in_memory(broker: MemoryBroker) -> None:
    url = "amqp://guest:secret@rabbit.invalid:5672/"
    events, handle = build_event_dependencies(url)
    calls = Calls()

    @events.consumer("HI")
    async def hi(name: str) -> str:
        calls.add(name)
        return f"hi {name}"

    with redirect_amqp(broker):
        async with consuming(handle, ConsumeChannel(url, "greet")):
            assert await events.call("HI", {"name": "Ada"}, key="greet") == "hi Ada"
    assert calls.seen == ["Ada"]
    assert broker.connection_count == 0


@pytest.fixture
def unreachable() -> Iterator[str]:
    """A URL scheme whose transport refuses every connection at once."""

    async def refuse(url: str) -> aiormq.abc.AbstractConnection:
        raise BrokerUnavailable(f"cannot connect to {url}: refused by the test", url=url)

    previous = register_transport("unreachable", refuse)
    yield "unreachable://nowhere"
    register_transport("unreachable", previous)


async def test_consuming_says_why_a_consumer_did_not_start(
    service: Build, unreachable: str
) -> None:
    _, handle = service(reconnect=ReconnectConfig(initial_delay=60, max_delay=60))
    with pytest.raises(TimeoutError, match=r"q on unreachable://nowhere: .*refused by the test"):
        async with consuming(handle, ConsumeChannel(unreachable, "q"), timeout=0.1):
            pass


async def test_consuming_waits_on_the_handle_whatever_the_url(
    broker: MemoryBroker, service: Build
) -> None:
    """Readiness comes from the handle, not from looking into a broker: memory:// and a
    redirected amqp:// alike (and a real RabbitMQ, which the integration tests use)."""
    _, handle = service()
    memory_too = ConsumeChannel(broker.url, "here")
    with redirect_amqp(broker):
        async with consuming(handle, memory_too, ConsumeChannel("amqp://rabbit.invalid/", "q")):
            assert [s.consuming for s in handle.status()] == [True, True]


async def test_the_broker_keyword_of_consuming_is_deprecated(
    broker: MemoryBroker, service: Build
) -> None:
    _, handle = service()
    with pytest.warns(DeprecationWarning, match="ignored"):
        context = consuming(handle, ConsumeChannel(broker.url, "q"), broker=broker)
    async with context:
        assert broker.consumer_count("q") == 1


async def test_publish_helper_refuses_a_missing_exchange(broker: MemoryBroker) -> None:
    with pytest.raises(PublishError, match="ghost"):
        broker.publish(b"x", "ghost")
    with pytest.raises(UnroutableError):
        broker.publish(b"x", routing_key="nobody", mandatory=True)
    assert [m.queues for m in broker.published] == [()]


def test_reset_forgets_everything(broker: MemoryBroker) -> None:
    broker.publish(b"x", routing_key="nobody")
    broker.exchanges.pop("amq.topic")
    broker.reset()
    assert broker.published == []
    assert "amq.topic" in broker.exchanges


def test_a_service_outlives_its_event_loop() -> None:
    """Module-level ``events, handle`` used by tests that each run their own event loop."""
    with memory_broker() as broker:
        events, handle = build_event_dependencies(broker.url)

        @events.consumer("PING")
        async def ping() -> str:
            return "pong"

        async def one_test() -> None:
            channel = ConsumeChannel(broker.url, "pings")
            task = asyncio.create_task(handle.consume(channel))
            await handle.ready(channel, timeout=5)
            assert await events.call("PING", {}, key="pings") == "pong"
            await events.publish("", "PING", {}, key="pings")
            await broker.wait_idle("pings")
            task.cancel()  # the loop ends with the publisher and RPC connections open

        asyncio.run(one_test())
        asyncio.run(one_test())
        assert broker.connection_count == 0  # connections of an ended loop are closed
