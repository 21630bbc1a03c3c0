"""Graceful shutdown: in-flight handlers finish and are acked; past the grace time, redelivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiormq.abc
import orjson
import pytest

from eventrabbit import QueueConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel
from eventrabbit.handle import Handle
from tests.conftest import Names
from tests.helpers import (
    consumer_count,
    event,
    get_one,
    publish_raw,
    queue_depth,
    start_consuming,
    wait_for,
)

Channel = aiormq.abc.AbstractChannel


async def still_running(awaitable: asyncio.Future[Any], seconds: float = 0.3) -> bool:
    """True if ``awaitable`` is not done within ``seconds`` (it keeps running)."""
    done, _ = await asyncio.wait([awaitable], timeout=seconds)
    return not done


class Gated:
    """A handler body that reports its start and blocks until released."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.runs = 0
        self.finished = 0
        self.cancelled = 0

    async def run(self) -> None:
        self.runs += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1


@pytest.fixture
async def gates() -> AsyncIterator[list[Gated]]:
    made: list[Gated] = []
    yield made
    for gate in made:
        gate.release.set()


@pytest.fixture
async def handles(names: Names, gates: list[Gated]) -> AsyncIterator[list[Handle]]:
    # Teardown: gates are released after the handles close (reverse fixture order), so a
    # test that leaves a handler blocked finds it cut off after its grace time.
    made: list[Handle] = []
    yield made
    async with asyncio.timeout(30):
        for handle in made:
            await handle.close()


async def test_cancel_lets_inflight_handler_finish_and_acks(
    handles: list[Handle],
    gates: list[Gated],
    names: Names,
    amqp_channel: Channel,
    broker_url: str,
) -> None:
    events, handle = build_event_dependencies(broker_url)
    handles.append(handle)
    gate = Gated()
    gates.append(gate)

    @events.consumer(action="WORK")
    async def work() -> None:
        await gate.run()

    queue = names.queue()
    task = await start_consuming(
        handle, amqp_channel, ConsumeChannel(url=broker_url, queue_name=queue)
    )
    await publish_raw(amqp_channel, event("WORK", {}), queue)
    await asyncio.wait_for(gate.started.wait(), timeout=5)

    task.cancel()
    assert await still_running(task), "cancel did not wait for the in-flight handler"
    # It stopped taking deliveries at once: the queue has no consumer any more.
    assert await consumer_count(amqp_channel, queue) == 0
    gate.release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)

    assert gate.finished == 1
    assert gate.cancelled == 0
    # The consumer's channel is closed: an unacked delivery would be ready again.
    assert await queue_depth(amqp_channel, queue) == 0
    # A fresh consumer finds nothing to do.
    task = await start_consuming(
        handle, amqp_channel, ConsumeChannel(url=broker_url, queue_name=queue)
    )
    assert await queue_depth(amqp_channel, queue) == 0
    await handle.close()
    assert gate.runs == 1
    assert await queue_depth(amqp_channel, queue) == 0


async def test_close_stops_all_queues_gracefully(
    handles: list[Handle],
    gates: list[Gated],
    names: Names,
    amqp_channel: Channel,
    broker_url: str,
) -> None:
    events, handle = build_event_dependencies(broker_url)
    handles.append(handle)
    first_gate, second_gate = Gated(), Gated()
    gates.extend([first_gate, second_gate])

    @events.consumer(action="FIRST")
    async def first() -> None:
        await first_gate.run()

    @events.consumer(action="SECOND")
    async def second() -> None:
        await second_gate.run()

    first_queue, second_queue = names.queue(), names.queue()
    exchange = names.exchange()
    tasks = [
        await start_consuming(
            handle,
            amqp_channel,
            ConsumeChannel(
                url=broker_url,
                queue_name=first_queue,
                exchange_name=exchange,
                exchange_type="fanout",
            ),
        ),
        await start_consuming(
            handle, amqp_channel, ConsumeChannel(url=broker_url, queue_name=second_queue)
        ),
    ]
    await publish_raw(amqp_channel, event("FIRST", {}), first_queue)
    await publish_raw(amqp_channel, event("SECOND", {}), second_queue)
    await asyncio.wait_for(first_gate.started.wait(), timeout=5)
    await asyncio.wait_for(second_gate.started.wait(), timeout=5)

    closing = asyncio.ensure_future(handle.close())
    assert await still_running(closing), "close did not wait for the in-flight handlers"
    first_gate.release.set()
    second_gate.release.set()
    await asyncio.wait_for(closing, timeout=5)

    assert all(task.done() for task in tasks)
    assert handle.connection_count == 0
    assert (first_gate.finished, second_gate.finished) == (1, 1)
    for queue in (first_queue, second_queue):
        assert await consumer_count(amqp_channel, queue) == 0
        assert await queue_depth(amqp_channel, queue) == 0
    assert (first_gate.runs, second_gate.runs) == (1, 1)


async def test_handler_past_grace_timeout_is_cancelled_and_redelivered(
    handles: list[Handle],
    gates: list[Gated],
    names: Names,
    amqp_channel: Channel,
    broker_url: str,
) -> None:
    events, handle = build_event_dependencies(broker_url)
    handles.append(handle)
    gate = Gated()
    gates.append(gate)

    @events.consumer(action="STUCK")
    async def stuck() -> None:
        await gate.run()

    queue = names.queue()
    target = ConsumeChannel(
        url=broker_url, queue_name=queue, queue_config=QueueConfig(grace_timeout=0.3)
    )
    task = await start_consuming(handle, amqp_channel, target)
    await publish_raw(amqp_channel, event("STUCK", {}), queue)
    await asyncio.wait_for(gate.started.wait(), timeout=5)

    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    assert loop.time() - cancelled_at >= 0.25  # it did grant the grace time

    await wait_for(lambda: gate.cancelled == 1, timeout=2, message="the handler was cancelled")
    assert gate.finished == 0

    async def back_in_queue() -> bool:
        return await queue_depth(amqp_channel, queue) == 1

    await wait_for(back_in_queue, timeout=5, message="the message is ready again")
    message = await get_one(amqp_channel, queue, timeout=5)
    assert message.delivery.redelivered  # type: ignore[union-attr]
    assert orjson.loads(message.body) == {"action": "STUCK", "data": {}}


async def test_close_right_after_starting_consume_stops_it(broker_url: str, names: Names) -> None:
    """A consume task that has not run its first step yet is stopped by close() too."""
    _, handle = build_event_dependencies(broker_url)
    task = asyncio.create_task(
        handle.consume(ConsumeChannel(url=broker_url, queue_name=names.queue("early")))
    )
    await handle.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
