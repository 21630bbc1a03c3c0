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
import inspect
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import aiormq.abc
from aiormq.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    ChannelClosed,
    ChannelInvalidStateError,
    ChannelPreconditionFailed,
    DuplicateConsumerTag,
    PublishError,
)
from pamqp import commands as spec
from pamqp.header import ContentHeader

from .broker import MemoryBroker
from .lifecycle import Closable
from .messages import StoredMessage
from .queues import Consumer, MemoryQueue
from .topology import DIRECT_REPLY_TO

if TYPE_CHECKING:
    from .transport import MemoryConnection

log = logging.getLogger(__name__)

_NO_ROUTE = 312


@dataclass(slots=True, frozen=True)
class _Delivery:
    consumer: Consumer | None  # None for basic.get
    queue: MemoryQueue
    message: StoredMessage


class MemoryChannel(Closable):
    """A channel of a :class:`~eventrabbit.testing.transport.MemoryConnection`."""

    def __init__(
        self,
        connection: MemoryConnection,
        number: int,
        *,
        publisher_confirms: bool = True,
        on_return_raises: bool = True,
    ) -> None:
        super().__init__(connection.loop)
        self.connection = connection
        self.broker: MemoryBroker = connection.broker
        self.number = number
        self.publisher_confirms = publisher_confirms
        self.on_return_raises = on_return_raises
        self.on_return_callbacks: set[Callable[[aiormq.abc.DeliveredMessage], Any]] = set()
        self.on_consumer_cancel_callbacks: set[Callable[[spec.Basic.Cancel], Any]] = set()
        self.consumers: dict[str, Consumer] = {}
        self.reply_address: str | None = None
        self._unacked: dict[int, _Delivery] = {}
        self._delivery_tag = 0
        self._publish_seq = 0
        self._prefetch = 0
        self._global_prefetch = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    def __str__(self) -> str:
        return str(self.number)

    def __repr__(self) -> str:
        return f'<MemoryChannel: "{self.number}" of {self.broker.url}>'

    # ------------------------------------------------------------------ state and errors

    def _check_open(self) -> None:
        if self.is_closed:
            raise ChannelInvalidStateError(f"{self!r} closed")

    def _fail(self, exc: Exception) -> Exception:
        """Close the channel (or the connection, for a connection error) because of ``exc``."""
        if isinstance(exc, AMQPConnectionError):
            self.connection.shutdown(exc)
        else:
            self.shutdown(exc)
        return exc

    def _broker_call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._check_open()
        try:
            return method(*args, **kwargs)
        except (AMQPChannelError, AMQPConnectionError) as exc:
            raise self._fail(exc) from None

    # ------------------------------------------------------------------------ declaring

    async def exchange_declare(
        self,
        exchange: str = "",
        *,
        exchange_type: str = "direct",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        nowait: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> spec.Exchange.DeclareOk:
        """Declare an exchange (``passive``: check that it exists)."""
        self._broker_call(self.broker.declare_exchange, exchange, exchange_type, durable, passive)
        return spec.Exchange.DeclareOk()

    async def exchange_delete(
        self, exchange: str = "", *, if_unused: bool = False, nowait: bool = False
    ) -> spec.Exchange.DeleteOk:
        """Delete an exchange and its bindings."""
        self._broker_call(self.broker.delete_exchange, exchange)
        return spec.Exchange.DeleteOk()

    async def queue_declare(
        self,
        queue: str = "",
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        nowait: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> spec.Queue.DeclareOk:
        """Declare a queue (``passive``: check that it exists); ``""`` gets a generated name."""
        owner = self.connection if exclusive else None
        declared: MemoryQueue = self._broker_call(
            self.broker.declare_queue, queue, durable, auto_delete, arguments or {}, passive, owner,
            self.connection,
        )  # fmt: skip
        return spec.Queue.DeclareOk(
            queue=declared.name,
            message_count=len(declared.ready),
            consumer_count=len(declared.consumers),
        )

    async def queue_bind(
        self,
        queue: str = "",
        exchange: str = "",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> spec.Queue.BindOk:
        """Bind ``queue`` to ``exchange``."""
        self._broker_call(self.broker.bind, queue, exchange, routing_key, arguments)
        return spec.Queue.BindOk()

    async def queue_unbind(
        self,
        queue: str = "",
        exchange: str = "",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> spec.Queue.UnbindOk:
        """Remove a binding."""
        self._broker_call(self.broker.unbind, queue, exchange, routing_key, arguments)
        return spec.Queue.UnbindOk()

    async def queue_delete(
        self, queue: str = "", if_unused: bool = False, if_empty: bool = False
    ) -> spec.Queue.DeleteOk:
        """Delete a queue; its consumers are cancelled (``on_consumer_cancel_callbacks``)."""
        count: int = self._broker_call(self.broker.delete_queue, queue, if_unused, if_empty)
        return spec.Queue.DeleteOk(message_count=count)

    async def queue_purge(self, queue: str = "") -> spec.Queue.PurgeOk:
        """Drop a queue's ready messages."""
        count: int = self._broker_call(self.broker.purge_queue, queue)
        return spec.Queue.PurgeOk(message_count=count)

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
            reply_code=_NO_ROUTE, reply_text="NO_ROUTE", exchange=exchange, routing_key=routing_key
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
            self._global_prefetch = prefetch_count or 0
        else:
            self._prefetch = prefetch_count or 0
        self._kick(self._consumed_queues())
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
            consumer = Consumer(tag, self, consumer_callback, target, no_ack, self._prefetch)
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
        consumer = Consumer(tag, self, callback, None, no_ack=True)
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
        tag = self._track(None, target, message, no_ack)
        frame = spec.Basic.GetOk(
            delivery_tag=tag,
            redelivered=message.redelivered,
            exchange=message.exchange,
            routing_key=message.routing_key,
            message_count=len(target.ready),
        )
        return aiormq.abc.DeliveredMessage(frame, self._content(target, message), message.body, me)

    # ------------------------------------------------------------------------ deliveries

    def can_receive(self, consumer: Consumer) -> bool:
        """Whether ``consumer`` may take a message now (see :class:`queues.Receiver`)."""
        if self.is_closed or self.loop.is_closed():
            return False
        if consumer.no_ack:
            return True
        if consumer.prefetch and consumer.unacked >= consumer.prefetch:
            return False
        return not self._global_prefetch or len(self._unacked) < self._global_prefetch

    def receive(
        self, consumer: Consumer, queue: MemoryQueue | None, message: StoredMessage
    ) -> None:
        """Deliver ``message`` to ``consumer``: a ``Basic.Deliver`` and a callback task."""
        tag = self._track(consumer, queue, message, consumer.no_ack)
        frame = spec.Basic.Deliver(
            consumer_tag=consumer.tag,
            delivery_tag=tag,
            redelivered=message.redelivered,
            exchange=message.exchange,
            routing_key=message.routing_key,
        )
        delivered = aiormq.abc.DeliveredMessage(
            frame,
            self._content(queue, message),
            message.body,
            cast(aiormq.abc.AbstractChannel, self),
        )
        task = self.loop.create_task(_run_callback(consumer.callback, delivered))
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)

    def _track(
        self,
        consumer: Consumer | None,
        queue: MemoryQueue | None,
        message: StoredMessage,
        no_ack: bool,
    ) -> int:
        self._delivery_tag += 1
        if not no_ack and queue is not None:
            self._unacked[self._delivery_tag] = _Delivery(consumer, queue, message)
            queue.unacked += 1
            if consumer is not None:
                consumer.unacked += 1
        return self._delivery_tag

    @staticmethod
    def _untrack(delivery: _Delivery) -> None:
        delivery.queue.unacked -= 1
        if delivery.consumer is not None:
            delivery.consumer.unacked -= 1

    @staticmethod
    def _content(queue: MemoryQueue | None, message: StoredMessage) -> ContentHeader:
        properties = message.properties
        if queue is not None and queue.delivery_limit is not None and message.returns:
            properties.headers = {**(properties.headers or {}), "x-delivery-count": message.returns}
        return ContentHeader(properties=properties, body_size=len(message.body))

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Consumer callback failed", exc_info=task.exception())

    # -------------------------------------------------------------------- acknowledgement

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        """Acknowledge a delivery (``multiple``: and every earlier one)."""
        self._settle(delivery_tag, multiple, lambda queue, message: None)

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True, wait: bool = True
    ) -> None:
        """Refuse deliveries: back to the queue (``requeue``) or dead-lettered."""
        self._settle(delivery_tag, multiple, _requeue if requeue else _reject)

    async def basic_reject(
        self, delivery_tag: int, *, requeue: bool = True, wait: bool = True
    ) -> None:
        """Refuse one delivery: back to the queue (``requeue``) or dead-lettered."""
        self._settle(delivery_tag, False, _requeue if requeue else _reject)

    def _settle(
        self, tag: int, multiple: bool, then: Callable[[MemoryQueue, StoredMessage], None]
    ) -> None:
        self._check_open()
        if (tag or not multiple) and tag not in self._unacked:
            # RabbitMQ closes the channel for an unknown tag, after the ack was sent.
            reason = f"PRECONDITION_FAILED - unknown delivery tag {tag}"
            self.shutdown(ChannelPreconditionFailed(reason))
            return
        tags = [t for t in self._unacked if t <= tag or not tag] if multiple else [tag]
        queues: list[MemoryQueue] = []
        for one in tags:
            delivery = self._unacked.pop(one)
            self._untrack(delivery)
            then(delivery.queue, delivery.message)
            queues.append(delivery.queue)
        self._kick([*queues, *self._consumed_queues()])

    def _consumed_queues(self) -> list[MemoryQueue]:
        return [c.queue for c in self.consumers.values() if c.queue is not None]

    @staticmethod
    def _kick(queues: Iterable[MemoryQueue]) -> None:
        for queue in dict.fromkeys(queues):
            if not queue.deleted:
                queue.expire_due()
                queue.dispatch()

    # ------------------------------------------------------------------------- closing

    def cancel_by_broker(self, consumer: Consumer) -> None:
        """The broker cancelled ``consumer`` (its queue was deleted): tell the callbacks."""
        self.consumers.pop(consumer.tag, None)
        frame = spec.Basic.Cancel(consumer_tag=consumer.tag, nowait=True)
        for callback in list(self.on_consumer_cancel_callbacks):
            try:
                result = callback(frame)
                if inspect.isawaitable(result):
                    self.loop.create_task(_await(result))
            except Exception:
                log.exception("Unhandled consumer cancel callback exception")

    def shutdown(self, reason: BaseException) -> None:
        """Close now: consumers stop, unacked messages go back, callback tasks are cancelled."""
        if not self._mark_closed(reason):
            return
        for consumer in self.consumers.values():
            self.broker.remove_consumer(consumer)
        self.consumers.clear()
        self.reply_address = None
        deliveries, self._unacked = list(self._unacked.values()), {}
        for delivery in deliveries:
            self._untrack(delivery)
            delivery.queue.requeue(delivery.message)
        self.connection.forget_channel(self)
        self._kick(d.queue for d in deliveries)
        if not self.loop.is_closed():
            for task in self.pending_tasks():
                task.cancel()

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """The callback tasks still running (but the current task)."""
        current = _current_task()
        return [task for task in self._tasks if task is not current]

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


def _requeue(queue: MemoryQueue, message: StoredMessage) -> None:
    queue.requeue(message)


def _reject(queue: MemoryQueue, message: StoredMessage) -> None:
    queue.reject(message)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


async def _await(awaitable: Any) -> None:
    await awaitable


async def _run_callback(
    callback: Callable[[aiormq.abc.DeliveredMessage], Any], message: aiormq.abc.DeliveredMessage
) -> None:
    result = callback(message)
    if inspect.isawaitable(result):
        await result
