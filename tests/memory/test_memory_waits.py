"""Waiting on the in-memory broker: ``wait_for_messages`` and ``wait_idle`` wake on the
broker's change notification and on message expiry, on whichever event loop waits.

A task that is created and then given one turn of the loop (``asyncio.sleep(0)``) has run up
to its first wait: the tests use that to start a wait before the change it waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiormq.abc
import pytest

from eventrabbit.testing import MemoryBroker, memory_broker
from eventrabbit.testing.changes import Changes
from eventrabbit.testing.transport import connect_memory

Channel = aiormq.abc.AbstractChannel

DEAD_LETTER_TO_TARGET: dict[str, Any] = {
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": "target",
}


async def started(coroutine: Any) -> asyncio.Task[Any]:
    """``coroutine`` as a task that has run up to its first wait."""
    task = asyncio.create_task(coroutine)
    await asyncio.sleep(0)
    return task


# ---------------------------------------------------------------------- the broker's waits


async def test_wait_for_messages_wakes_on_a_publish(broker: MemoryBroker, channel: Channel) -> None:
    await channel.queue_declare("q")
    waiting = await started(broker.wait_for_messages("q", 2))
    await channel.basic_publish(b"1", routing_key="q")
    assert not waiting.done()
    await channel.basic_publish(b"2", routing_key="q")
    assert [m.body for m in await waiting] == [b"1", b"2"]


async def test_wait_for_messages_waits_for_the_queue_to_be_declared(
    broker: MemoryBroker, channel: Channel
) -> None:
    waiting = await started(broker.wait_for_messages("later"))
    await channel.queue_declare("later")
    assert not waiting.done()
    await channel.basic_publish(b"x", routing_key="later")
    [message] = await waiting
    assert message.body == b"x"


async def test_wait_idle_wakes_on_the_ack(broker: MemoryBroker, channel: Channel) -> None:
    await channel.queue_declare("q")
    await channel.basic_publish(b"x", routing_key="q")
    taken = await channel.basic_get("q")
    waiting = await started(broker.wait_idle("q"))
    assert not waiting.done()  # the message is unacked
    await channel.basic_ack(taken.delivery_tag or 0)
    await waiting


async def test_wait_idle_wakes_when_a_message_expires(
    broker: MemoryBroker, channel: Channel
) -> None:
    await channel.queue_declare("q", arguments={"x-message-ttl": 20})
    await channel.basic_publish(b"x", routing_key="q")
    await broker.wait_idle("q")
    assert broker.queue_depth("q") == 0


def test_a_message_without_a_timer_still_expires_for_a_waiter() -> None:
    """Published with no event loop running, a message has no expiry timer; the wait wakes
    at its deadline anyway."""
    with memory_broker() as broker:

        async def declare() -> None:
            connection = await connect_memory(broker.url)
            channel = await connection.channel()
            await channel.queue_declare("target")
            arguments = {"x-message-ttl": 20, **DEAD_LETTER_TO_TARGET}
            await channel.queue_declare("wait", arguments=arguments)
            await connection.close()

        asyncio.run(declare())
        broker.publish(b"x", routing_key="wait")

        async def wait() -> list[Any]:
            return await broker.wait_for_messages("target")

        [arrived] = asyncio.run(wait())
        assert arrived.headers["x-death"][0]["reason"] == "expired"


def test_the_waits_of_a_broker_work_on_every_event_loop() -> None:
    """Brokers outlive the event loops of tests; a wait on one loop leaves nothing that
    breaks a wait (or a change) on the next."""
    with memory_broker() as broker:

        async def time_out() -> None:
            with pytest.raises(TimeoutError):
                await broker.wait_for_messages("q", timeout=0.01)

        async def arrive() -> list[Any]:
            connection = await connect_memory(broker.url)
            channel = await connection.channel()
            await channel.queue_declare("q")
            waiting = await started(broker.wait_for_messages("q"))
            await channel.basic_publish(b"x", routing_key="q")
            try:
                return await waiting
            finally:
                await connection.close()

        asyncio.run(time_out())
        broker.publish(b"x", routing_key="nowhere")  # a change, with no loop running
        assert [m.body for m in asyncio.run(arrive())] == [b"x"]


# ------------------------------------------------------------------------------ Changes


async def test_fire_wakes_every_waiter() -> None:
    changes = Changes()
    waiters = [await started(changes.wait()) for _ in range(3)]
    assert not any(w.done() for w in waiters)
    changes.fire()
    await asyncio.gather(*waiters)


async def test_a_wait_returns_at_its_deadline_without_a_change() -> None:
    await Changes().wait(deadline=time.monotonic())


async def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    changes = Changes()
    waiting = await started(changes.wait())
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert not changes._waiters


def test_a_waiter_of_a_closed_loop_is_not_woken() -> None:
    changes = Changes()
    loop = asyncio.new_event_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    changes._waiters.add(waiter)  # as a wait that its loop's end left behind
    loop.close()
    changes.fire()  # does not raise "Event loop is closed"
    assert not waiter.done()
    assert not changes._waiters
