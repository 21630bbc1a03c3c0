"""Consuming: dispatch, topology of ConsumeChannel, shared connections, concurrency, acks.

Every clause is observed on the wire through the raw aiormq client (``amqp_channel``) or
``rabbitmqctl``, never through eventrabbit's own view of itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import aiormq
import aiormq.abc
import orjson
import pytest

from eventrabbit import ExchangeType, Handle, QueueConfig, RetryConfig
from tests.conftest import Names, Services
from tests.helpers import (
    Calls,
    collect,
    consumer_count,
    event,
    named,
    named_connections,
    publish_raw,
    queue_depth,
    rabbitmqctl,
)

Channel = aiormq.abc.AbstractChannel

# --------------------------------------------------------------------------- local helpers


async def routed(channel: Channel, exchange: str, routing_key: str, body: bytes) -> bool:
    """Publish ``body`` mandatory; True if a queue took it, False if it came back."""
    try:
        confirm = await channel.basic_publish(
            body, exchange=exchange, routing_key=routing_key, mandatory=True
        )
    except aiormq.exceptions.PublishError:
        return False
    assert isinstance(confirm, aiormq.spec.Basic.Ack), confirm
    return True


async def assert_durable_queue(channel: Channel, queue: str) -> None:
    """The broker holds ``queue`` as durable: an equivalent declare passes, a transient fails."""
    probe = await channel.connection.channel(publisher_confirms=False)
    await probe.queue_declare(queue, durable=True)
    with pytest.raises(aiormq.ChannelPreconditionFailed):
        await probe.queue_declare(queue, durable=False)


async def assert_durable_exchange(channel: Channel, exchange: str, exchange_type: str) -> None:
    """The broker holds ``exchange`` as a durable exchange of ``exchange_type``."""
    probe = await channel.connection.channel(publisher_confirms=False)
    await probe.exchange_declare(exchange, exchange_type=exchange_type, durable=True)
    with pytest.raises(aiormq.ChannelPreconditionFailed):
        await probe.exchange_declare(exchange, exchange_type=exchange_type, durable=False)


# --------------------------------------------------------------------------- dispatch


async def test_consumer_gets_data_keys_as_kwargs(services: Services, amqp_channel: Channel) -> None:
    events, handle = services.build()
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @events.consumer(action="USER_CREATED")
    async def on_user_created(user_id: int, name: str, tags: list[str] | None = None) -> None:
        await got.put({"user_id": user_id, "name": name, "tags": tags})

    target = services.target()
    await services.consume(handle, target)
    data = {"user_id": 7, "name": "Ann", "tags": ["a", "b"]}
    await publish_raw(amqp_channel, event("USER_CREATED", data), target.queue_name)

    async with asyncio.timeout(5):
        assert await got.get() == data
    await assert_durable_queue(amqp_channel, target.queue_name)
    await handle.close()
    # An unacked delivery would be back in the queue once the consumer's channel closed.
    assert await queue_depth(amqp_channel, target.queue_name) == 0
    assert got.empty()


EXCHANGE_TYPE_FORMS = {
    "str": lambda t: t,
    "eventrabbit": ExchangeType,
    "aio_pika": aio_pika.ExchangeType,
}


def pings(services: Services) -> tuple[Handle, asyncio.Queue[int]]:
    """A service whose PING handler puts ``n`` on the returned queue."""
    events, handle = services.build()
    got: asyncio.Queue[int] = asyncio.Queue()

    @events.consumer(action="PING")
    async def ping(n: int) -> None:
        await got.put(n)

    return handle, got


@pytest.mark.parametrize("form", sorted(EXCHANGE_TYPE_FORMS))
@pytest.mark.parametrize("exchange_type", ["fanout", "direct", "topic"])
async def test_exchange_declared_durable_and_bound(
    services: Services, names: Names, amqp_channel: Channel, exchange_type: str, form: str
) -> None:
    handle, got = pings(services)
    exchange = names.exchange()
    target = services.target(
        exchange_name=exchange, exchange_type=EXCHANGE_TYPE_FORMS[form](exchange_type)
    )
    queue = target.queue_name
    await services.consume(handle, target)

    await assert_durable_exchange(amqp_channel, exchange, exchange_type)
    await assert_durable_queue(amqp_channel, queue)
    if exchange_type == "fanout":
        assert await routed(amqp_channel, exchange, "any.key", event("PING", {"n": 1}))
    else:
        # Bound with the queue name as the key, and with nothing else.
        assert await routed(amqp_channel, exchange, queue, event("PING", {"n": 1}))
        assert not await routed(amqp_channel, exchange, "", event("PING", {"n": 2}))
        assert not await routed(amqp_channel, exchange, "other", event("PING", {"n": 3}))
    async with asyncio.timeout(5):
        assert await got.get() == 1


@pytest.mark.parametrize("exchange_type", ["direct", "topic"])
async def test_explicit_binding_keys(
    services: Services, names: Names, amqp_channel: Channel, exchange_type: str
) -> None:
    handle, got = pings(services)
    exchange = names.exchange()
    keys = ("order.created", "invoice.#") if exchange_type == "topic" else ("k1", "k2")
    target = services.target(exchange_name=exchange, exchange_type=exchange_type, binding_keys=keys)
    await services.consume(handle, target)

    for n, key in enumerate(keys):
        routing_key = "invoice.a.b" if key == "invoice.#" else key
        assert await routed(amqp_channel, exchange, routing_key, event("PING", {"n": n}))
    # The explicit keys replace the queue-name default.
    assert not await routed(amqp_channel, exchange, target.queue_name, event("PING", {"n": 99}))
    async with asyncio.timeout(5):
        assert sorted([await got.get() for _ in keys]) == list(range(len(keys)))


@pytest.mark.real_broker  # lists the bindings with rabbitmqctl
async def test_exchange_type_without_exchange_name_binds_nothing(
    services: Services, amqp_channel: Channel
) -> None:
    """The seed's ``tracker_info`` queue: a type, no exchange name."""
    events, handle = services.build()
    got: asyncio.Queue[str] = asyncio.Queue()

    @events.consumer(action="TRACKERS_INFO")
    async def trackers_info(b: str) -> None:
        await got.put(b)

    target = services.target("tracker_info", exchange_type=aio_pika.ExchangeType.DIRECT)
    queue = target.queue_name
    await services.consume(handle, target)

    out = await rabbitmqctl(
        "list_bindings", "--no-table-headers", "source_name", "destination_name", "routing_key"
    )
    bindings = [line.split("\t") for line in out.splitlines() if f"\t{queue}\t" in line]
    assert bindings == [["", queue, queue]]  # only the default exchange's implicit binding
    assert not await routed(amqp_channel, "amq.direct", queue, event("TRACKERS_INFO", {"b": "x"}))

    await publish_raw(amqp_channel, event("TRACKERS_INFO", {"b": "12"}), queue)
    async with asyncio.timeout(5):
        assert await got.get() == "12"
    await assert_durable_queue(amqp_channel, queue)


