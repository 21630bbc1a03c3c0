"""What a consumer publishes: replies to requests, and the retry and dead-letter copies of
failed messages — on a confirm channel of its own, next to the channel it consumes on.

Theory of operation
-------------------
- **Its own channel.** A publish the broker refuses closes the channel it was made on. Were
  replies and copies published on the consuming channel, one bad address or one refused copy
  would close it and send every delivery in flight back to the queue, to be handled again.
  On a channel of their own they close only that channel, which is reopened on next use.
- **Replies are best effort.** A reply that cannot be delivered — its address is gone or was
  never valid — is logged and dropped; the request counts as handled (it was). A reply to a
  queue is published ``mandatory`` so that a missing queue is noticed; a direct reply-to is
  not: RabbitMQ returns those as unroutable even when it delivered them. Before 4.2,
  RabbitMQ closes the whole *connection* (541 INTERNAL_ERROR) on a direct reply-to address
  whose pid part does not decode, so such an address is dropped without being published (see
  :mod:`eventrabbit.replyto`).
- **Copies are confirmed or raise.** The consumer acks the original only after the broker
  confirmed its copy (made to fit :attr:`Outbox.frame_max` by :mod:`eventrabbit.copies`).
- **Hooks** see each reply as a publish and may add headers to it; copies keep the original's
  headers as they arrived (a trace context included) and are reported through the delivery's
  outcome instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiormq.abc
from pamqp import commands as spec

from .common import RetryConfig
from .confirm import publish_confirmed, reply_properties
from .connection import CHANNEL_GONE, server_of
from .copies import faithful
from .deadlines import Deadlines
from .errors import EventRabbitError, PublishError
from .failures import Copy, Reply, Retry, describe, last_resort, plan
from .fanout import HookSet
from .observed import Outcome, Publish, PublishKind
from .properties import Stashed
from .replyto import REPLY_PREFIX, Addresses
from .topology import DEFAULT_EXCHANGE

log = logging.getLogger(__name__)

_CONFIRMED = (Outcome.CONFIRMED, None)
#: AMQP's smallest frame_max, used when a connection does not say (the in-memory broker).
DEFAULT_FRAME_MAX = 131072


class Outbox:
    """Publishes a consumer's replies and copies on a confirm channel of its own."""

    def __init__(
        self,
        connection: aiormq.abc.AbstractConnection,
        queue: str,
        retry_delay: float = 0,
        hooks: HookSet | None = None,
    ) -> None:
        self.connection = connection
        self.queue = queue
        self._retry_delay = retry_delay
        self._hooks = hooks
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self._deadlines: Deadlines | None = None  # the confirm timeouts' one timer
        properties = getattr(connection, "server_properties", None) or {}
        self._addresses = Addresses(str(properties.get("version", "")))
        tune = getattr(connection, "connection_tune", None)
        #: The largest frame the connection takes: a copy's header frame is fitted to it.
        self.frame_max = int(getattr(tune, "frame_max", 0) or DEFAULT_FRAME_MAX)

    async def _open(self) -> aiormq.abc.AbstractChannel:
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self._lock:
            channel = self._channel
            if channel is None or channel.is_closed:
                channel = self._channel = await self.connection.channel(publisher_confirms=True)
            return channel

    def _deadlines_now(self) -> Deadlines:
        deadlines = self._deadlines = Deadlines.on(self._deadlines)
        return deadlines

    async def reply(self, reply: Reply, message_id: str | None) -> None:
        """Send a reply; one that cannot be delivered is logged and dropped, never raised."""
        properties = reply_properties(reply.correlation_id)
        if self._hooks is None:
            await self._reply(reply, message_id, properties)
            return
        publish = Publish(
            PublishKind.REPLY,
            DEFAULT_EXCHANGE,
            reply.routing_key,
            None,
            None,
            reply.correlation_id,
            *server_of(self.connection),
        )
        headers: dict[str, Any] = {}
        span = self._hooks.publish(publish, headers)
        properties.headers = headers or None
        outcome, error = await self._reply(reply, message_id, properties)
        span.end(outcome, error)

    async def _reply(
        self, reply: Reply, message_id: str | None, properties: spec.Basic.Properties
    ) -> tuple[Outcome, BaseException | None]:
        address = reply.routing_key
        if not self._addresses.deliverable(address):
            log.warning(
                "reply to message %s on queue %r dropped: %r is not a direct reply-to address "
                "this broker handed out",
                message_id,
                self.queue,
                address[:300],
                extra=self._reply_fields(reply, message_id, Outcome.DROPPED),
            )
            return Outcome.DROPPED, None
        try:
            routed = await publish_confirmed(
                await self._open(),
                reply.body,
                exchange=DEFAULT_EXCHANGE,
                routing_key=address,
                properties=properties,
                mandatory=not address.startswith(REPLY_PREFIX),
                deadlines=self._deadlines_now(),
            )
        except (EventRabbitError, *CHANNEL_GONE) as exc:
            log.warning(
                "reply to message %s on queue %r not sent: %s",
                message_id,
                self.queue,
                exc,
                extra=self._reply_fields(reply, message_id, Outcome.FAILED),
            )
            return Outcome.FAILED, exc
        if not routed:
            log.warning(
                "reply to message %s on queue %r dropped: no queue %r",
                message_id,
                self.queue,
                address[:300],
                extra=self._reply_fields(reply, message_id, Outcome.UNROUTABLE),
            )
            return Outcome.UNROUTABLE, None
        return _CONFIRMED

    def _reply_fields(
        self, reply: Reply, message_id: str | None, outcome: Outcome
    ) -> dict[str, Any]:
        # Built only for a log record: a reply that goes out costs no dict.
        return {
            "queue": self.queue,
            "message_id": message_id,
            "correlation_id": reply.correlation_id,
            "outcome": outcome.value,
        }

    def copy_of(
        self,
        properties: spec.Basic.Properties,
        stashed: Stashed | None,
        exc: BaseException,
        retry: RetryConfig,
        user: str | None,
    ) -> Copy:
        """The retry copy or dead letter of a delivery whose handling raised ``exc``: made
        from the bytes it arrived with, or, if its properties cannot be copied, a last resort."""
        planned = None
        try:
            planned = plan(properties, exc, retry, queue=self.queue, user=user)
            # The bytes it arrived with, or pamqp's, where pamqp encodes them back the same.
            raw = stashed.properties if stashed is not None else properties.marshal()
            return faithful(raw, planned, self.frame_max)
        except Exception as error:  # noqa: BLE001 — a copy must be made whatever the headers
            retries = 0 if planned is None else planned.retries
            why = f"{describe(exc)}; the original properties were dropped: {error}"
            return last_resort(properties, why, retries, queue=self.queue)

    def fields(self, copy: Copy, action: str | None, message_id: str | None) -> dict[str, Any]:
        """The ``extra`` of the log records of a failed delivery (README: Observability)."""
        return {
            "queue": self.queue,
            "action": action,
            "message_id": message_id,
            "retry_count": copy.retries,
        }

    async def copy(self, copy: Copy, body: bytes, fields: dict[str, Any] | None = None) -> None:
        """Log and publish a retry or dead-letter copy and wait for the broker's confirm.

        :param fields: the log record's ``extra`` (queue, action, message_id, ...).

        :raises PublishError: not confirmed, or its queue does not exist.
        :raises aiormq.exceptions.AMQPError: the channel or connection is gone.
        """
        self._log(copy, fields or {})
        routed = await publish_confirmed(
            await self._open(),
            body,
            exchange=DEFAULT_EXCHANGE,
            routing_key=copy.queue,
            properties=copy.properties,
            mandatory=True,  # a deleted delay or dead-letter queue must not swallow it
            deadlines=self._deadlines_now(),
        )
        if not routed:
            raise PublishError(f"queue {copy.queue!r} does not exist", routing_key=copy.queue)

    def _log(self, copy: Copy, fields: dict[str, Any]) -> None:
        decision, message_id = copy.decision, fields.get("message_id")
        if isinstance(decision, Retry):
            log.warning(
                "retry %d of message %s on queue %r in %s s: %s",
                decision.attempt,
                message_id,
                self.queue,
                self._retry_delay,
                decision.reason,
                extra=fields,
            )
        else:
            log.error(
                "dead-lettering message %s on queue %r after %d retries: %s",
                message_id,
                self.queue,
                decision.retries,
                decision.reason,
                extra=fields,
            )

    async def close(self) -> None:
        """Close the channel, if it is open."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            try:
                await channel.close()
            except CHANNEL_GONE as exc:
                log.debug("closing the publish channel of queue %r: %s", self.queue, exc)
