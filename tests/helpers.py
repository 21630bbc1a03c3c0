"""Helpers for tests that run against a broker: the real RabbitMQ or the in-memory one.

Tests observe the broker through a second, independent raw aiormq client
(the ``amqp_channel`` fixture) and these helpers, never through eventrabbit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import aiormq
import aiormq.abc
import orjson
from aiormq import spec
from yarl import URL

from eventrabbit.common import ConsumeChannel
from eventrabbit.handle import Handle

BROKER_URL = os.environ.get("EVENTRABBIT_TEST_URL", "amqp://guest:guest@localhost:5672/")


def censor_url(url: str) -> str:
    """Return ``url`` with its password replaced, for messages and logs."""
    parsed = URL(url)
    if parsed.password:
        return str(parsed.with_password("******"))
    return str(parsed)


def event(action: str, data: Any) -> bytes:
    """The body of an event as eventrabbit publishes it: ``{"action": ..., "data": ...}``."""
    return orjson.dumps({"action": action, "data": data})


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


async def assert_absent(
    channel: aiormq.abc.AbstractChannel,
    *,
    queues: Iterable[str] = (),
    exchanges: Iterable[str] = (),
) -> None:
    """None of ``queues`` and ``exchanges`` exists: a passive declare of each fails with 404.

    Each declare runs on a short-lived channel of ``channel``'s connection (a 404 closes it).
    """
    present = []
    for kind, found in (("queue", queues), ("exchange", exchanges)):
        for name in found:
            probe = await channel.connection.channel(publisher_confirms=False)
            try:
                if kind == "queue":
                    await probe.queue_declare(name, passive=True)
                else:
                    await probe.exchange_declare(name, exchange_type="direct", passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                continue
            finally:
                if not probe.is_closed:
                    await probe.close()
            present.append(f"{kind} {name!r}")
    assert not present, f"still there: {', '.join(present)}"


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


def depth_is(
    channel: aiormq.abc.AbstractChannel, queue: str, n: int
) -> Callable[[], Awaitable[bool]]:
    """A ``wait_for`` predicate: ``queue`` holds exactly ``n`` ready messages."""

    async def check() -> bool:
        return await queue_depth(channel, queue) == n

    check.__qualname__ = f"depth of {queue} == {n}"
    return check


async def until_consumed(
    task: asyncio.Future[Any],
    probe: aiormq.abc.AbstractChannel,
    queue: str,
    timeout: float = 10.0,  # noqa: ASYNC109 - the deadline also bounds the polling
) -> None:
    """Wait until ``queue`` has a consumer; if ``task`` (running consume) ends first, fail at
    once with what ended it instead of after the timeout."""

    async def ready() -> bool:
        return task.done() or await consumer_count(probe, queue) >= 1

    await wait_for(ready, timeout=timeout, message=f"a consumer on {queue}")
    if task.done():
        task.result()  # raises what ended consume
        raise AssertionError(f"consume of {queue} returned on its own")


async def start_consuming(
    handle: Handle, probe: aiormq.abc.AbstractChannel, target: ConsumeChannel
) -> asyncio.Task[None]:
    """Start ``handle.consume(target)``; return its task once the queue has a consumer."""
    task = asyncio.create_task(handle.consume(target))
    await until_consumed(task, probe, target.queue_name)
    return task


@contextlib.asynccontextmanager
async def serving(
    handle: Handle, probe: aiormq.abc.AbstractChannel, target: ConsumeChannel
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``handle.consume(target)`` until the block ends, then ``handle.close()``.

    Raises AssertionError if consume ended with an error.
    """
    task = asyncio.create_task(handle.consume(target))
    try:
        await until_consumed(task, probe, target.queue_name)
        yield task
    finally:
        await handle.close()
        task.cancel()
        results = await asyncio.gather(task, return_exceptions=True)
    if results and isinstance(results[0], Exception):
        raise AssertionError(f"consume ended with {results[0]!r}") from results[0]


async def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl -q *args`` against the local (real) broker; return its output."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "-q",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def named_connections(name: str) -> list[tuple[str, int]]:
    """(pid, channel count) of the real broker's connections whose client named itself
    ``name`` (``?name=`` in the URL)."""
    out = await rabbitmqctl(
        "list_connections", "--no-table-headers", "pid", "client_properties", "channels"
    )
    found = []
    for line in out.splitlines():
        pid, properties, channels = line.split("\t")
        if f'{{"connection_name","{name}"}}' in properties:
            found.append((pid, int(channels)))
    return found


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
