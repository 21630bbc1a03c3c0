"""Publishing through an in-memory channel: aiormq's ``basic_publish``, publisher confirms,
returned mandatory messages, and the direct reply-to address put on requests.

As with aiormq on RabbitMQ, ``basic_publish`` returns once the message is routed: with a
``Basic.Ack`` in confirm mode (else ``None``). A ``mandatory`` message no queue took comes
back as a ``Basic.Return``: raised as ``aiormq.exceptions.PublishError`` when the channel
was opened with ``on_return_raises``, else handed to the ``on_return_callbacks``. A message
a full queue refused (``x-overflow`` ``reject-publish``) is nacked, which aiormq raises as
``aiormq.exceptions.DeliveryError`` in confirm mode; without confirms nobody hears of it. An
invalid ``expiration`` is a 406 that closes the channel (:func:`.messages.ttl_of`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import aiormq.abc
from aiormq.exceptions import DeliveryError, PublishError
from pamqp import commands as spec
from pamqp.header import ContentHeader

from ..topology import DIRECT_REPLY_TO
from .broker import MemoryBroker
from .guard import Guard
from .reply_to import ChannelReplyTo

log = logging.getLogger(__name__)

#: AMQP's reply code for a mandatory message no queue took.
NO_ROUTE = 312
#: The longest routing key AMQP carries.
MAX_ROUTING_KEY = 255


class Publishing:
    """The publishing side of one channel.

    :param channel: the channel, which a returned message names as its channel.
    """

    def __init__(
        self,
        channel: object,
        broker: MemoryBroker,
        guard: Guard,
        reply_to: ChannelReplyTo,
        *,
        publisher_confirms: bool,
        on_return_raises: bool,
    ) -> None:
        self.channel = channel
        self.broker = broker
        self.guard = guard
        self.reply_to = reply_to
        self.publisher_confirms = publisher_confirms
        self.on_return_raises = on_return_raises
        self.on_return_callbacks: set[Callable[[aiormq.abc.DeliveredMessage], Any]] = set()
        self._seq = 0

    async def basic_publish(
        self,
        body: bytes,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: spec.Basic.Properties | None = None,
        mandatory: bool = False,
        immediate: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (aiormq's signature; nothing waits)
        wait: bool = True,
    ) -> spec.Basic.Ack | aiormq.abc.DeliveredMessage | None:
        """Route a message; return the confirm once it is in its queues.

        :raises aiormq.exceptions.PublishError: ``mandatory`` and no queue received it.
        :raises aiormq.exceptions.DeliveryError: in confirm mode, a full queue refused it.
        :raises aiormq.exceptions.ChannelNotFoundEntity: the exchange does not exist (the
            channel is closed).
        :raises aiormq.exceptions.ChannelPreconditionFailed: an invalid ``expiration`` (the
            channel is closed).
        """
        self.guard.check_open()
        if len(routing_key) > MAX_ROUTING_KEY:
            raise ValueError(f"Routing key too long (max {MAX_ROUTING_KEY} bytes)")
        properties = properties or spec.Basic.Properties(delivery_mode=1)
        if properties.reply_to == DIRECT_REPLY_TO:
            properties = self.guard(self.reply_to.stamp, properties)
        self.broker.connections.prune()
        published = self.guard(self.broker.flow.publish, exchange, routing_key, body, properties)
        self._seq += 1
        await asyncio.sleep(0)  # a publish is I/O: other tasks run meanwhile
        if mandatory and not published.queues:
            return self._returned(body, exchange, routing_key, published.properties)
        if published.rejected and self.publisher_confirms:
            raise DeliveryError(None, spec.Basic.Nack(delivery_tag=self._seq))
        return spec.Basic.Ack(delivery_tag=self._seq) if self.publisher_confirms else None

    def _returned(
        self, body: bytes, exchange: str, routing_key: str, properties: spec.Basic.Properties
    ) -> aiormq.abc.DeliveredMessage:
        frame = spec.Basic.Return(
            reply_code=NO_ROUTE, reply_text="NO_ROUTE", exchange=exchange, routing_key=routing_key
        )
        message = aiormq.abc.DeliveredMessage(
            delivery=frame,
            header=ContentHeader(properties=properties, body_size=len(body)),
            body=body,
            channel=cast(aiormq.abc.AbstractChannel, self.channel),
        )
        if self.on_return_raises:
            raise PublishError(message, frame)
        for callback in list(self.on_return_callbacks):
            try:
                callback(message)
            except Exception:
                log.exception("Unhandled return callback exception")
        return message
