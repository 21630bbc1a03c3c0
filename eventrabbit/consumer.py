"""The hot path: delivery → decode → dispatch → ack, for one queue on one channel.

Theory of operation
-------------------
- **At-least-once.** A delivery is acked only after its handler returned and, for a request
  with ``reply_to``, after the reply was confirmed. A failure is acked only after its retry
  copy or dead letter was confirmed (see :mod:`eventrabbit.failures`). Anything that goes
  wrong before the ack leaves the delivery unacked, and the broker redelivers it when the
  channel closes: a message may be handled twice, never lost. Handlers should be idempotent.
  Acks of deliveries that finish close together go out as one ``multiple=True`` ack
  (:mod:`eventrabbit.acks`), never covering a delivery still being handled.
- **Concurrency.** aiormq already runs each delivery's callback in its own task, so the
  callback *is* the unit of work: no further task is spawned. The channel's prefetch count
  bounds how many run at once; their order of completion is not their order of arrival.
- **Stopping.** :meth:`QueueConsumer.stop` cancels the broker consumer (no new deliveries),
  lets in-flight handlers finish within a grace time and ack, then closes the channel — which
  cancels whatever still runs, leaving those deliveries unacked for redelivery.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiormq
import aiormq.abc
from aiormq.abc import DeliveredMessage

from . import envelope
from .acks import AckBatcher
from .common import QueueConfig, RetryConfig
from .confirm import event_properties, publish_confirmed
from .connection import CHANNEL_GONE
from .errors import EventRabbitError, InvalidMessage, PublishError
from .failures import Reply, Retry, plan
from .registry import Handler
from .topology import DEFAULT_EXCHANGE

log = logging.getLogger(__name__)

_decode = envelope.decode


class QueueConsumer:
    """Consumes one queue on one channel and dispatches to the handlers."""

    def __init__(
        self,
        channel: aiormq.abc.AbstractChannel,
        queue: str,
        handlers: dict[str, Handler],
        config: QueueConfig,
        retry: RetryConfig,
    ) -> None:
        self.channel = channel
        self.queue = queue
        self._handlers = handlers
        self._config = config
        self._retry = retry
        self._max_body = config.max_body_size
        self._user: str | None = channel.connection.url.user
        self._consumer_tag: str | None = None
        self._acks = AckBatcher(channel, config.prefetch_count)
        self._stopping = False
        self._in_flight = 0
        self._drained: asyncio.Future[None] | None = None
        #: Set when this channel must be replaced: the broker cancelled the consumer (queue
        #: deleted, failover) or a retry / dead-letter publish failed on it.
        self.broken = asyncio.Event()
        #: Why ``broken`` was set.
        self.broken_reason = ""

    async def start(self) -> None:
        """Set the prefetch count and start the broker consumer."""
        self.channel.on_consumer_cancel_callbacks.add(self._on_broker_cancel)
        await self.channel.basic_qos(prefetch_count=self._config.prefetch_count)
        ok = await self.channel.basic_consume(self.queue, self.on_message)
        self._consumer_tag = ok.consumer_tag

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
        if self._stopping:
            return  # left open and unacked: redelivered after the channel closes
        self._in_flight += 1
        try:
            await self._handle(message, tag)
        finally:
            self._in_flight -= 1
            if not self._in_flight and self._drained is not None and not self._drained.done():
                self._drained.set_result(None)

    async def _handle(self, message: DeliveredMessage, tag: int) -> None:
        body = message.body
        try:
            if len(body) > self._max_body:
                raise InvalidMessage(
                    f"body of {len(body)} bytes exceeds max_body_size ({self._max_body})"
                )
            action, data = _decode(body)
            handler = self._handlers.get(action)
            if handler is None:
                raise InvalidMessage(f"no handler for action {action!r}")
            misfit = handler.misfit(data)
            if misfit is not None:
                raise InvalidMessage(misfit)
            result = await handler.func(**data)
            reply_to = message.header.properties.reply_to
            if reply_to:
                correlation_id = message.header.properties.correlation_id
                await self._reply(Reply(reply_to, correlation_id, envelope.encode_reply(result)))
        except Exception as exc:  # noqa: BLE001 — every handler failure is retried or dead-lettered
            await self._fail(message, tag, exc)
            return
        await self._acks.ack(tag)

    async def _reply(self, reply: Reply) -> None:
        await publish_confirmed(
            self.channel,
            reply.body,
            exchange=DEFAULT_EXCHANGE,
            routing_key=reply.routing_key,
            properties=event_properties(correlation_id=reply.correlation_id),
        )

    async def _fail(self, message: DeliveredMessage, tag: int, exc: Exception) -> None:
        properties = message.header.properties
        copy = plan(properties, exc, self._retry, queue=self.queue, user=self._user)
        decision = copy.decision
        if isinstance(decision, Retry):
            log.warning(
                "retry %d of message %s on queue %r in %s s: %s",
                decision.attempt,
                properties.message_id,
                self.queue,
                self._retry.retry_delay_seconds,
                decision.reason,
            )
        else:
            log.error(
                "dead-lettering message %s on queue %r after %d retries: %s",
                properties.message_id,
                self.queue,
                decision.retries,
                decision.reason,
            )
        try:
            routed = await publish_confirmed(
                self.channel,
                message.body,
                exchange=DEFAULT_EXCHANGE,
                routing_key=copy.queue,
                properties=copy.properties,
                mandatory=True,  # a deleted delay or dead-letter queue must not swallow it
            )
            if not routed:
                raise PublishError(f"queue {copy.queue!r} does not exist", routing_key=copy.queue)
            if copy.reply is not None:
                await self._reply(copy.reply)
        except (EventRabbitError, *CHANNEL_GONE) as publish_exc:
            # Left open and unacked; replacing the channel redeclares the topology (a deleted
            # delay or dead-letter queue comes back) and the broker redelivers the message.
            log.error(
                "message %s on queue %r left unacked for redelivery: %s",
                properties.message_id,
                self.queue,
                publish_exc,
            )
            self._break(f"a retry or dead-letter publish failed: {publish_exc}")
            return
        await self._acks.ack(tag)

    async def until_broken(self) -> None:
        """Return when this channel must be replaced (:attr:`broken`); raise when it closes."""
        closing = self.channel.closing  # an observer of its own; cancelling it closes nothing
        broken = asyncio.ensure_future(self.broken.wait())
        try:
            await asyncio.wait([closing, broken], return_when=asyncio.FIRST_COMPLETED)
        finally:
            broken.cancel()
            if not closing.done():
                closing.cancel()
        if closing.done() and not closing.cancelled():
            reason = closing.exception()
            if isinstance(reason, Exception):
                raise reason
            # Closed normally, or by aiormq with a CancelledError (e.g. a missed heartbeat).
            raise aiormq.exceptions.ChannelInvalidStateError(f"channel closed: {reason!r}")

    async def stop(self, grace_timeout: float) -> None:
        """Stop taking deliveries, let in-flight handlers finish and ack, close the channel."""
        self._stopping = True
        if self._consumer_tag is not None and not self.channel.is_closed:
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
            log.warning(
                "%d handler(s) on queue %r still running after %s s; cancelled, their "
                "messages will be redelivered",
                self._in_flight,
                self.queue,
                grace_timeout,
            )
        if not self.channel.is_closed:
            await self._acks.flush()  # what finished is acked, even past the grace time
            await self.channel.close()
