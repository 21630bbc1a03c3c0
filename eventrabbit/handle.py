"""The ``handle`` of a service: runs consumers, keeps them running, says if they are ready.

Theory of operation
-------------------
``consume`` registers a *run* the moment it is called — before its task first runs — so
:meth:`Handle.close` and :meth:`Handle.ready` see it at once. The run loops around one
:class:`~eventrabbit.consumer.QueueConsumer`: join the pool's shared connection, open a
channel, declare, consume until the channel is lost or the consumer cancelled, back off,
again. Only a topology error, an ordered queue that stopped, or cancellation ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

import aiormq
import aiormq.abc

from .amqp_connection import watch_blocked
from .common import ConsumeChannel, QueueConfig, ReconnectConfig, RetryConfig
from .connection import CHANNEL_GONE, as_urls, backoff, censor
from .consumer import QueueConsumer
from .errors import AccessRefused, BrokerUnavailable
from .events import Events
from .fanout import HookSet
from .observed import ConnectionEvent, ConnectionState
from .pool import ConnectionPool
from .replay import follow, replay
from .status import ConsumerStatus, Run, Runs
from .topology import declare

log = logging.getLogger(__name__)

# Faults that a reconnect can cure; anything else is a bug and propagates.
_RECOVERABLE = (*CHANNEL_GONE, BrokerUnavailable, OSError, TimeoutError)
#: Seconds :meth:`Handle.ready` waits by default.
DEFAULT_READY_TIMEOUT = 30.0


class Handle:
    """Consumes queues for the handlers registered on the matching ``events``."""

    def __init__(
        self,
        events: Events,
        *,
        retry_config: RetryConfig,
        queue_config: QueueConfig,
        reconnect: ReconnectConfig,
        hooks: HookSet | None = None,
    ) -> None:
        self.events = events
        self.hooks = hooks
        self.registry = events.registry
        self.retry_config = retry_config
        self.queue_config = queue_config
        self.reconnect = reconnect
        self._pool = ConnectionPool()
        self._runs = Runs()
        self._grace_override: float | None = None

    @property
    def connection_count(self) -> int:
        """Open consumer connections: one per distinct URL being consumed."""
        return self._pool.open_count

    def consume(self, channel: ConsumeChannel) -> Coroutine[Any, Any, None]:
        """Consume ``channel``'s queue until cancelled; reconnects on any broker fault.

        Await it, or run it as a task. Cancelling it stops gracefully: no new deliveries,
        in-flight handlers finish (within ``QueueConfig.grace_timeout``) and are acked, the
        channel closes. :meth:`close` stops it too, even before its task started.

        :raises TopologyError: the queue or exchange cannot be set up as asked.
        :raises OrderedQueueStopped: ``QueueConfig(ordered=True, on_exhausted="stop")``.
        :raises ConfigurationError: a URL no transport can use.
        """
        # Registered now, not when the coroutine first runs: see the theory of operation.
        return self._consume(self._runs.add(channel))

    async def _consume(self, run: Run) -> None:
        if run.cancelled:  # close() came first: end as if cancelled, like a started run
            self._runs.forget(run)
            raise asyncio.CancelledError
        run.task = task = asyncio.current_task()
        try:
            urls = as_urls(run.channel.url)
        except BaseException as exc:
            self._end(run, exc)
            raise
        self._pool.join(urls)
        delays = self._delays()
        try:
            while True:
                starts = run.starts
                try:
                    await self._consume_once(run, urls)
                except AccessRefused:
                    raise  # a deployment error: retrying cannot cure it
                except asyncio.CancelledError as exc:
                    # aiormq rejects futures with CancelledError when it drops a connection
                    # (a missed heartbeat): only a cancellation of this task ends consume.
                    if task is None or task.cancelling():
                        raise
                    self._lost(run, f"connection lost ({exc!r})")
                except _RECOVERABLE as exc:
                    self._lost(run, str(exc) or type(exc).__name__)
                if run.starts > starts:
                    delays = self._delays()  # it consumed: this loss starts the backoff afresh
                await asyncio.sleep(next(delays))
        except asyncio.CancelledError:
            self._runs.forget(run)
            raise
        except BaseException as exc:
            self._end(run, exc)
            raise
        finally:
            await self._pool.leave(urls)  # the last run on a URL to leave closes its connection

    def _delays(self) -> Iterator[float]:
        return backoff(self.reconnect.initial_delay, self.reconnect.max_delay)

    async def _consume_once(self, run: Run, urls: tuple[str, ...]) -> None:
        target = run.channel
        queue, config = target.queue_name, target.queue_config or self.queue_config
        connection = await self._pool.get(urls)
        channel = await connection.channel(publisher_confirms=True)
        handlers, retry = self.registry.handlers, self.retry_config
        consumer = QueueConsumer(channel, queue, handlers, config, retry, self.hooks, run.timeouts)
        unwatch = (
            watch_blocked(connection, lambda why: self._blocked(run, why)) if self.hooks else None
        )
        try:
            await declare(channel, target, config, self.retry_config)
            await consumer.start()
            run.started()
            self._runs.changed()
            log.info("consuming queue %r", target.queue_name, extra={"queue": target.queue_name})
            self._tell(run)
            await until_broken(channel, consumer.broken)
        finally:
            # Runs on cancellation too: the graceful stop of this queue.
            if unwatch is not None:
                unwatch()
            run.consuming = False
            grace = self._grace_override
            await consumer.stop(config.grace_timeout if grace is None else grace)
        if consumer.in_place is not None and consumer.in_place.halted is not None:
            raise consumer.in_place.halted  # an ordered queue stopped at a failing message
        log.warning("replacing the channel of queue %r: %s", queue, consumer.broken_reason)

    def _lost(self, run: Run, reason: str) -> None:
        run.lost(reason)
        self._runs.changed()
        queue, broker = run.channel.queue_name, _broker(run)
        log.warning(
            "consumer of queue %r on %s lost: %s; reconnecting",
            queue,
            broker,
            reason,
            extra={"queue": queue},
        )
        self._tell(run, lost=reason)

    def _tell(self, run: Run, lost: str | None = None) -> None:
        """Tell the hooks that ``run`` consumes (again), or was ``lost`` (and why)."""
        if self.hooks is None:
            return
        state = ConnectionState.RECONNECTED if run.starts > 1 else ConnectionState.CONNECTED
        if lost is not None:
            state = ConnectionState.LOST
        self.hooks.connection(ConnectionEvent(state, run.channel.queue_name, _broker(run), lost))

    def _blocked(self, run: Run, reason: str | None) -> None:
        """The broker blocked (``reason``) or unblocked (``None``) the connection of ``run``."""
        assert self.hooks is not None
        state = ConnectionState.UNBLOCKED if reason is None else ConnectionState.BLOCKED
        self.hooks.connection(ConnectionEvent(state, run.channel.queue_name, _broker(run), reason))

    def _end(self, run: Run, exc: BaseException) -> None:
        run.end(exc)
        self._runs.changed()
        log.error("consume of queue %r ended: %s", run.channel.queue_name, run.last_error)

    replay, follow = replay, follow  # a stream through these handlers: eventrabbit.replay

    def status(self) -> list[ConsumerStatus]:
        """Every ``consume`` of this handle: running ones, and those a fault ended.

        For a health check: the service is healthy when every entry is ``consuming``.
        """
        return [run.status() for run in self._runs.runs]

    async def ready(
        self,
        *channels: ConsumeChannel | str,
        timeout: float | None = DEFAULT_READY_TIMEOUT,  # noqa: ASYNC109 (a deadline)
    ) -> None:
        """Wait until the queues are being consumed: their broker consumers run.

        :param channels: the ``consume`` calls to wait for, by channel or queue name;
            default: every ``consume`` of this handle that was called before.
        :param timeout: seconds to wait; ``None`` waits as long as it takes.
        :raises TimeoutError: not all of them consumed within ``timeout``.
        :raises EventRabbitError: what ended a ``consume`` waited for (a ``TopologyError``).
        """
        wanted = list(channels) or [run.channel for run in self._runs.runs]
        await self._runs.until_consuming(wanted, timeout)

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (a grace time)
        """Stop every ``consume`` of this handle gracefully, then close all its connections.

        :param timeout: the grace time in-flight handlers get; default: each queue's
            ``QueueConfig.grace_timeout``.
        """
        self._grace_override = timeout
        try:
            tasks = []
            for run in list(self._runs.runs):
                if run.task is None:
                    run.cancelled = True  # its coroutine returns as soon as it runs
                elif not run.task.done():
                    run.task.cancel()
                    tasks.append(run.task)
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._grace_override = None
        # What is left are runs a fault ended; a closed handle starts afresh.
        self._runs.runs = [r for r in self._runs.runs if r.task is None and not r.cancelled]
        await self._pool.close()
        await self.events.close()


def _broker(run: Run) -> str:
    return ", ".join(censor(url) for url in run.channel.urls)


async def until_broken(channel: aiormq.abc.AbstractChannel, broken: asyncio.Event) -> None:
    """Return when ``broken`` is set (the channel must be replaced); raise when ``channel``
    closes."""
    closing = channel.closing  # an observer of its own; cancelling it closes nothing
    waiting = asyncio.ensure_future(broken.wait())
    try:
        await asyncio.wait([closing, waiting], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        if not closing.done():
            closing.cancel()
    if closing.done() and not closing.cancelled():
        reason = closing.exception()
        if isinstance(reason, Exception):
            raise reason
        # Closed normally, or by aiormq with a CancelledError (e.g. a missed heartbeat).
        raise aiormq.exceptions.ChannelInvalidStateError(f"channel closed: {reason!r}")
