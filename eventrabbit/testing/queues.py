"""One queue of the in-memory broker: its ready messages, its consumers, and what becomes of
a delivery (:class:`Outcome`).

Theory of operation
-------------------
Ready messages are kept in arrival order (the broker-wide ``seq``, so a requeued message goes
back to its place). :meth:`MemoryQueue.dispatch` hands them to the consumers round-robin, each
taking as many as its :class:`Receiver` allows (prefetch, an open channel); a receiver holds a
delivery unacked until it settles it with an :class:`Outcome`. A message *dies* — goes to the
dead-letter hook, which routes it on — when it expires, when a consumer rejects it, or when
it comes back more often than a quorum queue's ``x-delivery-limit``.

When messages expire is the queue's :class:`~.expiry.Expiry`'s business. Every change fires
the broker's :class:`~.changes.Changes`, which is what the broker's ``wait_*`` wait on.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .arguments import argument_mismatch, dead_letter_exchange, delivery_limit, message_ttl
from .changes import Changes
from .deaths import DELIVERY_LIMIT, EXPIRED, REJECTED
from .expiry import Expiry
from .messages import StoredMessage

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


@dataclass(eq=False)
class MemoryQueue:
    """A queue: ready messages in arrival order and the consumers they go to.

    :param on_dead: where dying messages go (the broker's dead-lettering).
    :param changes: fired on every change of the queue.
    """

    name: str
    durable: bool
    arguments: Mapping[str, Any]
    on_dead: DeadLetterHook
    changes: Changes
    exclusive_owner: object | None = None
    auto_delete: bool = False
    ready: list[StoredMessage] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    #: Messages delivered to consumers and not settled yet.
    unacked: int = 0
    deleted: bool = False
    expiry: Expiry = field(init=False)
    _next: int = 0

    def __post_init__(self) -> None:
        self.expiry = Expiry(on_due=self.expire_due)

    @property
    def ttl(self) -> float | None:
        """``x-message-ttl`` in seconds."""
        return message_ttl(self.arguments)

    @property
    def dead_letter_exchange(self) -> str | None:
        """``x-dead-letter-exchange``; ``None`` drops dead messages."""
        return dead_letter_exchange(self.arguments)

    @property
    def delivery_limit(self) -> int | None:
        """``x-delivery-limit`` of a quorum queue."""
        return delivery_limit(self.arguments)

    def mismatch(
        self, durable: bool, auto_delete: bool, arguments: Mapping[str, Any]
    ) -> str | None:
        """What a new declare disagrees on with this queue, in RabbitMQ's words, or ``None``."""
        for flag, old, new in (
            ("durable", self.durable, durable),
            ("auto_delete", self.auto_delete, auto_delete),
        ):
            if old != new:
                return f"inequivalent arg '{flag}' for queue '{self.name}'"
        return argument_mismatch(self.name, self.arguments, arguments)

    # ----------------------------------------------------------------- messages in and out

    def enqueue(self, message: StoredMessage, ttl: float | None) -> None:
        """Take a routed message; ``ttl`` is the message's own, if it has one."""
        self.expiry.start(message, self.ttl, ttl)
        bisect.insort(self.ready, message, key=_seq)
        self.dispatch()
        if self.ready and self.ready[-1] is message:  # newest, so last; unless delivered
            self.expiry.watch(message)
        self.changes.fire()

    def hold(self) -> None:
        """A receiver took a delivery of this queue and holds it until it settles it."""
        self.unacked += 1

    def settle(self, message: StoredMessage, outcome: Outcome) -> None:
        """A receiver settled a delivery it held; the caller then :meth:`resume` s the queue."""
        self.unacked -= 1
        if not self.deleted and outcome is Outcome.REQUEUE:
            self._requeue(message)
        elif not self.deleted and outcome is Outcome.REJECT:
            self.on_dead(self, message, REJECTED)
        self.changes.fire()

    def _requeue(self, message: StoredMessage) -> None:
        message.redelivered = True
        message.returns += 1
        limit = self.delivery_limit
        if limit is not None and message.returns > limit:
            self.on_dead(self, message, DELIVERY_LIMIT)
        elif self.expiry.expired(message):
            self.on_dead(self, message, EXPIRED)
        else:
            bisect.insort(self.ready, message, key=_seq)
            self.expiry.watch(message)

    def take(self) -> StoredMessage | None:
        """Remove and return the next ready message (``basic.get``)."""
        self.expire_due()
        if not self.ready:
            return None
        message = self.ready.pop(0)
        message.cancel_timer()
        self.changes.fire()
        return message

    def purge(self) -> int:
        """Drop every ready message; return how many."""
        count = len(self.ready)
        for message in self.ready:
            message.cancel_timer()
        self.ready.clear()
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
            self.changes.fire()

    def resume(self) -> None:
        """Expire what is due and deliver what consumers can take now (after a settle or a
        ``basic.qos`` gave them room)."""
        if not self.deleted:
            self.expire_due()
            self.dispatch()

    def dispatch(self) -> None:
        """Deliver ready messages to consumers that can take them, round-robin."""
        delivered = False
        while self.ready and self.consumers:
            consumer = self._next_consumer()
            if consumer is None:
                break
            message = self.ready.pop(0)
            message.cancel_timer()
            consumer.receiver.receive(consumer, self, message)
            delivered = True
        if delivered:
            self.changes.fire()

    def _next_consumer(self) -> Consumer | None:
        count = len(self.consumers)
        for offset in range(count):
            index = (self._next + offset) % count
            consumer = self.consumers[index]
            if consumer.receiver.can_receive(consumer):
                self._next = index + 1
                return consumer
        return None

    # --------------------------------------------------------------------------- expiry

    def expire_due(self) -> None:
        """Dead-letter (or drop) every ready message whose TTL has run out."""
        due = self.expiry.due(self.ready)
        if not due:
            return
        for message in due:
            self.ready.remove(message)
            message.cancel_timer()
        for message in due:
            self.on_dead(self, message, EXPIRED)
        self.changes.fire()

    def close(self) -> None:
        """The queue is deleted: forget its messages and timers."""
        self.deleted = True
        self.purge()
        self.consumers.clear()


def _seq(message: StoredMessage) -> int:
    return message.seq
