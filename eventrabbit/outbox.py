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
"""

from __future__ import annotations

import asyncio
import logging

import aiormq.abc

from .confirm import publish_confirmed, reply_properties
from .connection import CHANNEL_GONE
from .errors import EventRabbitError, PublishError
from .failures import Copy, Reply
from .replyto import REPLY_PREFIX, Addresses
from .topology import DEFAULT_EXCHANGE

log = logging.getLogger(__name__)

#: AMQP's smallest frame_max, used when a connection does not say (the in-memory broker).
DEFAULT_FRAME_MAX = 131072


class Outbox:
    """Publishes a consumer's replies and copies on a confirm channel of its own."""

    def __init__(self, connection: aiormq.abc.AbstractConnection, queue: str) -> None:
        self.connection = connection
        self.queue = queue
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._lock = asyncio.Lock()
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

    async def reply(self, reply: Reply, message_id: str | None) -> None:
        """Send a reply; one that cannot be delivered is logged and dropped, never raised."""
        address = reply.routing_key
        if not self._addresses.deliverable(address):
            log.warning(
                "reply to message %s on queue %r dropped: %r is not a direct reply-to address "
                "this broker handed out",
                message_id,
                self.queue,
                address[:300],
            )
            return
        try:
            routed = await publish_confirmed(
                await self._open(),
                reply.body,
                exchange=DEFAULT_EXCHANGE,
                routing_key=address,
                properties=reply_properties(reply.correlation_id),
                mandatory=not address.startswith(REPLY_PREFIX),
            )
        except (EventRabbitError, *CHANNEL_GONE) as exc:
            log.warning("reply to message %s on queue %r not sent: %s", message_id, self.queue, exc)
            return
        if not routed:
            log.warning(
                "reply to message %s on queue %r dropped: no queue %r",
                message_id,
                self.queue,
                address[:300],
            )

    async def copy(self, copy: Copy, body: bytes) -> None:
        """Publish a retry or dead-letter copy and wait for the broker's confirm.

        :raises PublishError: not confirmed, or its queue does not exist.
        :raises aiormq.exceptions.AMQPError: the channel or connection is gone.
        """
        routed = await publish_confirmed(
            await self._open(),
            body,
            exchange=DEFAULT_EXCHANGE,
            routing_key=copy.queue,
            properties=copy.properties,
            mandatory=True,  # a deleted delay or dead-letter queue must not swallow it
        )
        if not routed:
            raise PublishError(f"queue {copy.queue!r} does not exist", routing_key=copy.queue)

    async def close(self) -> None:
        """Close the channel, if it is open."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            try:
                await channel.close()
            except CHANNEL_GONE as exc:
                log.debug("closing the publish channel of queue %r: %s", self.queue, exc)
