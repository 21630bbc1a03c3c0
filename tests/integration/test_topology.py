"""Topology: existing queues are reused as they are; impossible topology fails loudly, at once."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiormq
import aiormq.abc
import pytest

import eventrabbit
from eventrabbit import ConsumeChannel, Handle
from tests.conftest import Names, Services
from tests.helpers import assert_absent, event, publish_raw, queue_depth

Channel = aiormq.abc.AbstractChannel
# consume must raise a topology error at once, not back off and retry.
FAIL_FAST_TIMEOUT = 5.0


def pings(services: Services) -> tuple[Handle, asyncio.Queue[Any]]:
    """A service whose PING and LEGACY handlers put what they got on the returned queue."""
    events, handle = services.build()
    got: asyncio.Queue[Any] = asyncio.Queue()

    @events.consumer(action="PING")
    async def ping(n: int) -> None:
        await got.put(n)

    @events.consumer(action="LEGACY")
    async def legacy(note: str) -> None:
        await got.put(note)

    return handle, got


async def next_of(got: asyncio.Queue[Any]) -> Any:
    async with asyncio.timeout(5):
        return await got.get()


async def consume_fails(services: Services, **channel: Any) -> pytest.ExceptionInfo[Any]:
    """Consume a fresh queue with ``channel``'s options: a ``TopologyError`` must end it at once,
    and ``ready()`` raises it too. The error's ``ExceptionInfo``."""
    _, handle = services.build()
    target = services.target(**channel)
    task = services.start(handle, target)
    with pytest.raises(eventrabbit.TopologyError) as info:
        await asyncio.wait_for(task, timeout=FAIL_FAST_TIMEOUT)
    with pytest.raises(eventrabbit.TopologyError):
        await handle.ready(target, timeout=FAIL_FAST_TIMEOUT)
    [status] = handle.status()
    assert status.ended
    assert not status.consuming
    assert status.last_error is not None
    assert status.last_error.startswith("TopologyError: ")
    return info


async def test_existing_plain_queue_reused_and_drained(
    services: Services, amqp_channel: Channel
) -> None:
    handle, got = pings(services)
    target = services.target("legacy")
    queue = target.queue_name
    # Declared plain, as an older version of the library (or another tool) did.
    await amqp_channel.queue_declare(queue, durable=True)
    await publish_raw(amqp_channel, event("LEGACY", {"note": "waiting"}), queue)

    await services.consume(handle, target)
    assert await next_of(got) == "waiting"
    await handle.close()
    assert await queue_depth(amqp_channel, queue) == 0
    # Still plain and durable: a plain declare is equivalent, a transient one is not.
    probe = await amqp_channel.connection.channel()
    await probe.queue_declare(queue, durable=True)
    await probe.queue_declare(queue, durable=True, arguments={})
    with pytest.raises(aiormq.ChannelPreconditionFailed):
        await probe.queue_declare(queue, durable=False)


async def test_queue_with_other_arguments_raises_topology_error(
    services: Services, names: Names, amqp_channel: Channel
) -> None:
    queue = names.queue("clash")
    await amqp_channel.queue_declare(queue, durable=True, arguments={"x-max-length": 5})
    await publish_raw(amqp_channel, event("ANY", {}), queue)
    _, handle = services.build()
    task = services.start(handle, ConsumeChannel(services.url, queue))
    with pytest.raises(eventrabbit.TopologyError, match=re.escape(repr(queue))) as info:
        await asyncio.wait_for(task, timeout=FAIL_FAST_TIMEOUT)
    assert info.value.queue == queue
    # The queue was left as it was: same arguments, its message still there.
    probe = await amqp_channel.connection.channel()
    await probe.queue_declare(queue, durable=True, arguments={"x-max-length": 5})
    assert await queue_depth(amqp_channel, queue) == 1


async def test_missing_exchange_without_type_raises_topology_error(
    services: Services, names: Names, amqp_channel: Channel
) -> None:
    exchange = names.exchange("missing")
    info = await consume_fails(services, exchange_name=exchange)
    assert re.search(re.escape(repr(exchange)), str(info.value))
    assert info.value.exchange == exchange
    # Checked passively: the exchange was not created.
    await assert_absent(amqp_channel, exchanges=(exchange,))


@pytest.mark.parametrize(
    ("exchange_type", "keys", "routing_key"),
    [("fanout", (), "any"), ("topic", ("orders.*",), "orders.created")],
    ids=["fanout-default-key", "topic-binding-keys"],
)
async def test_existing_exchange_without_type_is_used_and_bound(
    services: Services,
    names: Names,
    amqp_channel: Channel,
    exchange_type: str,
    keys: tuple[str, ...],
    routing_key: str,
) -> None:
    handle, got = pings(services)
    exchange = names.exchange("existing")
    # Transient: an active durable declare of it would fail with 406, so a consumer that gets
    # here checked it passively.
    await amqp_channel.exchange_declare(
        exchange, exchange_type=exchange_type, durable=False, auto_delete=False
    )
    options: dict[str, Any] = {"binding_keys": keys} if keys else {}
    task = await services.consume(handle, services.target(exchange_name=exchange, **options))
    await publish_raw(amqp_channel, event("PING", {"n": 1}), routing_key, exchange=exchange)
    assert await next_of(got) == 1
    assert not task.done()
    # The exchange keeps the settings its owner gave it.
    probe = await amqp_channel.connection.channel()
    await probe.exchange_declare(exchange, exchange_type=exchange_type, durable=False)


async def test_exchange_with_other_type_raises_topology_error(
    services: Services, names: Names, amqp_channel: Channel
) -> None:
    exchange = names.exchange("clash")
    await amqp_channel.exchange_declare(exchange, exchange_type="direct", durable=True)
    info = await consume_fails(services, exchange_name=exchange, exchange_type="fanout")
    assert re.search(re.escape(repr(exchange)), str(info.value))
    assert info.value.exchange == exchange
    # Left as it was: still a direct exchange.
    probe = await amqp_channel.connection.channel()
    await probe.exchange_declare(exchange, exchange_type="direct", durable=True)


async def test_builtin_amq_exchange_is_bound_not_declared(
    services: Services, amqp_channel: Channel
) -> None:
    handle, got = pings(services)
    queue = services.names.queue()
    target = ConsumeChannel(services.url, queue, "amq.topic", "topic", binding_keys=(f"{queue}.#",))
    task = await services.consume(handle, target)
    routing_key = f"{queue}.x.y"
    await publish_raw(amqp_channel, event("PING", {"n": 5}), routing_key, exchange="amq.topic")
    assert await next_of(got) == 5
    assert not task.done()
