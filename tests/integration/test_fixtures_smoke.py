"""The shared fixtures and helpers work the same on both brokers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiormq
import aiormq.abc
import pytest

from eventrabbit.connection import open_connection
from tests.conftest import Names
from tests.helpers import Calls, assert_absent, collect, eventually, publish_raw, queue_depth

Channel = aiormq.abc.AbstractChannel


async def test_publish_collect_and_queue_depth(amqp_channel: Channel, names: Names) -> None:
    queue = names.queue()
    assert queue.startswith("test.q.")
    await amqp_channel.queue_declare(queue)
    assert await queue_depth(amqp_channel, queue) == 0

    await publish_raw(amqp_channel, b"one", queue, content_type="text/plain")
    await publish_raw(amqp_channel, b"two", queue, headers={"k": "v"})
    assert await queue_depth(amqp_channel, queue) == 2

    [first] = await collect(amqp_channel, queue, 1)
    assert first.body == b"one"
    assert first.header.properties.content_type == "text/plain"
    assert await queue_depth(amqp_channel, queue) == 1

    [second] = await collect(amqp_channel, queue, 1)
    assert second.body == b"two"
    assert second.header.properties.headers == {"k": "v"}
    assert await queue_depth(amqp_channel, queue) == 0


async def test_publish_through_exchange_and_collect(amqp_channel: Channel, names: Names) -> None:
    exchange, queue = names.exchange(), names.queue()
    await amqp_channel.exchange_declare(exchange, exchange_type="topic")
    await amqp_channel.queue_declare(queue)
    await amqp_channel.queue_bind(queue, exchange, routing_key="order.*")

    for i in range(5):
        await publish_raw(amqp_channel, str(i).encode(), f"order.{i}", exchange=exchange)
    await publish_raw(amqp_channel, b"unrouted", "invoice.1", exchange=exchange)

    messages = await collect(amqp_channel, queue, 3)
    assert [m.body for m in messages] == [b"0", b"1", b"2"]
    assert [m.routing_key for m in messages] == ["order.0", "order.1", "order.2"]
    # collect acked exactly its 3 messages and left the others ready.
    assert await queue_depth(amqp_channel, queue) == 2
    # Without ack it looks and leaves them where they were, in order.
    assert [m.body for m in await collect(amqp_channel, queue, 2, ack=False)] == [b"3", b"4"]
    assert await queue_depth(amqp_channel, queue) == 2
    assert [m.body for m in await collect(amqp_channel, queue, 2)] == [b"3", b"4"]
    assert await queue_depth(amqp_channel, queue) == 0


async def test_timeouts_report_and_lose_nothing(amqp_channel: Channel, names: Names) -> None:
    queue = names.queue()
    await amqp_channel.queue_declare(queue)
    with pytest.raises(AssertionError, match=r"expected 1 message.*0 arrived"):
        await collect(amqp_channel, queue, 1, timeout=0.2)

    await publish_raw(amqp_channel, b"only", queue)
    with pytest.raises(AssertionError, match=r"expected 2 message.*1 arrived"):
        await collect(amqp_channel, queue, 2, timeout=0.5)
    # The message that did arrive was requeued, not acked.
    assert await queue_depth(amqp_channel, queue) == 1
    assert [m.body for m in await collect(amqp_channel, queue, 1)] == [b"only"]

    with pytest.raises(AssertionError, match="never"):
        await eventually(lambda: False, what="never", timeout=0.1)


async def test_eventually_accepts_async_checks(amqp_channel: Channel, names: Names) -> None:
    queue = names.queue()
    await amqp_channel.queue_declare(queue)
    await publish_raw(amqp_channel, b"x", queue)

    async def has_message() -> int:
        return await queue_depth(amqp_channel, queue)

    assert await eventually(has_message, what="a message") == 1


async def test_calls_wake_their_waiters() -> None:
    calls: Calls[int] = Calls()
    waiting = asyncio.create_task(calls.count(2))
    calls.add(1)
    await asyncio.sleep(0)  # the waiter looks, and waits again
    assert not waiting.done()
    calls.add(2)
    assert await asyncio.wait_for(waiting, timeout=5) == [1, 2]
    assert await calls.until(lambda values: 2 in values, "2 added") == [1, 2]
    with pytest.raises(AssertionError, match=r"a third call.*\[1, 2\]"):
        await calls.until(lambda values: len(values) > 2, "a third call", timeout=0.1)


async def test_queue_depth_of_missing_queue_keeps_channel_usable(
    amqp_channel: Channel, names: Names
) -> None:
    missing = names.queue()
    with pytest.raises(aiormq.ChannelNotFoundEntity):
        await queue_depth(amqp_channel, missing)
    assert not amqp_channel.is_closed
    await amqp_channel.queue_declare(missing)
    assert await queue_depth(amqp_channel, missing) == 0


async def test_names_deletes_what_it_handed_out(amqp_channel: Channel, broker_url: str) -> None:
    names = Names()
    # An exclusive queue of another, still open, connection cannot be deleted
    # (405 closes the cleanup channel); cleanup must carry on past it.
    locked = names.queue("locked")
    await amqp_channel.queue_declare(locked, exclusive=True)
    queue, exchange = names.queue("smoke"), names.exchange()
    await amqp_channel.queue_declare(queue)
    await amqp_channel.queue_declare(f"{queue}.dlq")
    await amqp_channel.exchange_declare(exchange, exchange_type="fanout")

    await names.delete_all(broker_url)

    await assert_absent(amqp_channel, queues=(queue, f"{queue}.dlq"), exchanges=(exchange,))
    assert await queue_depth(amqp_channel, locked) == 0  # still there, its owner's


async def test_an_exclusive_queue_is_its_connections_alone(
    amqp_channel: Channel, broker_url: str, names: Names
) -> None:
    queue = names.queue("mine")
    await amqp_channel.queue_declare(queue, exclusive=True)
    await amqp_channel.queue_bind(queue, "amq.direct", routing_key=queue)
    await publish_raw(amqp_channel, b"x", queue)
    attempts: dict[str, Callable[[Channel], Awaitable[object]]] = {
        "declare": lambda c: c.queue_declare(queue, passive=True),
        "bind": lambda c: c.queue_bind(queue, "amq.fanout"),
        "unbind": lambda c: c.queue_unbind(queue, "amq.direct", routing_key=queue),
        "purge": lambda c: c.queue_purge(queue),
        "delete": lambda c: c.queue_delete(queue),
        "get from": lambda c: c.basic_get(queue),
    }
    other = await open_connection(broker_url)
    try:
        for what, attempt in attempts.items():
            try:
                await attempt(await other.channel())
            except aiormq.ChannelLockedResource:
                continue
            raise AssertionError(f"another connection could {what} an exclusive queue")
    finally:
        await other.close()

    # Its own connection may do all of that; removing a binding that is gone is no error.
    assert (await amqp_channel.queue_purge(queue)).message_count == 1
    for _ in range(2):
        await amqp_channel.queue_unbind(queue, "amq.direct", routing_key=queue)
    await amqp_channel.queue_delete(queue)
    await assert_absent(amqp_channel, queues=(queue,))
