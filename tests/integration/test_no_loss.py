"""A consumer never acks what it has not handled, nor loses a retry it could not publish."""

from __future__ import annotations

import asyncio

import aiormq.abc

from eventrabbit import QueueConfig, RetryConfig
from tests.conftest import Services
from tests.helpers import Calls, publish_raw, queue_depth

Channel = aiormq.abc.AbstractChannel


async def test_out_of_order_finishes_are_acked_and_the_slow_one_is_not(
    services: Services, amqp_channel: Channel
) -> None:
    """The first delivery blocks while the nine after it finish: those nine are acked, and
    when the service stops without grace only the first comes back."""
    release = services.gate()
    handled: Calls[int] = Calls()
    events, handle = services.build()

    @events.consumer(action="WORK")
    async def work(n: int) -> None:
        if n == 0:
            await release.wait()
        handled.add(n)

    target = services.target("acks", queue_config=QueueConfig(prefetch_count=10))
    queue = target.queue_name
    task = await services.consume(handle, target)
    for n in range(10):
        body = b'{"action": "WORK", "data": {"n": %d}}' % n
        await publish_raw(amqp_channel, body, routing_key=queue)
    assert sorted(await handled.count(9)) == list(range(1, 10))
    await handle.close(timeout=0)  # the blocked handler is cancelled, its message unacked
    assert task.done()
    assert await queue_depth(amqp_channel, queue) == 1
    message = await amqp_channel.basic_get(queue, no_ack=True)
    assert message.body == b'{"action": "WORK", "data": {"n": 0}}'
    assert message.delivery.redelivered


async def test_a_burst_is_acked_completely(services: Services, amqp_channel: Channel) -> None:
    """2,000 quick handlers: every delivery is acked, none is left for redelivery."""
    target = services.target("burst", queue_config=QueueConfig(prefetch_count=100))
    queue = target.queue_name
    await amqp_channel.queue_declare(queue, durable=True)
    for n in range(2000):
        body = b'{"action": "TICK", "data": {"n": %d}}' % n
        await amqp_channel.basic_publish(body, routing_key=queue)
    seen: set[int] = set()
    all_seen = asyncio.Event()
    events, handle = services.build()

    @events.consumer(action="TICK")
    async def tick(n: int) -> None:
        seen.add(n)
        if len(seen) == 2000:
            all_seen.set()

    task = services.start(handle, target)
    await asyncio.wait_for(all_seen.wait(), timeout=30)
    await handle.close()
    assert task.done()
    assert await queue_depth(amqp_channel, queue) == 0


async def test_a_deleted_delay_queue_is_redeclared_and_the_retry_not_lost(
    services: Services, amqp_channel: Channel
) -> None:
    """Someone deletes ``<q>.delay`` under a running service: the retry copy is refused
    (unroutable), the message stays unacked, the channel is replaced, the topology redeclared,
    and the message is retried after all."""
    attempts: Calls[int] = Calls()
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=3, retry_delay_seconds=0.2)
    )

    @events.consumer(action="FLAKY")
    async def flaky(n: int) -> None:
        attempts.add(n)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    target = services.target("lostdelay")
    queue = target.queue_name
    task = await services.consume(handle, target)
    await amqp_channel.queue_delete(queue + ".delay")
    await publish_raw(amqp_channel, b'{"action": "FLAKY", "data": {"n": 1}}', routing_key=queue)
    await attempts.count(2, timeout=15)  # retried after all
    await handle.close()
    assert task.done()
    assert handle.status() == []
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, queue + ".dlq") == 0
