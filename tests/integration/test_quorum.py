"""Quorum queues: declared as asked, and a delivery limit dead-letters instead of dropping."""

from __future__ import annotations

import asyncio

import aiormq.abc
import pytest

from eventrabbit import QueueConfig, RetryConfig, TopologyError, build_event_dependencies
from eventrabbit.common import ConsumeChannel
from tests.conftest import Names
from tests.helpers import consumer_count, get_one, publish_raw, wait_for

Channel = aiormq.abc.AbstractChannel

pytestmark = pytest.mark.real_broker  # quorum queues and delivery limits are RabbitMQ's own


async def test_a_message_over_the_delivery_limit_goes_to_the_dead_letter_queue(
    broker_url: str, names: Names, amqp_channel: Channel
) -> None:
    """A handler that never finishes (a process that crashes on the message every time) is
    redelivered until the limit, then RabbitMQ dead-letters it into ``<q>.dlq``."""
    queue = names.queue("quorum")
    body = b'{"action": "CRASH", "data": {}}'
    assert await crash_on_the_next_delivery(broker_url, queue, amqp_channel, publish=body)
    deliveries = 1
    while await crash_on_the_next_delivery(broker_url, queue, amqp_channel):
        deliveries += 1
        assert deliveries <= 3, "the delivery limit of 2 did not stop the redeliveries"
    dead = await get_one(amqp_channel, queue + ".dlq")
    assert dead.body == body


async def crash_on_the_next_delivery(
    url: str, queue: str, probe: Channel, publish: bytes | None = None
) -> bool:
    """Start a service whose handler hangs; "crash" it (close without grace) once a delivery
    arrived. Returns whether one arrived within 3 s."""
    started = asyncio.Event()
    events, handle = build_event_dependencies(url, retry_config=RetryConfig(0))

    @events.consumer(action="CRASH")
    async def crash() -> None:
        started.set()
        await asyncio.Event().wait()  # never returns: only the process' death ends it

    config = QueueConfig(queue_type="quorum", delivery_limit=2, grace_timeout=0)
    task = asyncio.create_task(handle.consume(ConsumeChannel(url, queue, queue_config=config)))
    try:
        await wait_for(lambda: consumer_count(probe, queue), message="consuming")
        if publish is not None:
            await publish_raw(probe, publish, routing_key=queue)
        await asyncio.wait_for(started.wait(), 3)
    except TimeoutError:
        return False
    finally:
        await handle.close(timeout=0)  # the "crash": the delivery is returned unacked
        assert task.done()
    return True


async def test_a_classic_queue_cannot_become_quorum(
    broker_url: str, names: Names, amqp_channel: Channel
) -> None:
    queue = names.queue("classic")
    await amqp_channel.queue_declare(queue, durable=True)
    _, handle = build_event_dependencies(broker_url)
    config = QueueConfig(queue_type="quorum")
    try:
        with pytest.raises(TopologyError, match=queue):
            await asyncio.wait_for(
                handle.consume(ConsumeChannel(broker_url, queue, queue_config=config)), 10
            )
    finally:
        await handle.close()
