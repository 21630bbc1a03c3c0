"""One queue of the in-memory broker: its ready messages, its consumers, and what becomes of
a delivery (:class:`Outcome`).

Theory of operation
-------------------
Ready messages are kept in arrival order (:class:`~.ready.ReadyMessages`).
:meth:`MemoryQueue.dispatch` hands them to the consumers round-robin (a single active consumer
queue: to the oldest), each taking as many as its :class:`Receiver` allows (prefetch, an open
channel); a receiver holds a delivery unacked until it settles it with an :class:`Outcome`. A
message *dies* — goes to the dead-letter hook, which routes it on — when it expires at the
head, when a consumer rejects it, when it comes back more often than a quorum queue's
``x-delivery-limit``, or when a length limit drops or refuses it (reason ``maxlen``,
:mod:`.limits`).

Before a message leaves the head (delivered, taken) what is due there expires, as in
RabbitMQ. A new queue refuses arguments RabbitMQ refuses (406, :mod:`.arguments`). Every
change fires the broker's :class:`~.changes.Changes`, which the broker's ``wait_*`` wait on.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .arguments import argument_mismatch, dead_letter_exchange, delivery_limit, invalid_argument
from .changes import Changes
from .deaths import DELIVERY_LIMIT, EXPIRED, MAXLEN, REJECTED
from .expiry import Expiry
from .messages import StoredMessage
from .ready import ReadyMessages
from .refusals import precondition_failed

#: Called with the queue, the message and the reason (:mod:`.deaths`) when a message dies.
DeadLetterHook = Callable[["MemoryQueue", StoredMessage, str], None]


class Outcome(enum.Enum):
    """How a receiver settled a delivery it held unacked."""

    #: ``basic.ack``: done with.
    ACK = "ack"
    #: ``basic.nack``/``basic.reject`` with requeue, or its channel closed: back in the queue.
    REQUEUE = "requeue"
    #: ``basic.nack``/``basic.reject`` without requeue: dead-lettered (or dropped).
    REJECT = "reject"


class Receiver(Protocol):
    """The side of a channel a queue delivers to (:mod:`eventrabbit.testing.deliveries`)."""

    def can_receive(self, consumer: Consumer) -> bool:
        """Whether ``consumer`` may take one more message now (prefetch, open channel)."""
        ...

    def receive(
        self, consumer: Consumer, queue: MemoryQueue | None, message: StoredMessage
    ) -> None:
        """Deliver ``message`` to ``consumer`` (``queue`` is ``None`` for a direct reply)."""
        ...

    def cancel_by_broker(self, consumer: Consumer) -> None:
        """The broker cancelled ``consumer`` (its queue was deleted)."""
        ...


@dataclass(slots=True, eq=False)
class Consumer:
    """A ``basic.consume`` subscription.

    :param queue: ``None`` for the direct reply-to pseudo-queue.
    :param prefetch: unacked messages it may hold; ``0`` is unlimited.
    """

    tag: str
    receiver: Receiver
    callback: Callable[..., Any]
    queue: MemoryQueue | None
    no_ack: bool = False
    prefetch: int = 0
    unacked: int = 0
    #: The ``basic.consume`` arguments (a stream reads ``x-stream-offset``).
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class MemoryQueue:
    """A queue: ready messages in arrival order and the consumers they go to.

    :param on_dead: where dying messages go (the broker's dead-lettering).
    :param changes: fired on every change of the queue.
    :raises aiormq.exceptions.ChannelPreconditionFailed: arguments RabbitMQ refuses.
    """

    name: str
    durable: bool
    arguments: Mapping[str, Any]
    on_dead: DeadLetterHook
    changes: Changes
    exclusive_owner: object | None = None
    auto_delete: bool = False
    consumers: list[Consumer] = field(default_factory=list)
    #: Messages delivered to consumers and not settled yet.
    unacked: int = 0
    deleted: bool = False
    #: ``x-dead-letter-exchange``; ``None`` drops dead messages.
    dead_letter_exchange: str | None = field(init=False)
    #: ``x-delivery-limit`` of a quorum queue.
    delivery_limit: int | None = field(init=False)
    #: ``x-single-active-consumer``: only the first consumer gets messages, then the next.
    single_active: bool = field(init=False)
    _ready: ReadyMessages = field(init=False)
    _next: int = 0

    def __post_init__(self) -> None:
        error = invalid_argument(self.name, self.arguments)
        if error is not None:
            raise precondition_failed(error)
        self._ready = ReadyMessages(self.arguments, on_due=self.expire_due)
        self.dead_letter_exchange = dead_letter_exchange(self.arguments)
        self.delivery_limit = delivery_limit(self.arguments)
        self.single_active = self.arguments.get("x-single-active-consumer") is True

    @property
    def ready(self) -> list[StoredMessage]:
        """The ready messages, oldest first (the queue's own list: only look)."""
        return self._ready.messages

    @property
    def expiry(self) -> Expiry:
        """When the head expires."""
        return self._ready.expiry

    def mismatch(
        self, durable: bool, auto_delete: bool, arguments: Mapping[str, Any]
    ) -> str | None:
        """What a new declare disagrees on with this queue, in RabbitMQ's words, or ``None``."""
        flags = {"durable": (self.durable, durable), "auto_delete": (self.auto_delete, auto_delete)}
        return argument_mismatch(self.name, self.arguments, arguments, flags)

    # ----------------------------------------------------------------- messages in and out

    def enqueue(self, message: StoredMessage, ttl: float | None) -> bool:
        """Take a routed message; ``ttl`` is the message's own, if it has one.

        :returns: ``False``: full, it refuses it (``x-overflow`` ``reject-publish*``).
        """
        if self._ready.refuses(message):
            if self._ready.limits.dead_letters_refused:
                self.on_dead(self, message, MAXLEN)
            return False
        if not self.ready and (consumer := self._next_consumer()) is not None:
            consumer.receiver.receive(consumer, self, message)  # whatever its TTL, as RabbitMQ
        else:
            self._ready.start(message, ttl)
            self._ready.add(message)
            self.dispatch()
            self._die(self._ready.overflowing(), MAXLEN)  # x-overflow drop-head
        self.changes.fire()
        return True

    def hold(self) -> None:
        """A receiver took a delivery of this queue and holds it until it settles it."""
        self.unacked += 1

    def settle(self, message: StoredMessage, outcome: Outcome) -> None:
        """A receiver settled a delivery it held; the caller then :meth:`resume` s the queue."""
        self.unacked -= 1
        if not self.deleted and outcome is Outcome.REQUEUE:
            message.redelivered = True
            message.returns += 1
            if self.delivery_limit is not None and message.returns > self.delivery_limit:
                self.on_dead(self, message, DELIVERY_LIMIT)
            else:  # back in its place, whatever the limits; a due head expires on resume
                self._ready.add(message)
                self._die(self._ready.overflowing(), MAXLEN)
        elif not self.deleted and outcome is Outcome.REJECT:
            self.on_dead(self, message, REJECTED)
        self.changes.fire()

    def take(self) -> StoredMessage | None:
        """Remove and return the next ready message (``basic.get``)."""
        self.expire_due()
        message = self._ready.pop()
        if message is not None:
            self.expire_due()  # the new head, as RabbitMQ looks at it after each fetch
            self.changes.fire()
        return message

    def purge(self) -> int:
        """Drop every ready message; return how many."""
        count = self._ready.clear()
        self.changes.fire()
        return count

    # ------------------------------------------------------------------------ consumers

    def add_consumer(self, consumer: Consumer) -> None:
        """A new consumer, which gets what is ready at once."""
        self.consumers.append(consumer)
        self.dispatch()
        self.changes.fire()

    def remove_consumer(self, consumer: Consumer) -> None:
        """A consumer stopped; what it holds unacked stays so until its channel settles it."""
        if consumer in self.consumers:
            self.consumers.remove(consumer)
            self.dispatch()  # a single active consumer's successor takes over, as in a quorum queue
            self.changes.fire()

    def resume(self) -> None:
        """Deliver what consumers can take now (a settle or a ``basic.qos`` gave them room)."""
        self.dispatch()

    def dispatch(self) -> None:
        """Deliver ready messages to consumers that can take them, round-robin."""
        delivered = False
        self.expire_due()  # an expired head is never delivered: before each delivery
        while self.ready and self.consumers:
            consumer = self._next_consumer()
            message = self._ready.pop() if consumer is not None else None
            if consumer is None or message is None:
                break
            consumer.receiver.receive(consumer, self, message)
            delivered = True
            self.expire_due()
        if delivered:
            self.changes.fire()

    def _next_consumer(self) -> Consumer | None:
        count = len(self.consumers)
        if self.single_active and count:  # the oldest consumer is the active one
            first = self.consumers[0]
            return first if first.receiver.can_receive(first) else None
        for offset in range(count):
            index = (self._next + offset) % count
            consumer = self.consumers[index]
            if consumer.receiver.can_receive(consumer):
                self._next = index + 1
                return consumer
        return None

    # ------------------------------------------------------------------ expiry and limits

    def expire_due(self) -> None:
        """Dead-letter (or drop) the messages at the head whose TTL has run out."""
        self._die(self._ready.expired(), EXPIRED)

    def _die(self, messages: list[StoredMessage], reason: str) -> None:
        for message in messages:
            self.on_dead(self, message, reason)
        if messages:
            self.changes.fire()

    def close(self) -> None:
        """The queue is deleted: forget its messages and timers."""
        self.deleted = True
        self.purge()
        self.consumers.clear()
