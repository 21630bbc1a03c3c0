"""One queue of the in-memory broker: its ready messages, its consumers and its TTL.

A queue hands its ready messages to its consumers round-robin, each consumer taking as many
as its prefetch allows, and gives them back to its dead-letter hook when they expire or are
rejected. Routing and the dead-letter exchange are the broker's business
(:mod:`eventrabbit.testing.broker`).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .messages import DELIVERY_LIMIT, EXPIRED, REJECTED, StoredMessage

#: Queue arguments RabbitMQ compares when a queue is declared again (others are ignored).
EQUIVALENT_ARGUMENTS = frozenset(
    {
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-dead-letter-strategy",
        "x-delivery-limit",
        "x-expires",
        "x-max-age",
        "x-max-length",
        "x-max-length-bytes",
        "x-max-priority",
        "x-message-ttl",
        "x-overflow",
        "x-queue-mode",
        "x-queue-type",
        "x-single-active-consumer",
    }
)

DeadLetterHook = Callable[["MemoryQueue", StoredMessage, str], None]


class Receiver(Protocol):
    """The side of a channel a queue delivers to."""

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


def _same_argument(key: str, old: object, new: object) -> bool:
    if key == "x-queue-type":
        # A queue declared without a type is a classic one.
        return (old or "classic") == (new or "classic")
    return old == new


@dataclass(eq=False)
class MemoryQueue:
    """A queue: ready messages in arrival order and the consumers they go to."""

    name: str
    durable: bool
    arguments: Mapping[str, Any]
    on_dead: DeadLetterHook
    exclusive_owner: object | None = None
    auto_delete: bool = False
    ready: list[StoredMessage] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    #: Messages delivered to consumers and not acked yet.
    unacked: int = 0
    deleted: bool = False
    _next: int = 0
    #: No ready message expires before this (a lower bound; ``None``: none has a TTL).
    _next_deadline: float | None = None

    @property
    def ttl(self) -> float | None:
        """``x-message-ttl`` in seconds."""
        ttl = self.arguments.get("x-message-ttl")
        return ttl / 1000 if isinstance(ttl, int | float) and ttl >= 0 else None

    @property
    def dead_letter_exchange(self) -> str | None:
        """``x-dead-letter-exchange``; ``None`` drops dead messages."""
        exchange = self.arguments.get("x-dead-letter-exchange")
        return exchange if isinstance(exchange, str) else None

    @property
    def delivery_limit(self) -> int | None:
        """``x-delivery-limit`` of a quorum queue."""
        limit = self.arguments.get("x-delivery-limit")
        quorum = self.arguments.get("x-queue-type") == "quorum"
        return limit if quorum and isinstance(limit, int) else None

    def mismatch(
        self, durable: bool, auto_delete: bool, arguments: Mapping[str, Any]
    ) -> str | None:
        """What a new declare disagrees on with this queue, in RabbitMQ's words, or ``None``."""
        if durable != self.durable:
            return f"inequivalent arg 'durable' for queue '{self.name}'"
        if auto_delete != self.auto_delete:
            return f"inequivalent arg 'auto_delete' for queue '{self.name}'"
        for key in sorted(EQUIVALENT_ARGUMENTS):
            old, new = self.arguments.get(key), arguments.get(key)
            if not _same_argument(key, old, new):
                return (
                    f"inequivalent arg '{key}' for queue '{self.name}': "
                    f"received {new!r} but current is {old!r}"
                )
        return None

    # ----------------------------------------------------------------- messages in and out

    def enqueue(self, message: StoredMessage, ttl: float | None) -> None:
        """Take a routed message; ``ttl`` is the message's own, if it has one."""
        ttls = [t for t in (self.ttl, ttl) if t is not None]
        if ttls:
            message.deadline = time.monotonic() + min(ttls)
        bisect.insort(self.ready, message, key=_seq)
        self.dispatch()
        if self.ready and self.ready[-1] is message:  # newest, so last; unless delivered
            self._arm_timer(message)

    def requeue(self, message: StoredMessage) -> None:
        """Put back a message that was delivered and not acked (nack, reject, channel closed)."""
        if self.deleted:
            return
        message.redelivered = True
        message.returns += 1
        limit = self.delivery_limit
        if limit is not None and message.returns > limit:
            self.on_dead(self, message, DELIVERY_LIMIT)
            return
        if message.deadline is not None and message.deadline <= time.monotonic():
            self.on_dead(self, message, EXPIRED)
            return
        bisect.insort(self.ready, message, key=_seq)
        self._arm_timer(message)  # the caller dispatches, once for all it gave back

    def reject(self, message: StoredMessage) -> None:
        """Dead-letter a message a consumer rejected without requeue."""
        if not self.deleted:
            self.on_dead(self, message, REJECTED)

    def take(self) -> StoredMessage | None:
        """Remove and return the next ready message (``basic.get``)."""
        self.expire_due()
        if not self.ready:
            return None
        message = self.ready.pop(0)
        message.cancel_timer()
        return message

    def purge(self) -> int:
        """Drop every ready message; return how many."""
        count = len(self.ready)
        for message in self.ready:
            message.cancel_timer()
        self.ready.clear()
        return count

    # ------------------------------------------------------------------- consumers, expiry

    def dispatch(self) -> None:
        """Deliver ready messages to consumers that can take them, round-robin."""
        while self.ready and self.consumers:
            consumer = self._next_consumer()
            if consumer is None:
                return
            message = self.ready.pop(0)
            message.cancel_timer()
            consumer.receiver.receive(consumer, self, message)

    def _next_consumer(self) -> Consumer | None:
        count = len(self.consumers)
        for offset in range(count):
            index = (self._next + offset) % count
            consumer = self.consumers[index]
            if consumer.receiver.can_receive(consumer):
                self._next = index + 1
                return consumer
        return None

    def expire_due(self) -> None:
        """Dead-letter (or drop) every ready message whose TTL has run out."""
        now = time.monotonic()
        if self._next_deadline is None or self._next_deadline > now:
            return
        due = [m for m in self.ready if m.deadline is not None and m.deadline <= now]
        for message in due:
            self.ready.remove(message)
            message.cancel_timer()
        deadlines = [m.deadline for m in self.ready if m.deadline is not None]
        self._next_deadline = min(deadlines, default=None)
        for message in due:
            self.on_dead(self, message, EXPIRED)

    def _arm_timer(self, message: StoredMessage) -> None:
        """Expire ``message`` (which is ready) when its deadline comes."""
        if message.deadline is None:
            return
        if self._next_deadline is None or message.deadline < self._next_deadline:
            self._next_deadline = message.deadline
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: expired lazily, when the queue is next looked at
        delay = max(0.0, message.deadline - time.monotonic())
        message.timer = loop.call_later(delay, self._deadline_reached, message)

    def _deadline_reached(self, message: StoredMessage) -> None:
        # A message leaving the ready list cancels its timer, so this one is still ready.
        message.timer = None
        if message.deadline is not None and message.deadline > time.monotonic():
            self._arm_timer(message)  # the loop's clock fired a little early
        else:
            self.expire_due()

    def close(self) -> None:
        """The queue is deleted: forget its messages and timers."""
        self.deleted = True
        self.purge()
        self.consumers.clear()


def _seq(message: StoredMessage) -> int:
    return message.seq
