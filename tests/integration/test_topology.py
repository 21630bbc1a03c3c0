"""Topology: existing queues are reused as they are; impossible topology fails loudly, at once."""

from __future__ import annotations

import asyncio
import re

import aiormq
import aiormq.abc
import pytest

import eventrabbit
from eventrabbit.common import ConsumeChannel
from eventrabbit.events import Events
from eventrabbit.handle import Handle
from tests.conftest import Names, Services
from tests.helpers import assert_absent, event, publish_raw, queue_depth, start_consuming

Channel = aiormq.abc.AbstractChannel
# consume must raise a topology error at once, not back off and retry.
FAIL_FAST_TIMEOUT = 5.0


@pytest.fixture
def service(services: Services) -> tuple[Events, Handle]:
    return services.build()


async def test_existing_plain_queue_reused_and_drained(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    events, handle = service
    got: asyncio.Queue[str] = asyncio.Queue()

    @events.consumer(action="LEGACY")
    async def legacy(note: str) -> None:
        await got.put(note)

    queue = names.queue("legacy")
    # Declared plain, as an older version of the library (or another tool) did.
    await amqp_channel.queue_declare(queue, durable=True)
    await publish_raw(amqp_channel, event("LEGACY", {"note": "waiting"}), queue)

    await start_consuming(handle, amqp_channel, ConsumeChannel(url=broker_url, queue_name=queue))
    async with asyncio.timeout(5):
        assert await got.get() == "waiting"
    await handle.close()
    assert await queue_depth(amqp_channel, queue) == 0
    # Still plain and durable: a plain declare is equivalent, a transient one is not.
    probe = await amqp_channel.connection.channel()
    await probe.queue_declare(queue, durable=True)
    await probe.queue_declare(queue, durable=True, arguments={})
    with pytest.raises(aiormq.ChannelPreconditionFailed):
        await probe.queue_declare(queue, durable=False)


async def test_queue_with_other_arguments_raises_topology_error(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    events, handle = service

    @events.consumer(action="ANY")
    async def anything() -> None:
        return None

    queue = names.queue("clash")
    await amqp_channel.queue_declare(queue, durable=True, arguments={"x-max-length": 5})
    await publish_raw(amqp_channel, event("ANY", {}), queue)

    task = asyncio.create_task(handle.consume(ConsumeChannel(url=broker_url, queue_name=queue)))
    with pytest.raises(eventrabbit.TopologyError, match=re.escape(repr(queue))) as info:
        await asyncio.wait_for(task, timeout=FAIL_FAST_TIMEOUT)
    assert info.value.queue == queue
    # The queue was left as it was: same arguments, its message still there.
    probe = await amqp_channel.connection.channel()
    await probe.queue_declare(queue, durable=True, arguments={"x-max-length": 5})
    assert await queue_depth(amqp_channel, queue) == 1


async def test_missing_exchange_without_type_raises_topology_error(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    _, handle = service
    queue, exchange = names.queue(), names.exchange("missing")

    task = asyncio.create_task(
        handle.consume(ConsumeChannel(url=broker_url, queue_name=queue, exchange_name=exchange))
    )
    with pytest.raises(eventrabbit.TopologyError, match=re.escape(repr(exchange))) as info:
        await asyncio.wait_for(task, timeout=FAIL_FAST_TIMEOUT)
    assert info.value.exchange == exchange
    # Checked passively: the exchange was not created.
    await assert_absent(amqp_channel, exchanges=(exchange,))


async def test_existing_exchange_without_type_is_used_and_bound(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    events, handle = service
    got: asyncio.Queue[int] = asyncio.Queue()

    @events.consumer(action="PING")
    async def ping(n: int) -> None:
        await got.put(n)

    queue, exchange = names.queue(), names.exchange("existing")
    # Transient: an active durable declare of it would fail with 406, so a
    # consumer that gets here checked it passively.
    await amqp_channel.exchange_declare(
        exchange, exchange_type="fanout", durable=False, auto_delete=False
    )

    task = await start_consuming(
        handle,
        amqp_channel,
        ConsumeChannel(url=broker_url, queue_name=queue, exchange_name=exchange),
    )
    await publish_raw(amqp_channel, event("PING", {"n": 1}), "any", exchange=exchange)
    async with asyncio.timeout(5):
        assert await got.get() == 1
    assert not task.done()
    # The exchange keeps the settings its owner gave it.
    probe = await amqp_channel.connection.channel()
    await probe.exchange_declare(exchange, exchange_type="fanout", durable=False)


async def test_existing_exchange_without_type_with_binding_keys(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    events, handle = service
    got: asyncio.Queue[int] = asyncio.Queue()

    @events.consumer(action="PING")
    async def ping(n: int) -> None:
        await got.put(n)

    queue, exchange = names.queue(), names.exchange("existing")
    await amqp_channel.exchange_declare(exchange, exchange_type="topic", durable=True)

    target = ConsumeChannel(
        url=broker_url, queue_name=queue, exchange_name=exchange, binding_keys=("orders.*",)
    )
    await start_consuming(handle, amqp_channel, target)
    await publish_raw(amqp_channel, event("PING", {"n": 1}), "orders.created", exchange=exchange)
    async with asyncio.timeout(5):
        assert await got.get() == 1


async def test_exchange_with_other_type_raises_topology_error(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    _, handle = service
    queue, exchange = names.queue(), names.exchange("clash")
    await amqp_channel.exchange_declare(exchange, exchange_type="direct", durable=True)

    target = ConsumeChannel(
        url=broker_url, queue_name=queue, exchange_name=exchange, exchange_type="fanout"
    )
    task = asyncio.create_task(handle.consume(target))
    with pytest.raises(eventrabbit.TopologyError, match=re.escape(repr(exchange))) as info:
        await asyncio.wait_for(task, timeout=FAIL_FAST_TIMEOUT)
    assert info.value.exchange == exchange
    # Left as it was: still a direct exchange.
    probe = await amqp_channel.connection.channel()
    await probe.exchange_declare(exchange, exchange_type="direct", durable=True)


async def test_builtin_amq_exchange_is_bound_not_declared(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    events, handle = service
    got: asyncio.Queue[int] = asyncio.Queue()

    @events.consumer(action="PING")
    async def ping(n: int) -> None:
        await got.put(n)

    queue = names.queue()
    target = ConsumeChannel(
        url=broker_url,
        queue_name=queue,
        exchange_name="amq.topic",
        exchange_type="topic",
        binding_keys=(f"{queue}.#",),
    )
    task = await start_consuming(handle, amqp_channel, target)
    await publish_raw(amqp_channel, event("PING", {"n": 5}), f"{queue}.x.y", exchange="amq.topic")
    async with asyncio.timeout(5):
        assert await got.get() == 5
    assert not task.done()
