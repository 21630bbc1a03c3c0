"""A consumer never acks what it has not handled, nor loses a retry it could not publish."""

from __future__ import annotations

import asyncio

import aiormq.abc

from eventrabbit import QueueConfig, RetryConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel
from tests.conftest import Names
from tests.helpers import consumer_count, publish_raw, queue_depth, wait_for

Channel = aiormq.abc.AbstractChannel


async def test_out_of_order_finishes_are_acked_and_the_slow_one_is_not(
    broker_url: str, names: Names, amqp_channel: Channel
) -> None:
    """The first delivery blocks while the nine after it finish: those nine are acked, and
    when the service stops without grace only the first comes back."""
    queue = names.queue("acks")
    release = asyncio.Event()
    handled: list[int] = []
    events, handle = build_event_dependencies(broker_url)

    @events.consumer(action="WORK")
    async def work(n: int) -> None:
        if n == 0:
            await release.wait()
        handled.append(n)

    channel = ConsumeChannel(
        url=broker_url, queue_name=queue, queue_config=QueueConfig(prefetch_count=10)
    )
    task = asyncio.create_task(handle.consume(channel))
    try:
        await wait_for(lambda: consumer_count(amqp_channel, queue), message="consuming")
        for n in range(10):
            body = b'{"action": "WORK", "data": {"n": %d}}' % n
            await publish_raw(amqp_channel, body, routing_key=queue)
        await wait_for(lambda: sorted(handled) == list(range(1, 10)), message="nine handled")
    finally:
        await handle.close(timeout=0)  # the blocked handler is cancelled, its message unacked
    assert task.done()
    assert await queue_depth(amqp_channel, queue) == 1
    message = await amqp_channel.basic_get(queue, no_ack=True)
    assert message.body == b'{"action": "WORK", "data": {"n": 0}}'
    assert message.delivery.redelivered


async def test_a_burst_is_acked_completely(
    broker_url: str, names: Names, amqp_channel: Channel
) -> None:
    """2,000 quick handlers: every delivery is acked, none is left for redelivery."""
    queue = names.queue("burst")
    await amqp_channel.queue_declare(queue, durable=True)
    for n in range(2000):
        body = b'{"action": "TICK", "data": {"n": %d}}' % n
        await amqp_channel.basic_publish(body, routing_key=queue)
    seen: set[int] = set()
    events, handle = build_event_dependencies(broker_url)

    @events.consumer(action="TICK")
    async def tick(n: int) -> None:
        seen.add(n)

    task = asyncio.create_task(
        handle.consume(
            ConsumeChannel(broker_url, queue, queue_config=QueueConfig(prefetch_count=100))
        )
    )
    try:
        await wait_for(lambda: len(seen) == 2000, timeout=30, message="2,000 handled")
    finally:
        await handle.close()
    assert task.done()
    assert await queue_depth(amqp_channel, queue) == 0


async def test_a_deleted_delay_queue_is_redeclared_and_the_retry_not_lost(
    broker_url: str, names: Names, amqp_channel: Channel
) -> None:
    """Someone deletes ``<q>.delay`` under a running service: the retry copy is refused
    (unroutable), the message stays unacked, the channel is replaced, the topology redeclared,
    and the message is retried after all."""
    queue = names.queue("lostdelay")
    attempts: list[int] = []
    events, handle = build_event_dependencies(
        broker_url, retry_config=RetryConfig(max_retries=3, retry_delay_seconds=0.2)
    )

    @events.consumer(action="FLAKY")
    async def flaky(n: int) -> None:
        attempts.append(n)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    task = asyncio.create_task(handle.consume(ConsumeChannel(url=broker_url, queue_name=queue)))
    try:
        await wait_for(lambda: consumer_count(amqp_channel, queue), message="consuming")
        await amqp_channel.queue_delete(queue + ".delay")
        await publish_raw(amqp_channel, b'{"action": "FLAKY", "data": {"n": 1}}', routing_key=queue)
        await wait_for(lambda: len(attempts) >= 2, timeout=15, message="retried after all")
    finally:
        await handle.close()
    assert task.done()
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, queue + ".dlq") == 0
