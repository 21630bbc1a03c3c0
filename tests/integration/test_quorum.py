"""Quorum queues: declared as asked, and a delivery limit dead-letters instead of dropping."""

from __future__ import annotations

import asyncio

import aiormq.abc
import pytest

from eventrabbit import Handle, QueueConfig, RetryConfig, TopologyError
from tests.conftest import Services
from tests.helpers import collect, publish_raw

Channel = aiormq.abc.AbstractChannel

pytestmark = pytest.mark.real_broker  # quorum queues and delivery limits are RabbitMQ's own


def crashing_service(services: Services) -> tuple[Handle, asyncio.Event]:
    """A service whose CRASH handler sets the event and then never finishes."""
    started = asyncio.Event()
    events, handle = services.build(retry_config=RetryConfig(0))

    @events.consumer(action="CRASH")
    async def crash() -> None:
        started.set()
        await asyncio.Event().wait()  # never returns: only the process' death ends it

    return handle, started


async def test_a_message_over_the_delivery_limit_goes_to_the_dead_letter_queue(
    services: Services, amqp_channel: Channel
) -> None:
    """A handler that never finishes (a process that crashes on the message every time) is
    redelivered until the limit, then RabbitMQ dead-letters it into ``<q>.dlq``."""
    config = QueueConfig(queue_type="quorum", delivery_limit=2, grace_timeout=0)
    target = services.target("quorum", queue_config=config)
    body = b'{"action": "CRASH", "data": {}}'
    deliveries = 0
    dead: asyncio.Task[list[aiormq.abc.DeliveredMessage]] | None = None
    while dead is None or not dead.done():
        handle, started = crashing_service(services)
        await services.consume(handle, target)
        if dead is None:  # the first service declared the queues
            await publish_raw(amqp_channel, body, routing_key=target.queue_name)
            dead = asyncio.create_task(collect(amqp_channel, f"{target.queue_name}.dlq", 1))
        # Either the message comes once more, or it went to the dead-letter queue for good.
        delivered = asyncio.ensure_future(started.wait())
        await asyncio.wait({delivered, dead}, return_when=asyncio.FIRST_COMPLETED)
        delivered.cancel()
        deliveries += started.is_set()
        await handle.close(timeout=0)  # the "crash": a delivery is returned unacked
        assert deliveries <= 3, "the delivery limit of 2 did not stop the redeliveries"
    [message] = dead.result()
    assert message.body == body
    assert deliveries == 3  # the first delivery and the two redeliveries the limit allows


async def test_a_classic_queue_cannot_become_quorum(
    services: Services, amqp_channel: Channel
) -> None:
    target = services.target("classic", queue_config=QueueConfig(queue_type="quorum"))
    await amqp_channel.queue_declare(target.queue_name, durable=True)
    _, handle = services.build()
    with pytest.raises(TopologyError, match=target.queue_name):
        await asyncio.wait_for(handle.consume(target), 10)
