"""Helpers for tests that run against a broker: the real RabbitMQ or the in-memory one.

Tests observe the broker through a second, independent raw aiormq client (the
``amqp_channel`` fixture) and these helpers, never through eventrabbit's view of itself.

One way to wait for each kind of thing, and never a fixed sleep:

- a consumer: ``await handle.ready(channel)`` (eventrabbit's readiness API);
- a message: consume it, :func:`collect` (an event per delivery, with a deadline);
- a handler call: an event the handler sets, e.g. :class:`Calls`;
- state nothing announces (a queue's depth, the broker's connection list, another process'
  consumers): :func:`eventually`, the one polling primitive, with a deadline.

That something does *not* happen is shown by driving the system to a known point with an
event (a sentinel published behind it and handled), never by waiting a while.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import aiormq
import aiormq.abc
import orjson
from aiormq import spec
from yarl import URL

T = TypeVar("T")
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


#: Seconds a test waits for something before it fails (a deadline, not a speed requirement).
DEFAULT_TIMEOUT = 10.0
#: Seconds between two looks of :func:`eventually`.
POLL_INTERVAL = 0.02


async def eventually(
    check: Callable[[], Any],
    *,
    what: str,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the deadline also bounds the polling
    interval: float = POLL_INTERVAL,
) -> Any:
    """Look at state that has no event until ``check`` (sync or async) returns a truthy value.

    The one polling primitive of the suite, for what nothing announces: a queue's depth or its
    consumers on the real broker, the broker's connection list, another process' consumers.
    Everything else is waited for by its event: a consumer with ``handle.ready()``, a message
    by consuming it (:func:`collect`), a handler call by an ``asyncio`` event it sets
    (:class:`Calls`).

    :returns: the first truthy value ``check`` returned.
    :raises AssertionError: ``timeout`` seconds passed first; the message says ``what``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(interval)


class Calls(Generic[T]):
    """What a handler was called with, in order, and a wait for it that each call wakes."""

    def __init__(self) -> None:
        self.values: list[T] = []
        self._changed = asyncio.Event()

    def add(self, value: T) -> None:
        """Record one call (from the handler)."""
        self.values.append(value)
        self._changed.set()

    def __len__(self) -> int:
        return len(self.values)

    async def until(
        self,
        done: Callable[[list[T]], bool],
        what: str,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - reported in the AssertionError
    ) -> list[T]:
        """Wait until ``done(values)`` holds; return the values.

        :raises AssertionError: it did not within ``timeout`` seconds; says ``what`` and the
            values seen.
        """
        try:
            async with asyncio.timeout(timeout):
                while not done(self.values):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"not within {timeout} s: {what} (calls so far: {self.values[:20]!r})"
            ) from None
        return self.values

    async def count(
        self,
        n: int,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - reported in the AssertionError
    ) -> list[T]:
        """Wait until at least ``n`` calls were made; return the values."""
        return await self.until(lambda values: len(values) >= n, f"{n} call(s)", timeout)


async def collect(
    channel: aiormq.abc.AbstractChannel,
    queue: str,
    n: int,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - also reported in the AssertionError
    *,
    ack: bool = True,
) -> list[aiormq.abc.DeliveredMessage]:
    """Wait for exactly ``n`` messages from ``queue`` by consuming them; return them in order.

    The way to wait for a message: each delivery is an event, ``timeout`` the deadline.
    The consumer runs on its own channel of ``channel``'s connection with prefetch ``n``, so
    the broker never hands it more than ``n`` messages: nothing beyond the ``n`` is left
    unacked or redelivered, and the caller's channel keeps its QoS. On timeout the channel is
    closed (the broker requeues what arrived) and AssertionError says how many arrived. The
    returned messages' ``channel`` is closed.

    :param ack: take the messages (ack them); ``False`` leaves them in the queue (the channel
        closes with them unacked, so the broker requeues them, keeping their expiry).
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
        for message in received if ack else ():
            assert message.delivery_tag is not None
            await consumer_channel.basic_ack(message.delivery_tag)
    finally:
        # Closing after the acks is ordered behind them on the wire.
        await consumer_channel.close()
    return received


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


def named(url: str, prefix: str) -> tuple[str, str]:
    """``url`` with a unique client-given connection name (``?name=``), and that name.

    The real broker lists the connection under it (:func:`named_connections`).
    """
    name = f"test-{prefix}-{uuid.uuid4().hex[:8]}"
    return str(URL(url).update_query(name=name)), name


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


async def close_named_connections(name: str, reason: str = "test: closed by the broker") -> int:
    """Close the real broker's connections named ``name`` from the broker side; how many."""
    found = await named_connections(name)
    for pid, _ in found:
        await rabbitmqctl("close_connection", pid, reason)
    return len(found)


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
