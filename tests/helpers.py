"""Helpers for tests that run against a real RabbitMQ broker.

Tests observe the broker through a second, independent raw aiormq client
(the ``amqp_channel`` fixture) and these helpers, never through eventrabbit.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import Callable
from typing import Any

import aiormq
import aiormq.abc
from aiormq import spec
from yarl import URL

BROKER_URL = os.environ.get("EVENTRABBIT_TEST_URL", "amqp://guest:guest@localhost:5672/")


def censor_url(url: str) -> str:
    """Return ``url`` with its password replaced, for messages and logs."""
    parsed = URL(url)
    if parsed.password:
        return str(parsed.with_password("******"))
    return str(parsed)


def unique(prefix: str) -> str:
    """A broker object name no other test (or earlier run) uses: ``test.<prefix>.<8 hex>``."""
    return f"test.{prefix}.{uuid.uuid4().hex[:8]}"


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 10.0,  # noqa: ASYNC109 - the deadline also bounds the polling
    interval: float = 0.02,
    message: str | None = None,
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns a truthy value, and return it.

    Raises AssertionError when ``timeout`` seconds pass first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            what = message or getattr(predicate, "__qualname__", repr(predicate))
            raise AssertionError(f"condition not met within {timeout} s: {what}")
        await asyncio.sleep(interval)


async def collect(
    channel: aiormq.abc.AbstractChannel,
    queue: str,
    n: int,
    timeout: float = 10.0,  # noqa: ASYNC109 - also reported in the AssertionError
) -> list[aiormq.abc.DeliveredMessage]:
    """Consume exactly ``n`` messages from ``queue``, ack them and return them in order.

    The consumer runs on its own channel of ``channel``'s connection with
    prefetch ``n``, so the broker never hands it more than ``n`` messages:
    nothing beyond the ``n`` is left unacked or redelivered, and the caller's
    channel keeps its QoS. On timeout the channel is closed (the broker
    requeues what arrived) and AssertionError says how many arrived. The
    returned messages are already acked; their ``channel`` is closed.
    """
    if not 0 <= n <= 65535:  # basic.qos prefetch_count is a short
        raise ValueError(f"n must be within 0..65535, not {n}")
    if n == 0:
        return []

    received: list[aiormq.abc.DeliveredMessage] = []
    done = asyncio.Event()

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        received.append(message)
        if len(received) >= n:
            done.set()

    consumer_channel = await channel.connection.channel(publisher_confirms=False)
    try:
        await consumer_channel.basic_qos(prefetch_count=n)
        ok = await consumer_channel.basic_consume(queue, on_message, no_ack=False)
        try:
            async with asyncio.timeout(timeout):
                await done.wait()
        except TimeoutError:
            raise AssertionError(
                f"expected {n} message(s) from queue {queue!r} within {timeout} s, "
                f"{len(received)} arrived"
            ) from None
        assert ok.consumer_tag is not None
        await consumer_channel.basic_cancel(ok.consumer_tag)
        for message in received:
            assert message.delivery_tag is not None
            await consumer_channel.basic_ack(message.delivery_tag)
    finally:
        # Closing after the acks is ordered behind them on the wire.
        await consumer_channel.close()
    return received


async def get_one(
    channel: aiormq.abc.AbstractChannel,
    queue: str,
    timeout: float = 10.0,  # noqa: ASYNC109 - the deadline also bounds the polling
    interval: float = 0.02,
) -> aiormq.abc.DeliveredMessage:
    """Poll ``queue`` with basic.get until a message arrives; ack it and return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await channel.basic_get(queue, no_ack=False, timeout=timeout)
        if isinstance(message.delivery, spec.Basic.GetOk):
            assert message.delivery_tag is not None
            await channel.basic_ack(message.delivery_tag)
            return message
        if loop.time() >= deadline:
            raise AssertionError(f"no message arrived on queue {queue!r} within {timeout} s")
        await asyncio.sleep(interval)


async def queue_depth(channel: aiormq.abc.AbstractChannel, queue: str) -> int:
    """Number of ready (not unacked) messages in ``queue``, via a passive declare.

    The declare runs on a short-lived channel of the same connection: if the
    queue does not exist the broker closes that channel (404), not the
    caller's, and the ChannelNotFoundEntity propagates.
    """
    probe = await channel.connection.channel(publisher_confirms=False)
    try:
        ok = await probe.queue_declare(queue, passive=True)
    finally:
        await probe.close()
    assert ok.message_count is not None
    return ok.message_count


async def consumer_count(channel: aiormq.abc.AbstractChannel, queue: str) -> int:
    """Consumers of ``queue`` (0 when it does not exist yet), via a passive declare."""
    probe = await channel.connection.channel(publisher_confirms=False)
    try:
        ok = await probe.queue_declare(queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return 0
    finally:
        if not probe.is_closed:
            await probe.close()
    return int(ok.consumer_count or 0)


async def publish_raw(
    channel: aiormq.abc.AbstractChannel,
    body: bytes,
    routing_key: str,
    exchange: str = "",
    **properties: Any,
) -> None:
    """Publish ``body`` with ``spec.Basic.Properties(**properties)`` and await the confirm.

    ``channel`` must have publisher confirms on (``amqp_channel`` has); a nack
    raises AssertionError.
    """
    confirm = await channel.basic_publish(
        body,
        exchange=exchange,
        routing_key=routing_key,
        properties=spec.Basic.Properties(**properties),
    )
    if not isinstance(confirm, spec.Basic.Ack):
        raise AssertionError(
            f"publish to exchange {exchange!r} with routing key {routing_key!r} "
            f"was not confirmed: {confirm!r}"
        )