# --------------------------------------------------------------------------- connections


@pytest.mark.real_broker  # counts named connections with rabbitmqctl
async def test_consumers_of_one_url_share_one_connection(
    services: Services, names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    url, connection_name = named(broker_url, "shared")
    events, handle = services.build()
    got: asyncio.Queue[str] = asyncio.Queue()

    @events.consumer(action="PING")
    async def ping(q: str) -> None:
        await got.put(q)

    exchange = names.exchange()
    first = services.target(url=url, exchange_name=exchange, exchange_type="fanout")
    second = services.target(url=url)
    tasks = [services.start(handle, first), services.start(handle, second)]
    await handle.ready(first, second)

    assert handle.connection_count == 1
    connections = await named_connections(connection_name)
    assert len(connections) == 1, connections
    assert connections[0][1] == 2  # a channel per queue
    await publish_raw(amqp_channel, event("PING", {"q": "first"}), "", exchange=exchange)
    await publish_raw(amqp_channel, event("PING", {"q": "second"}), second.queue_name)
    async with asyncio.timeout(5):
        assert sorted([await got.get(), await got.get()]) == ["first", "second"]
    assert not any(task.done() for task in tasks)


# --------------------------------------------------------------------------- concurrency


async def test_handlers_run_concurrently_up_to_prefetch_count(
    services: Services, amqp_channel: Channel
) -> None:
    events, handle = services.build(queue_config=QueueConfig(prefetch_count=3))
    release = services.gate()
    running = 0
    most = 0
    finished: Calls[int] = Calls()
    three_running = asyncio.Event()

    @events.consumer(action="WORK")
    async def work(n: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 3:
            three_running.set()
        try:
            await release.wait()
        finally:
            running -= 1
        finished.add(n)

    target = services.target()
    queue = target.queue_name
    await services.consume(handle, target)
    for n in range(10):
        await publish_raw(amqp_channel, event("WORK", {"n": n}), queue)

    await asyncio.wait_for(three_running.wait(), timeout=5)
    # A second consumer on the queue gets what the broker holds back from eventrabbit's: all
    # seven others. Had eventrabbit's consumer taken more than its prefetch, fewer would come.
    held_back = await collect(amqp_channel, queue, 7)
    assert sorted(orjson.loads(m.body)["data"]["n"] for m in held_back) == list(range(3, 10))
    # All ten are accounted for: no fourth handler can have started, or ever start.
    assert (running, most) == (3, 3)

    release.set()
    assert sorted(await finished.count(3)) == [0, 1, 2]
    await handle.close()
    assert most == 3
    assert await queue_depth(amqp_channel, queue) == 0  # the three were acked


async def test_message_unacked_while_handler_runs_comes_back_on_close(
    services: Services, amqp_channel: Channel
) -> None:
    events, handle = services.build(queue_config=QueueConfig(grace_timeout=0.2))
    started = asyncio.Event()
    release = services.gate()

    @events.consumer(action="SLOW")
    async def slow() -> None:
        started.set()
        await release.wait()

    target = services.target()
    queue = target.queue_name
    await services.consume(handle, target)
    await publish_raw(amqp_channel, event("SLOW", {}), queue)
    await asyncio.wait_for(started.wait(), timeout=5)

    assert await queue_depth(amqp_channel, queue) == 0  # delivered, not acked
    await asyncio.wait_for(handle.close(), timeout=5)  # grace 0.2 s: the handler is cut off
    [message] = await collect(amqp_channel, queue, 1)
    assert message.delivery.redelivered  # type: ignore[union-attr]
    assert orjson.loads(message.body) == {"action": "SLOW", "data": {}}


@pytest.mark.real_broker  # rabbitmqctl closes the connection
async def test_message_unacked_while_handler_runs_redelivered_after_connection_loss(
    services: Services, amqp_channel: Channel, broker_url: str
) -> None:
    url, connection_name = named(broker_url, "lost")
    events, handle = services.build()
    release = services.gate()
    calls: Calls[None] = Calls()

    @events.consumer(action="SLOW")
    async def slow() -> None:
        calls.add(None)
        if len(calls) == 1:
            await release.wait()

    target = services.target(url=url)
    queue = target.queue_name
    task = await services.consume(handle, target)
    await publish_raw(amqp_channel, event("SLOW", {}), queue)
    await calls.count(1)
    assert await queue_depth(amqp_channel, queue) == 0

    [(pid, _)] = await named_connections(connection_name)
    await rabbitmqctl("close_connection", pid, "test: connection lost")

    # The broker requeues the unacked delivery; the reconnected consumer handles it again.
    await calls.count(2)
    assert not task.done()
    release.set()
    await handle.close()
    assert await queue_depth(amqp_channel, queue) == 0


async def test_handler_failures_never_end_consume(
    services: Services, amqp_channel: Channel
) -> None:
    events, handle = services.build(retry_config=RetryConfig(max_retries=0))
    good: asyncio.Queue[int] = asyncio.Queue()

    @events.consumer(action="BOOM")
    async def boom(n: int) -> None:
        raise RuntimeError(f"boom {n}")

    @events.consumer(action="GOOD")
    async def fine(n: int) -> None:
        await good.put(n)

    target = services.target()
    queue = target.queue_name
    task = await services.consume(handle, target)
    for n in range(3):
        await publish_raw(amqp_channel, event("BOOM", {"n": n}), queue)
    await publish_raw(amqp_channel, b"not json", queue)
    await publish_raw(amqp_channel, event("NOBODY", {}), queue)
    await publish_raw(amqp_channel, event("GOOD", {"unexpected": 1}), queue)

    dead = await collect(amqp_channel, f"{queue}.dlq", 6)
    assert len(dead) == 6
    assert not task.done()
    await publish_raw(amqp_channel, event("GOOD", {"n": 42}), queue)
    async with asyncio.timeout(5):
        assert await good.get() == 42
    assert not task.done()
    assert handle.status()[0].consuming
    assert await consumer_count(amqp_channel, queue) == 1
    await handle.close()
