"""The hot path: delivery → decode → dispatch → ack, for one queue on one channel.

Theory of operation
-------------------
- **At-least-once.** A delivery is acked only after its handler returned and, for a request
  with ``reply_to``, its reply was sent; a failure only after its retry copy or dead letter
  was confirmed (:mod:`eventrabbit.failures`). Whatever goes wrong before leaves it unacked,
  and the broker redelivers it when the channel closes: handled twice maybe, never lost.
  Acks that come close together go out as one (:mod:`eventrabbit.acks`).
- **Every delivery ends**: acked after its handler or its copy, or left unacked for
  redelivery (the channel gone, a copy not published, an ordered queue stopping). Nothing a
  message carries or a handler raises (but ``KeyboardInterrupt``/``SystemExit`` and our own
  cancellation) escapes that: data that does not bind is bad input, a copy that cannot be
  encoded falls back to :func:`~eventrabbit.failures.last_resort`, a reply may be dropped.
- **Concurrency.** aiormq runs each delivery's callback in its own task: the callback *is*
  the unit of work. The prefetch count bounds how many run at once, done in any order.
  **Ordered queues** (:mod:`eventrabbit.ordered`): prefetch 1, failures retried in place.
- **Stopping.** :meth:`QueueConsumer.stop` cancels the broker consumer (no new deliveries),
  lets in-flight handlers finish within a grace time and ack, then closes the channel — which
  cancels what still runs, its deliveries unacked; one that ignores its cancellation is
  abandoned after :data:`CLOSE_TIMEOUT` more seconds.
- **Time limits** (:mod:`eventrabbit.timeouts`): a handler past ``handler_timeout`` fails;
  a message the broker's consumer timeout took back too often is dead-lettered unhandled.
  **Hooks** (:mod:`eventrabbit.fanout`): none cost one ``is None`` test per delivery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import aiormq
import aiormq.abc
from aiormq.abc import DeliveredMessage

from . import envelope
from .acks import AckBatcher
from .common import QueueConfig, RetryConfig
from .connection import CHANNEL_GONE, server_of
from .dispatch import action_of, dispatch
from .errors import EventRabbitError, InvalidMessage, OrderedQueueStopped
from .failures import Reply, Retry
from .fanout import DeliveryRecord, HookSet
from .observed import Outcome
from .ordered import in_place
from .outbox import Outbox
from .permissions import refused
from .properties import Stashed
from .registry import Handler
from .timeouts import CLOSE_TIMEOUT as CLOSE_TIMEOUT
from .timeouts import ConsumerTimeouts, Opened, bounded, close_channel
from .wire_transport import wire_of

log = logging.getLogger(__name__)

# What a handler may raise that is not a failure of the message: the process is stopping.
_STOP_PROCESS = (KeyboardInterrupt, SystemExit)
Record = DeliveryRecord | None
_LEFT = "message %s on queue %r left unacked for redelivery: %s"
_STILL_RUNNING = "%d handler(s) on queue %r still running after %s s; cancelled, to be redelivered"


class QueueConsumer:
    """Consumes one queue on one channel and dispatches to the handlers."""

    def __init__(
        self,
        channel: aiormq.abc.AbstractChannel,
        queue: str,
        handlers: dict[str, Handler],
        config: QueueConfig,
        retry: RetryConfig,
        hooks: HookSet | None = None,
        timeouts: ConsumerTimeouts | None = None,
    ) -> None:
        self.channel = channel
        self.queue = queue
        self._handlers = handlers
        #: Set when this channel must be replaced: the broker cancelled the consumer (queue
        #: deleted, failover), a retry / dead-letter publish failed, an ordered queue halted.
        self.broken = asyncio.Event()
        #: Why ``broken`` was set.
        self.broken_reason = ""
        self._config = config
        self.in_place = ordered = in_place(queue, config, retry, self.broken)
        self._run = dispatch if ordered is None else ordered.run
        self._limit = config.handler_timeout if ordered is None else None  # ordered: per attempt
        self._retry = retry if ordered is None else ordered.copies  # ordered: dead letters only
        self._max_body = config.max_body_size
        #: The consume's memory of consumer timeouts (it outlives this channel).
        self.timeouts = timeouts if timeouts is not None else ConsumerTimeouts()
        #: Deliveries being handled, in arrival order; one cut off by the channel's close stays.
        self._opened: dict[int, Opened] = {}
        self._user: str | None = channel.connection.url.user
        self._hooks, self._server = hooks, server_of(channel.connection)  # the node, for hooks
        self._outbox = Outbox(channel.connection, queue, retry.retry_delay_seconds, hooks)
        self._consumer_tag: str | None = None
        self._acks = AckBatcher(channel, config.prefetch_count)
        wire = wire_of(channel.connection)
        #: Property bytes of this channel's deliveries, by tag, where pamqp's decoding is not
        #: enough for a faithful copy (kept by the wire reader; popped as deliveries arrive).
        self._stashed: dict[int, Stashed] = wire.watch(channel.number) if wire else {}
        self._stopping = False
        self._in_flight = 0
        self._drained: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Set the prefetch count and start the broker consumer."""
        self.channel.on_consumer_cancel_callbacks.add(self._on_broker_cancel)
        self.channel.closing.add_done_callback(self._on_close)
        await self.channel.basic_qos(prefetch_count=self._config.prefetch_count)
        try:
            ok = await self.channel.basic_consume(self.queue, self.on_message)
        except aiormq.exceptions.ChannelAccessRefused as exc:
            raise refused(exc, "consume", queue=self.queue) from None
        self._consumer_tag = ok.consumer_tag

    def _on_close(self, closing: asyncio.Future[Any]) -> None:
        reason = None if closing.cancelled() else closing.exception()
        if reason is not None:
            self.timeouts.channel_closed(reason, self.queue, self._opened, time.monotonic())

    def _on_broker_cancel(self, _: Any) -> None:
        self._break("the broker cancelled the consumer")

    def _break(self, reason: str) -> None:
        if not self.broken.is_set():
            self.broken_reason = reason
            self.broken.set()

    async def on_message(self, message: DeliveredMessage) -> None:
        """aiormq's consumer callback, one task per delivery."""
        tag: int = message.delivery.delivery_tag  # type: ignore[union-attr,assignment]
        self._acks.opened(tag)
        stashed = self._stashed.pop(tag, None) if self._stashed else None
        if self._stopping:
            return  # left open and unacked: redelivered after the channel closes
        self._in_flight += 1
        self._opened[tag] = (time.monotonic(), message)
        try:
            if self._hooks is None:
                await self._route(message, tag, stashed, None)
            else:
                record = DeliveryRecord(self._hooks, self.queue, message, self._server)
                try:  # no coroutine of its own per delivery: DeliveryRecord.around, inline
                    outcome = await self._route(message, tag, stashed, record)
                except BaseException as exc:
                    record.error = exc
                    record.finish(Outcome.LEFT_UNACKED)  # cancelled, or the process stops
                    raise
                record.finish(outcome)
            del self._opened[tag]  # not reached when cut off: see ``_on_close``
        finally:
            self._in_flight -= 1
            if not self._in_flight and self._drained is not None and not self._drained.done():
                self._drained.set_result(None)

    def _route(
        self, message: DeliveredMessage, tag: int, stashed: Stashed | None, record: Record
    ) -> Coroutine[Any, Any, Outcome]:  # not async: no coroutine of its own per delivery
        if stashed is not None and stashed.problem is not None:
            # pamqp could not decode it: what the handler would get is a stand-in.
            problem = InvalidMessage(f"the message could not be decoded: {stashed.problem}")
            return self._fail(message, tag, problem, stashed, record)
        if message.delivery.redelivered and self.timeouts:  # type: ignore[union-attr]
            overdue = self.timeouts.overdue(message, self.queue)
            if overdue is not None:
                return self._fail(message, tag, overdue, stashed, record)
        return self._handle(message, tag, stashed, record)

    async def _handle(
        self, message: DeliveredMessage, tag: int, stashed: Stashed | None, record: Record
    ) -> Outcome:
        try:
            running = self._run(self._handlers, message, self._max_body, record)
            limit = self._limit
            result = await (running if limit is None else bounded(running, limit, self.queue))
        except _STOP_PROCESS:
            raise  # left unacked: the process is going down, the broker redelivers
        except OrderedQueueStopped:
            return Outcome.LEFT_UNACKED  # an ordered queue stops: the broker puts it back first
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # eventrabbit is stopping (channel closed, grace time over)
            exc = asyncio.CancelledError("raised by the handler, not a cancellation")
            return await self._fail(message, tag, exc, stashed, record)  # its own doing: failed
        except BaseException as exc:  # noqa: BLE001 — every failure is retried or dead-lettered
            return await self._fail(message, tag, exc, stashed, record)
        properties = message.header.properties
        if properties.reply_to:
            try:
                body = envelope.encode_reply(result)
            except TypeError as exc:
                return await self._fail(message, tag, exc, stashed, record)
            reply = Reply(properties.reply_to, properties.correlation_id, body)
            await self._outbox.reply(reply, properties.message_id)
        await self._acks.ack(tag)
        return Outcome.ACKED

    async def _fail(
        self,
        message: DeliveredMessage,
        tag: int,
        exc: BaseException,
        stashed: Stashed | None,
        record: Record,
    ) -> Outcome:
        properties = message.header.properties
        copy = self._outbox.copy_of(properties, stashed, exc, self._retry, self._user)
        # Read again rather than carried along the hot path: failures are rare.
        action = (record.action if record else None) or action_of(message, self._max_body)
        outcome = Outcome.RETRIED if isinstance(copy.decision, Retry) else Outcome.DEAD_LETTERED
        fields = self._outbox.fields(copy, action, properties.message_id)
        if record is not None:
            record.failed(action, exc, copy, outcome)
        try:
            await self._outbox.copy(copy, message.body, fields | {"outcome": outcome.value})
        except (EventRabbitError, *CHANNEL_GONE) as publish_exc:
            # Left open and unacked; replacing the channel redeclares the topology (a deleted
            # delay or dead-letter queue comes back) and the broker redelivers the message.
            left = fields | {"outcome": Outcome.LEFT_UNACKED.value}
            log.error(_LEFT, properties.message_id, self.queue, publish_exc, extra=left)
            self._break(f"a retry or dead-letter publish failed: {publish_exc}")
            if record is not None:
                record.error = publish_exc
            return Outcome.LEFT_UNACKED
        if copy.reply is not None:
            await self._outbox.reply(copy.reply, properties.message_id)
        await self._acks.ack(tag)
        return outcome

    async def stop(self, grace_timeout: float) -> None:
        """Stop taking deliveries, let in-flight handlers finish and ack, close the channel."""
        self._stopping = True
        if self.in_place is not None:
            self.in_place.stop()
        elif self._consumer_tag is not None and not self.channel.is_closed:
            try:
                await self.channel.basic_cancel(self._consumer_tag)
            except CHANNEL_GONE as exc:
                log.debug("basic.cancel on queue %r failed: %s", self.queue, exc)
        if self._in_flight:
            self._drained = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(grace_timeout):
                if self._drained is not None:
                    await self._drained
        except TimeoutError:
            log.warning(_STILL_RUNNING, self._in_flight, self.queue, grace_timeout)
        if not self.channel.is_closed:
            await self._acks.flush()  # what finished is acked, even past the grace time
            await close_channel(self.channel, self.queue, lambda: self._in_flight)
        await self._outbox.close()
