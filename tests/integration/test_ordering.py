"""Ordered queues and single active consumers (README: Ordering), on both brokers.

Order is observed as the handlers see it, and what is left in the queues through the raw
aiormq client: the head of a queue, the dead-lettered copy.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiormq.abc
import pytest

import eventrabbit
from eventrabbit import (
    ConsumeChannel,
    PartitionedChannel,
    QueueConfig,
    RetryConfig,
    build_event_dependencies,
)
from eventrabbit.testing import memory_broker
from tests.conftest import Services
from tests.helpers import Calls, collect, event, publish_raw, queue_depth

Channel = aiormq.abc.AbstractChannel
ORDERED = QueueConfig(ordered=True, grace_timeout=1.0)


async def publish(channel: Channel, queue: str, numbers: range | list[int]) -> None:
    for n in numbers:
        await publish_raw(channel, event("STEP", {"n": n}), queue, message_id=f"m{n}")


def numbers_of(messages: list[aiormq.abc.DeliveredMessage]) -> list[str | None]:
    return [m.header.properties.message_id for m in messages]


async def test_an_ordered_queue_handles_one_at_a_time_in_publish_order(
    services: Services, amqp_channel: Channel
) -> None:
    target = services.target("ordered", queue_config=ORDERED)
    events, handle = services.build()
    calls: Calls[int] = Calls()
    running = 0
    most = 0

    @events.consumer("STEP")
    async def step(n: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(n % 4):  # uneven handlers: unordered, later ones would finish first
            await asyncio.sleep(0)
        running -= 1
        calls.add(n)

    await services.consume(handle, target)
    await publish(amqp_channel, target.queue_name, range(60))
    assert await calls.count(60) == list(range(60))
    assert most == 1


async def test_a_failure_is_retried_in_place_and_nothing_overtakes_it(
    services: Services, amqp_channel: Channel
) -> None:
    delay = 0.3
    target = services.target("ordered", queue_config=ORDERED)
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=3, retry_delay_seconds=delay)
    )
    loop = asyncio.get_running_loop()
    calls: Calls[tuple[int, float]] = Calls()

    @events.consumer("STEP")
    async def step(n: int) -> None:
        calls.add((n, loop.time()))
        if n == 0 and len(calls) < 3:
            raise RuntimeError("not yet")

    await services.consume(handle, target)
    await publish(amqp_channel, target.queue_name, range(4))
    seen = await calls.count(6)
    assert [n for n, _ in seen] == [0, 0, 0, 1, 2, 3]
    times = [t for _, t in seen]
    assert times[1] - times[0] >= delay * 0.9
    assert times[2] - times[1] >= delay * 0.9
    # No retry copy anywhere: an ordered queue has no delay queue, its dead-letter queue is empty.
    assert await queue_depth(amqp_channel, target.queue_name + ".dlq") == 0
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await queue_depth(amqp_channel, target.queue_name + ".delay")


async def test_exhausted_retries_dead_letter_the_message_and_the_queue_goes_on(
    services: Services, amqp_channel: Channel
) -> None:
    target = services.target("ordered", queue_config=ORDERED)
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=1, retry_delay_seconds=0.05)
    )
    calls: Calls[int] = Calls()

    @events.consumer("STEP")
    async def step(n: int) -> None:
        calls.add(n)
        if n == 1:
            raise RuntimeError("always")

    await services.consume(handle, target)
    await publish(amqp_channel, target.queue_name, range(4))
    assert await calls.count(5) == [0, 1, 1, 2, 3]
    [dead] = await collect(amqp_channel, target.queue_name + ".dlq", 1)
    assert dead.header.properties.message_id == "m1"
    headers = dead.header.properties.headers or {}
    assert headers["x-eventrabbit-error"] == "RuntimeError: always"


async def test_bad_input_is_dead_lettered_at_once_even_when_the_queue_stops_on_failure(
    services: Services, amqp_channel: Channel
) -> None:
    config = QueueConfig(ordered=True, on_exhausted="stop")
    target = services.target("ordered", queue_config=config)
    events, handle = services.build(retry_config=RetryConfig(max_retries=-1))
    calls: Calls[int] = Calls()

    @events.consumer("STEP")
    async def step(n: int) -> None:
        calls.add(n)

    await services.consume(handle, target)
    await publish_raw(amqp_channel, b"not json", target.queue_name, message_id="bad")
    await publish(amqp_channel, target.queue_name, [1])
    assert await calls.count(1) == [1]
    assert numbers_of(await collect(amqp_channel, target.queue_name + ".dlq", 1)) == ["bad"]


async def test_stop_on_exhaustion_ends_consume_and_leaves_the_message_first(
    services: Services, amqp_channel: Channel
) -> None:
    config = QueueConfig(ordered=True, on_exhausted="stop", grace_timeout=1.0)
    target = services.target("ordered", queue_config=config)
    retry = RetryConfig(max_retries=1, retry_delay_seconds=0.05)
    events, handle = services.build(retry_config=retry)
    calls: Calls[int] = Calls()

    @events.consumer("STEP")
    async def step(n: int) -> None:
        calls.add(n)
        if n == 1:
            raise RuntimeError("broken projection")

    task = await services.consume(handle, target)
    await publish(amqp_channel, target.queue_name, range(4))
    with pytest.raises(eventrabbit.OrderedQueueStopped) as info:
        await asyncio.wait_for(task, 10)
    assert (info.value.queue, info.value.message_id) == (target.queue_name, "m1")
    assert "broken projection" in str(info.value)
    assert calls.values == [0, 1, 1]
    [status] = handle.status()
    assert not status.consuming
    assert status.last_error is not None
    assert status.last_error.startswith("OrderedQueueStopped: ")
    # Nothing was dead-lettered; the failing message is first in the queue, the rest behind it.
    assert await queue_depth(amqp_channel, target.queue_name + ".dlq") == 0
    left = await collect(amqp_channel, target.queue_name, 3, ack=False)
    assert numbers_of(left) == ["m1", "m2", "m3"]

    # Fixed and consumed again: it comes first.
    fixed, fixed_handle = services.build(retry_config=retry)
    again: Calls[int] = Calls()

    @fixed.consumer("STEP")
    async def fixed_step(n: int) -> None:
        again.add(n)

    await services.consume(fixed_handle, target)
    assert await again.count(3) == [1, 2, 3]


async def test_a_stop_while_retrying_in_place_leaves_the_message_first(
    services: Services, amqp_channel: Channel
) -> None:
    target = services.target("ordered", queue_config=ORDERED)
    # A retry delay far beyond the test: the stop must end the wait, not the delay.
    events, handle = services.build(retry_config=RetryConfig(retry_delay_seconds=3600))
    calls: Calls[int] = Calls()

    @events.consumer("STEP")
    async def step(n: int) -> None:
        calls.add(n)
        raise RuntimeError("down")

    await services.consume(handle, target)
    await publish(amqp_channel, target.queue_name, range(3))
    await calls.count(1)
    await handle.close()
    assert calls.values == [0]
    left = await collect(amqp_channel, target.queue_name, 3, ack=False)
    assert numbers_of(left) == ["m0", "m1", "m2"]
    assert left[0].delivery.redelivered  # type: ignore[union-attr]


# --- single active consumer -------------------------------------------------------------------

SAC = QueueConfig(ordered=True, single_active_consumer=True, grace_timeout=0.2)


@pytest.mark.parametrize("queue_type", [None, "quorum"])
async def test_single_active_consumer_one_process_gets_all_then_the_next_in_order(
    services: Services, amqp_channel: Channel, queue_type: str | None
) -> None:
    config = dataclasses.replace(SAC, queue_type=queue_type)
    target = services.target("sac", queue_config=config)
    seen: dict[str, Calls[int]] = {"first": Calls(), "second": Calls()}
    gate = services.gate()
    handles = []
    for name in seen:
        events, handle = services.build()

        def make(calls: Calls[int], hold: bool) -> Any:
            async def step(n: int) -> None:
                calls.add(n)
                if hold and n == 5:
                    await gate.wait()  # held mid-handling when its process stops

            return step

        events.consumer("STEP")(make(seen[name], hold=name == "first"))
        await services.consume(handle, target)
        handles.append(handle)

    await publish(amqp_channel, target.queue_name, range(20))
    assert await seen["first"].count(6) == [0, 1, 2, 3, 4, 5]
    assert seen["second"].values == []
    await handles[0].close()  # the grace time runs out: message 5 goes back, unacked
    assert await seen["second"].count(15) == list(range(5, 20))
    assert seen["first"].values == [0, 1, 2, 3, 4, 5]


async def test_single_active_consumer_on_an_existing_plain_queue_is_a_topology_error(
    services: Services, amqp_channel: Channel
) -> None:
    target = services.target("sac")
    await amqp_channel.queue_declare(target.queue_name, durable=True)
    sac = ConsumeChannel(target.url, target.queue_name, queue_config=SAC)
    _, handle = services.build()
    with pytest.raises(eventrabbit.TopologyError, match="x-single-active-consumer"):
        await services.consume(handle, sac)


async def test_an_ordered_queue_without_single_active_consumer_is_reused_as_it_is(
    services: Services, amqp_channel: Channel
) -> None:
    target = services.target("ordered", queue_config=ORDERED)
    await amqp_channel.queue_declare(target.queue_name, durable=True)
    events, handle = services.build()
    calls: Calls[int] = Calls()

    @events.consumer("STEP")
    async def step(n: int) -> None:
        calls.add(n)

    await services.consume(handle, target)
    await publish(amqp_channel, target.queue_name, range(3))
    assert await calls.count(3) == [0, 1, 2]


# --- partitions -----------------------------------------------------------------------------
# Consumed for real in tests/faults/test_partitions.py (a private node with the plugin).


async def test_partitions_on_a_broker_without_the_plugin_are_a_topology_error() -> None:
    # The in-memory broker knows no x-consistent-hash exchange, as RabbitMQ without its plugin.
    with memory_broker() as broker:
        _, handle = build_event_dependencies(broker.url)
        [channel] = PartitionedChannel(broker.url, "orders", partitions=1).channels()
        try:
            with pytest.raises(
                eventrabbit.TopologyError, match="unknown exchange type 'x-consistent-hash'"
            ):
                await asyncio.wait_for(handle.consume(channel), 10)
        finally:
            await handle.close()


async def test_single_active_consumer_on_the_wire(
    services: Services, amqp_channel: Channel
) -> None:
    """Two raw consumers of a queue eventrabbit declared with ``single_active_consumer``: the
    first gets everything; when its channel closes with messages unacked, the second gets those
    first, in order, then the rest."""
    target = services.target("sac", queue_config=SAC)
    _, handle = services.build()
    await services.consume(handle, target)  # declares the queue
    await handle.close()
    queue = target.queue_name
    seen: dict[str, Calls[str | None]] = {"first": Calls(), "second": Calls()}
    channels = {}
    for name, calls in seen.items():
        channel = await amqp_channel.connection.channel()
        await channel.basic_qos(prefetch_count=10)

        def record(calls: Calls[str | None] = calls) -> Any:
            async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
                calls.add(message.header.properties.message_id)

            return on_message

        await channel.basic_consume(queue, record())
        channels[name] = channel
    await publish(amqp_channel, queue, range(3))
    assert await seen["first"].count(3) == ["m0", "m1", "m2"]  # held unacked
    await channels["first"].close()
    await publish(amqp_channel, queue, range(3, 5))
    assert await seen["second"].count(5) == ["m0", "m1", "m2", "m3", "m4"]
    await channels["second"].close()
