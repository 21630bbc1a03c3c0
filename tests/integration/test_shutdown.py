"""Graceful shutdown: in-flight handlers finish and are acked; past the grace time, redelivered.

"It waited for the handler" is shown by order, never by time: the handler blocks on a gate
the test opens only once the broker has cancelled the consumer, and the test records whether
the handler finished before ``consume`` (or ``close``) did.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq.abc
import orjson
import pytest

from eventrabbit import Events, Handle, QueueConfig
from tests.conftest import Services
from tests.helpers import (
    Calls,
    collect,
    consumer_count,
    event,
    eventually,
    publish_raw,
    queue_depth,
)

Channel = aiormq.abc.AbstractChannel


class Gated:
    """A handler body that reports its start and blocks until released; writes what happened,
    in order, to ``log`` (shared by the gates and the tasks of one test)."""

    def __init__(self, name: str, release: asyncio.Event, log: list[str]) -> None:
        self.name = name
        self.release = release
        self.log = log
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
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
            self.log.append(f"{self.name} cancelled")
            raise
        finally:
            self.stopped.set()
        self.finished += 1
        self.log.append(f"{self.name} finished")


def gated_service(
    services: Services, log: list[str], *actions: str, queue_config: QueueConfig | None = None
) -> tuple[Events, Handle, dict[str, Gated]]:
    """A service with a gated handler for each of ``actions``; teardown opens the gates."""
    events, handle = services.build(queue_config=queue_config)
    gates = {action: Gated(action, services.gate(), log) for action in actions}
    for action, gate in gates.items():
        events.consumer(action)(gate.run)
    return events, handle, gates


def log_end(task: asyncio.Future[Any], log: list[str], what: str) -> None:
    task.add_done_callback(lambda _: log.append(what))


async def no_consumer(channel: Channel, queue: str) -> bool:
    return await consumer_count(channel, queue) == 0


async def test_cancel_lets_inflight_handler_finish_and_acks(
    services: Services, amqp_channel: Channel
) -> None:
    log: list[str] = []
    # Prefetch 1: a redelivered WORK would reach the second consumer before its sentinel.
    events, handle, gates = gated_service(
        services, log, "WORK", queue_config=QueueConfig(prefetch_count=1)
    )
    gate = gates["WORK"]
    sentinels: Calls[None] = Calls()

    @events.consumer("SENTINEL")
    async def sentinel() -> None:
        sentinels.add(None)

    target = services.target()
    queue = target.queue_name
    task = await services.consume(handle, target)
    log_end(task, log, "consume ended")
    await publish_raw(amqp_channel, event("WORK", {}), queue)
    await asyncio.wait_for(gate.started.wait(), timeout=5)

    task.cancel()
    # It stopped taking deliveries at once: the broker has no consumer on the queue any more
    # while the handler still runs, and consume waits for it.
    await eventually(lambda: no_consumer(amqp_channel, queue), what="the consumer cancelled")
    assert not task.done(), "cancel did not wait for the in-flight handler"
    gate.release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)

    assert log == ["WORK finished", "consume ended"]
    # The consumer's channel is closed: an unacked delivery would be ready again.
    assert await queue_depth(amqp_channel, queue) == 0
    # A fresh consumer gets the sentinel and nothing before it.
    await services.consume(handle, target)
    await publish_raw(amqp_channel, event("SENTINEL", {}), queue)
    await sentinels.count(1)
    await handle.close()
    assert gate.runs == 1
    assert await queue_depth(amqp_channel, queue) == 0


async def test_close_stops_all_queues_gracefully(services: Services, amqp_channel: Channel) -> None:
    log: list[str] = []
    _, handle, gates = gated_service(services, log, "FIRST", "SECOND")
    first = services.target(exchange_name=services.names.exchange(), exchange_type="fanout")
    second = services.target()
    tasks = [await services.consume(handle, first), await services.consume(handle, second)]
    await publish_raw(amqp_channel, event("FIRST", {}), first.queue_name)
    await publish_raw(amqp_channel, event("SECOND", {}), second.queue_name)
    for gate in gates.values():
        await asyncio.wait_for(gate.started.wait(), timeout=5)

    closing = asyncio.ensure_future(handle.close())
    log_end(closing, log, "close returned")
    for target in (first, second):
        await eventually(
            lambda q=target.queue_name: no_consumer(amqp_channel, q),
            what=f"no consumer on {target.queue_name}",
        )
    assert not closing.done(), "close did not wait for the in-flight handlers"
    for gate in gates.values():
        gate.release.set()
    await asyncio.wait_for(closing, timeout=5)

    assert sorted(log[:2]) == ["FIRST finished", "SECOND finished"]
    assert log[2:] == ["close returned"]
    assert all(task.done() for task in tasks)
    assert handle.connection_count == 0
    assert handle.status() == []
    for target in (first, second):
        assert await consumer_count(amqp_channel, target.queue_name) == 0
        assert await queue_depth(amqp_channel, target.queue_name) == 0
    assert [gate.runs for gate in gates.values()] == [1, 1]


async def test_handler_past_grace_timeout_is_cancelled_and_redelivered(
    services: Services, amqp_channel: Channel
) -> None:
    log: list[str] = []
    _, handle, gates = gated_service(services, log, "STUCK")
    gate = gates["STUCK"]
    target = services.target(queue_config=QueueConfig(grace_timeout=0.3))
    queue = target.queue_name
    task = await services.consume(handle, target)
    await publish_raw(amqp_channel, event("STUCK", {}), queue)
    await asyncio.wait_for(gate.started.wait(), timeout=5)

    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    assert loop.time() - cancelled_at >= 0.25  # it did grant the grace time

    await asyncio.wait_for(gate.stopped.wait(), timeout=5)
    assert log == ["STUCK cancelled"]
    [message] = await collect(amqp_channel, queue, 1)
    assert message.delivery.redelivered  # type: ignore[union-attr]
    assert orjson.loads(message.body) == {"action": "STUCK", "data": {}}


async def test_close_right_after_starting_consume_stops_it(services: Services) -> None:
    """A consume task that has not run its first step yet is stopped by close() too."""
    _, handle = services.build()
    task = asyncio.create_task(handle.consume(services.target("early")))
    await handle.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert handle.status() == []
