"""The ``handle`` of a service: runs consumers, keeps them running, and shuts them down.

``consume`` is a loop around one :class:`~eventrabbit.consumer.QueueConsumer`: connect (the
connection shared per URL), open a channel, declare the topology, consume, and wait until the
channel is lost or the broker cancels the consumer — then back off and do it again. Only a
topology error (a programming error) or cancellation ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import aiormq
import aiormq.abc

from .acks import CHANNEL_GONE
from .common import ConsumeChannel, QueueConfig, ReconnectConfig, RetryConfig
from .connection import ConnectionPool, as_urls, backoff, censor
from .consumer import QueueConsumer
from .errors import BrokerUnavailable
from .registry import Events
from .topology import declare

log = logging.getLogger(__name__)

# Faults that a reconnect can cure; anything else is a bug and propagates.
_RECOVERABLE = (*CHANNEL_GONE, BrokerUnavailable, OSError, TimeoutError)


class Handle:
    """Consumes queues for the handlers registered on the matching ``events``."""

    def __init__(
        self,
        events: Events,
        *,
        retry_config: RetryConfig,
        queue_config: QueueConfig,
        reconnect: ReconnectConfig,
    ) -> None:
        self.events = events
        self.registry = events.registry
        self.retry_config = retry_config
        self.queue_config = queue_config
        self.reconnect = reconnect
        self._pool = ConnectionPool()
        self._tasks: set[asyncio.Task[None]] = set()
        self._grace_override: float | None = None

    @property
    def connection_count(self) -> int:
        """Open consumer connections: one per distinct URL being consumed."""
        return self._pool.open_count

    async def consume(self, channel: ConsumeChannel) -> None:
        """Consume ``channel``'s queue until cancelled; reconnects on any broker fault.

        Cancelling it stops gracefully: no new deliveries, in-flight handlers finish (within
        ``QueueConfig.grace_timeout``) and are acked, the channel closes.

        :raises TopologyError: the queue or exchange cannot be set up as asked.
        """
        urls = as_urls(channel.url)
        config = channel.queue_config or self.queue_config
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        delays = self._delays()

        def reset_backoff() -> None:
            nonlocal delays
            delays = self._delays()

        try:
            while True:
                try:
                    await self._consume_once(channel, urls, config, reset_backoff)
                except asyncio.CancelledError as exc:
                    # aiormq rejects futures with CancelledError when it drops a connection
                    # (a missed heartbeat): only a cancellation of this task ends consume.
                    if task is None or task.cancelling():
                        raise
                    log.warning(
                        "consumer of queue %r lost its connection (%r); reconnecting",
                        channel.queue_name,
                        exc,
                    )
                except _RECOVERABLE as exc:
                    log.warning(
                        "consumer of queue %r on %s lost: %s; reconnecting",
                        channel.queue_name,
                        ", ".join(censor(url) for url in urls),
                        exc,
                    )
                await asyncio.sleep(next(delays))
        finally:
            if task is not None:
                self._tasks.discard(task)

    def _delays(self) -> Iterator[float]:
        return backoff(self.reconnect.initial_delay, self.reconnect.max_delay)

    async def _consume_once(
        self,
        target: ConsumeChannel,
        urls: tuple[str, ...],
        config: QueueConfig,
        on_started: Callable[[], None],
    ) -> None:
        connection = await self._pool.get(urls)
        channel = await connection.channel(publisher_confirms=True)
        consumer = QueueConsumer(
            channel, target.queue_name, self.registry.handlers, config, self.retry_config
        )
        try:
            await declare(channel, target, config, self.retry_config)
            await consumer.start()
            on_started()
            log.info("consuming queue %r", target.queue_name)
            await _until_lost(channel, consumer)
        finally:
            # Runs on cancellation too: the graceful stop of this queue.
            grace = self._grace_override
            await consumer.stop(config.grace_timeout if grace is None else grace)
        if consumer.broken.is_set():
            log.warning(
                "replacing the channel of queue %r: %s", target.queue_name, consumer.broken_reason
            )

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (a grace time)
        """Stop every ``consume`` of this handle gracefully, then close all its connections.

        :param timeout: the grace time in-flight handlers get; default: each queue's
            ``QueueConfig.grace_timeout``.
        """
        self._grace_override = timeout
        # A consume task created just before close() registers itself on its first step.
        await asyncio.sleep(0)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._pool.close()
        await self.events.close()


async def _until_lost(channel: aiormq.abc.AbstractChannel, consumer: QueueConsumer) -> None:
    """Return when the consumer's channel must be replaced; raise when the channel closes."""
    closing = channel.closing  # an observer of its own; cancelling it closes nothing
    cancelled = asyncio.ensure_future(consumer.broken.wait())
    try:
        await asyncio.wait([closing, cancelled], return_when=asyncio.FIRST_COMPLETED)
    finally:
        cancelled.cancel()
        if not closing.done():
            closing.cancel()
    if closing.done() and not closing.cancelled():
        reason = closing.exception()
        if isinstance(reason, Exception):
            raise reason
        # Closed normally, or by aiormq with a CancelledError (e.g. a missed heartbeat).
        raise aiormq.exceptions.ChannelInvalidStateError(f"channel closed: {reason!r}")
