"""The in-memory channel: the part of aiormq's ``Channel`` API that eventrabbit uses.

It behaves as aiormq on a real RabbitMQ does where it matters to a client:

- every method of a closed channel raises ``ChannelInvalidStateError``;
- a broker error (404, 405, 406, 403) closes the channel with the matching
  ``aiormq.exceptions`` error, which the call raises and ``closing`` carries;
- ``basic_publish`` returns only when the message is routed, with a ``Basic.Ack`` (confirm
  mode) — or raises ``aiormq.exceptions.PublishError`` for a ``mandatory`` unroutable one;
- each delivery runs its consumer callback in a task of its own, and closing the channel
  cancels those tasks and puts every unacked message back in its queue, redelivered;
- per-consumer ``basic_qos`` prefetch (``global_=True``: per channel) bounds unacked messages.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import aiormq.abc
from aiormq.exceptions import (
    ChannelClosed,
    ChannelPreconditionFailed,
    DuplicateConsumerTag,
    PublishError,
)
from pamqp import commands as spec
from pamqp.header import ContentHeader

from .declaring import DeclaringChannel
from .deliveries import Deliveries, Settle, acked, kick, rejected, requeued
from .queues import Consumer, MemoryQueue
from .topology import DIRECT_REPLY_TO

if TYPE_CHECKING:
    from .transport import MemoryConnection

log = logging.getLogger(__name__)

#: AMQP's reply code for a mandatory message no queue took.
NO_ROUTE = 312


class MemoryChannel(DeclaringChannel):
    """A channel of a :class:`~eventrabbit.testing.transport.MemoryConnection`."""

    def __init__(
        self,
        connection: MemoryConnection,
        number: int,
        *,
        publisher_confirms: bool = True,
        on_return_raises: bool = True,
    ) -> None:
        super().__init__(connection, number)
        self.publisher_confirms = publisher_confirms
        self.on_return_raises = on_return_raises
        self.on_return_callbacks: set[Callable[[aiormq.abc.DeliveredMessage], Any]] = set()
        self.on_consumer_cancel_callbacks: set[Callable[[spec.Basic.Cancel], Any]] = set()
        #: The direct reply-to address of this channel's reply consumer, if it has one.
        self.reply_address: str | None = None
        self.deliveries = Deliveries(self)
        self._publish_seq = 0

    @property
    def consumers(self) -> dict[str, Consumer]:
        """The channel's consumers by consumer tag."""
        return self.deliveries.consumers

    # ------------------------------------------------------------------------ publishing

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
        :raises aiormq.exceptions.ChannelNotFoundEntity: the exchange does not exist (the
            channel is closed).
        """
        self._check_open()
        if len(routing_key) > 255:
            raise ValueError("Routing key too long (max 255 bytes)")
        properties = properties or spec.Basic.Properties(delivery_mode=1)
        if properties.reply_to == DIRECT_REPLY_TO:
            properties = self._with_reply_address(properties)
        published = self._broker_call(
            self.broker.publish_message, exchange, routing_key, body, properties
        )
        self._publish_seq += 1
        await asyncio.sleep(0)  # a publish is I/O: other tasks run meanwhile
        if mandatory and not published.queues:
            return self._returned(body, exchange, routing_key, published.properties)
        return spec.Basic.Ack(delivery_tag=self._publish_seq) if self.publisher_confirms else None

    def _with_reply_address(self, properties: spec.Basic.Properties) -> spec.Basic.Properties:
        if self.reply_address is None:
            reason = "PRECONDITION_FAILED - fast reply consumer does not exist"
            raise self._fail(ChannelPreconditionFailed(reason))
        properties = copy.copy(properties)  # the caller's object is left as it was
        properties.reply_to = self.reply_address
        return properties

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
            channel=cast(aiormq.abc.AbstractChannel, self),
        )
        if self.on_return_raises:
            raise PublishError(message, frame)
        for callback in list(self.on_return_callbacks):
            try:
                callback(message)
            except Exception:
                log.exception("Unhandled return callback exception")
        return message

    # ------------------------------------------------------------------------- consuming

    async def basic_qos(
        self,
        *,
        prefetch_size: int | None = None,
        prefetch_count: int | None = None,
        global_: bool = False,
    ) -> spec.Basic.QosOk:
        """Limit unacked messages: per new consumer, or per channel with ``global_``."""
        self._check_open()
        if global_:
            self.deliveries.global_prefetch = prefetch_count or 0
        else:
            self.deliveries.prefetch = prefetch_count or 0
        kick(self.deliveries.consumed_queues())
        return spec.Basic.QosOk()

    async def basic_consume(
        self,
        queue: str,
        consumer_callback: Callable[[aiormq.abc.DeliveredMessage], Any],
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: dict[str, Any] | None = None,
        consumer_tag: str | None = None,
    ) -> spec.Basic.ConsumeOk:
        """Start a consumer; each delivery runs ``consumer_callback`` in its own task."""
        self._check_open()
        tag = consumer_tag or f"ctag{self.number}.{secrets.token_hex(16)}"
        if tag in self.consumers:
            raise DuplicateConsumerTag(self.number)
        if queue == DIRECT_REPLY_TO:
            consumer = self._reply_consumer(tag, consumer_callback, no_ack)
        else:
            target: MemoryQueue = self._broker_call(self.broker.queue, queue, self.connection)
            prefetch = self.deliveries.prefetch
            consumer = Consumer(tag, self.deliveries, consumer_callback, target, no_ack, prefetch)
            target.consumers.append(consumer)
        self.consumers[tag] = consumer
        if consumer.queue is not None:
            consumer.queue.dispatch()
        return spec.Basic.ConsumeOk(consumer_tag=tag)

    def _reply_consumer(
        self, tag: str, callback: Callable[[aiormq.abc.DeliveredMessage], Any], no_ack: bool
    ) -> Consumer:
        # RabbitMQ's rules for direct reply-to: no acks, one reply consumer per channel.
        if not no_ack:
            reason = "PRECONDITION_FAILED - reply consumer cannot acknowledge"
            raise self._fail(ChannelPreconditionFailed(reason))
        if self.reply_address is not None:
            raise self._fail(
                ChannelPreconditionFailed("PRECONDITION_FAILED - reply consumer already set")
            )
        consumer = Consumer(tag, self.deliveries, callback, None, no_ack=True)
        self.reply_address = self.broker.add_reply_route(consumer)
        return consumer

    async def basic_cancel(self, consumer_tag: str, *, nowait: bool = False) -> spec.Basic.CancelOk:
        """Stop a consumer; what it holds unacked stays unacked."""
        self._check_open()
        consumer = self.consumers.pop(consumer_tag, None)
        if consumer is not None:
            self.broker.remove_consumer(consumer)
            if consumer.queue is None:
                self.reply_address = None
        return spec.Basic.CancelOk(consumer_tag=consumer_tag)

    async def basic_get(
        self,
        queue: str = "",
        no_ack: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (aiormq's signature; nothing waits)
    ) -> aiormq.abc.DeliveredMessage:
        """Take one message (``Basic.GetOk``) or none (``Basic.GetEmpty``)."""
        target: MemoryQueue = self._broker_call(self.broker.queue, queue, self.connection)
        message = target.take()
        me = cast(aiormq.abc.AbstractChannel, self)
        if message is None:
            return aiormq.abc.DeliveredMessage(spec.Basic.GetEmpty(), ContentHeader(), b"", me)
        frame = spec.Basic.GetOk(
            delivery_tag=self.deliveries.track(None, target, message, no_ack),
            redelivered=message.redelivered,
            exchange=message.exchange,
            routing_key=message.routing_key,
            message_count=len(target.ready),
        )
        return self.deliveries.message(frame, target, message)

    # -------------------------------------------------------------------- acknowledgement

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        """Acknowledge a delivery (``multiple``: and every earlier one)."""
        self._settle(delivery_tag, multiple, acked)

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True, wait: bool = True
    ) -> None:
        """Refuse deliveries: back to the queue (``requeue``) or dead-lettered."""
        self._settle(delivery_tag, multiple, requeued if requeue else rejected)

    async def basic_reject(
        self, delivery_tag: int, *, requeue: bool = True, wait: bool = True
    ) -> None:
        """Refuse one delivery: back to the queue (``requeue``) or dead-lettered."""
        self._settle(delivery_tag, False, requeued if requeue else rejected)

    def _settle(self, tag: int, multiple: bool, then: Settle) -> None:
        self._check_open()
        if not self.deliveries.settle(tag, multiple, then):
            # RabbitMQ closes the channel for an unknown tag, after the ack was sent.
            self.shutdown(
                ChannelPreconditionFailed(f"PRECONDITION_FAILED - unknown delivery tag {tag}")
            )

    # ------------------------------------------------------------------------- closing

    def shutdown(self, reason: BaseException) -> None:
        """Close now: consumers stop, unacked messages go back, callback tasks are cancelled."""
        if not self._mark_closed(reason):
            return
        for consumer in self.consumers.values():
            self.broker.remove_consumer(consumer)
        self.consumers.clear()
        self.reply_address = None
        self.deliveries.release()
        self.connection.forget_channel(self)
        self.deliveries.cancel_tasks()

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """The consumer callback tasks still running (but the current task)."""
        return self.deliveries.pending_tasks()

    async def close(
        self,
        exc: BaseException | type[BaseException] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (aiormq's signature)
    ) -> None:
        """Close the channel; waits for the cancelled callback tasks to end."""
        if self.is_closed:
            return
        tasks = self.pending_tasks()
        self.shutdown(ChannelClosed(None, None))
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
