"""The in-memory channel: the part of aiormq's ``Channel`` API that eventrabbit uses.

It behaves as aiormq on a real RabbitMQ does where it matters to a client:

- every method of a closed channel raises ``ChannelInvalidStateError``;
- a broker error (404, 405, 406, 403) closes the channel with the matching
  ``aiormq.exceptions`` error, which the call raises and ``closing`` carries; a connection
  error (503) closes the connection;
- ``basic_publish`` returns only when the message is routed, with a ``Basic.Ack`` (confirm
  mode) — or raises ``aiormq.exceptions.PublishError`` for a ``mandatory`` unroutable one;
- each delivery runs its consumer callback in a task of its own, and closing the channel
  cancels those tasks and puts every unacked message back in its queue, redelivered;
- per-consumer ``basic_qos`` prefetch (``global_=True``: per channel) bounds unacked messages.

A channel is made of parts: a :class:`~.guard.Guard` that every call into the broker goes
through; :class:`~.declaring.Declaring` and :class:`~.publishing.Publishing`, whose methods
are the channel's ``exchange_*``/``queue_*`` and ``basic_publish``; :class:`~.deliveries.
Deliveries`, which keeps its consumers and unacked deliveries; and
:class:`~.reply_to.ChannelReplyTo`, its direct reply-to consumer. The channel itself does the
consuming, acknowledging and closing.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any, Protocol

import aiormq.abc
from aiormq.exceptions import ChannelClosed, DuplicateConsumerTag
from pamqp import commands as spec

from ..topology import DIRECT_REPLY_TO
from .broker import MemoryBroker
from .closable import Closable
from .declaring import Declaring
from .deliveries import Deliveries, resume
from .guard import Guard
from .publishing import Publishing
from .queues import Consumer, Outcome
from .refusals import GLOBAL_QOS, deprecated, precondition_failed
from .reply_to import ChannelReplyTo
from .streams import admit


class Connection(Protocol):
    """What a channel needs of its connection (:mod:`eventrabbit.testing.connection`)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the connection was opened on."""
        ...

    @property
    def broker(self) -> MemoryBroker:
        """The broker it is connected to."""
        ...

    @property
    def is_closed(self) -> bool:
        """Whether the connection has closed."""
        ...

    def shutdown(self, reason: BaseException) -> None:
        """Close the connection and its channels now (a connection error)."""
        ...

    def forget_channel(self, channel: MemoryChannel) -> None:
        """The channel closed."""
        ...


class MemoryChannel(Closable):
    """A channel of a :class:`~eventrabbit.testing.connection.MemoryConnection`."""

    def __init__(
        self,
        connection: Connection,
        number: int,
        *,
        publisher_confirms: bool = True,
        on_return_raises: bool = True,
    ) -> None:
        super().__init__(connection.loop)
        self.connection = connection
        self.broker = connection.broker
        self.number = number
        self.on_consumer_cancel_callbacks: set[Callable[[spec.Basic.Cancel], Any]] = set()
        self.guard = Guard(self, connection)
        self.deliveries = Deliveries(self)
        self.reply_to = ChannelReplyTo(self.broker.topology.replies)
        # aiormq's methods for declaring and publishing are those of the parts that do them.
        declaring = Declaring(self.broker.topology, connection, self.guard)
        self.exchange_declare = declaring.exchange_declare
        self.exchange_delete = declaring.exchange_delete
        self.exchange_bind = declaring.exchange_bind
        self.exchange_unbind = declaring.exchange_unbind
        self.queue_declare = declaring.queue_declare
        self.queue_bind = declaring.queue_bind
        self.queue_unbind = declaring.queue_unbind
        self.queue_delete = declaring.queue_delete
        self.queue_purge = declaring.queue_purge
        publishing = Publishing(
            self, self.broker, self.guard, self.reply_to,
            publisher_confirms=publisher_confirms, on_return_raises=on_return_raises,
        )  # fmt: skip
        self.basic_publish = publishing.basic_publish
        self.on_return_callbacks = publishing.on_return_callbacks

    def __str__(self) -> str:
        return str(self.number)

    def __repr__(self) -> str:
        return f'<MemoryChannel: "{self.number}" of {self.broker.url}>'

    @property
    def consumers(self) -> dict[str, Consumer]:
        """The channel's consumers by consumer tag."""
        return self.deliveries.consumers

    # ------------------------------------------------------------------------- consuming

    async def basic_qos(
        self,
        *,
        prefetch_size: int | None = None,
        prefetch_count: int | None = None,
        global_: bool = False,
    ) -> spec.Basic.QosOk:
        """Limit unacked messages: per new consumer, or per channel with ``global_``."""
        self.guard.check_open()
        if global_ and GLOBAL_QOS in self.broker.topology.denied:
            self.guard(_refuse, deprecated(GLOBAL_QOS))
        if global_:
            self.deliveries.global_prefetch = prefetch_count or 0
        else:
            self.deliveries.prefetch = prefetch_count or 0
        resume(self.deliveries.consumed_queues())
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
        self.guard.check_open()
        tag = consumer_tag or f"ctag{self.number}.{secrets.token_hex(16)}"
        if tag in self.consumers:
            raise DuplicateConsumerTag(self.number)
        if queue == DIRECT_REPLY_TO:
            self.consumers[tag] = self.guard(
                self.reply_to.consumer, tag, self.deliveries, consumer_callback, no_ack
            )
            return spec.Basic.ConsumeOk(consumer_tag=tag)
        target = self.guard(self.broker.topology.queue, queue, self.connection)
        prefetch = self.deliveries.prefetch
        consumer = Consumer(tag, self.deliveries, consumer_callback, target, no_ack, prefetch)
        consumer.arguments = arguments or {}
        target = self.guard(admit, target, consumer)  # a stream: a cursor of its own
        self.consumers[tag] = consumer
        target.add_consumer(consumer)
        return spec.Basic.ConsumeOk(consumer_tag=tag)

    async def basic_cancel(self, consumer_tag: str, *, nowait: bool = False) -> spec.Basic.CancelOk:
        """Stop a consumer; what it holds unacked stays unacked."""
        self.guard.check_open()
        consumer = self.consumers.pop(consumer_tag, None)
        if consumer is not None:
            self._stop(consumer)
        return spec.Basic.CancelOk(consumer_tag=consumer_tag)

    def _stop(self, consumer: Consumer) -> None:
        if consumer.queue is None:
            self.reply_to.cancel(consumer)
        else:
            self.broker.topology.remove_consumer(consumer)

    async def basic_get(
        self,
        queue: str = "",
        no_ack: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (aiormq's signature; nothing waits)
    ) -> aiormq.abc.DeliveredMessage:
        """Take one message (``Basic.GetOk``) or none (``Basic.GetEmpty``)."""
        target = self.guard(self.broker.topology.queue, queue, self.connection)
        return self.deliveries.get(target, no_ack)

    # -------------------------------------------------------------------- acknowledgement

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        """Acknowledge a delivery (``multiple``: and every earlier one)."""
        self._settle(delivery_tag, multiple, Outcome.ACK)

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True, wait: bool = True
    ) -> None:
        """Refuse deliveries: back to the queue (``requeue``) or dead-lettered."""
        self._settle(delivery_tag, multiple, Outcome.REQUEUE if requeue else Outcome.REJECT)

    async def basic_reject(
        self, delivery_tag: int, *, requeue: bool = True, wait: bool = True
    ) -> None:
        """Refuse one delivery: back to the queue (``requeue``) or dead-lettered."""
        self._settle(delivery_tag, False, Outcome.REQUEUE if requeue else Outcome.REJECT)

    def _settle(self, tag: int, multiple: bool, outcome: Outcome) -> None:
        self.guard.check_open()
        if not self.deliveries.settle(tag, multiple, outcome):
            # RabbitMQ closes the channel for an unknown tag, after the ack was sent.
            self.shutdown(precondition_failed(f"unknown delivery tag {tag}"))

    # ------------------------------------------------------------------------- closing

    def shutdown(self, reason: BaseException) -> None:
        """Close now: consumers stop, unacked messages go back, callback tasks are cancelled."""
        if not self._mark_closed(reason):
            return
        self.deliveries.release()  # first: a single active consumer's successor gets it first
        for consumer in self.consumers.values():
            self._stop(consumer)
        self.consumers.clear()
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


def _refuse(refusal: BaseException) -> None:
    """Raise ``refusal``: through the guard, it closes what RabbitMQ's would."""
    raise refusal
