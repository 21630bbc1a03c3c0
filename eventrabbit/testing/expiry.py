"""Message TTL in the in-memory broker: each ready message's deadline, and the one timer per
queue that expires its head on time.

Theory of operation
-------------------
A message gets its deadline when it is enqueued: now plus the smaller of the queue's
``x-message-ttl`` and its own ``expiration``. As in RabbitMQ's classic queues only the *head*
of a queue expires: a message whose deadline passed behind one whose deadline has not (or
that has none) stays until it is the head, and then expires at once. So dead letters come in
queue order, and a short ``expiration`` behind a long one waits for it.

The queue tells :meth:`Expiry.arm` its head whenever the head may have changed; the timer on
the running event loop then fires at the head's deadline and makes the queue expire what is
due. The queue also expires what is due whenever it is looked at, because the head may have
no live timer: it became the head with no running loop, or its loop has ended — brokers
outlive tests' loops. :attr:`Expiry.next_deadline` is the head's deadline, so the common case
(nothing due) costs one comparison; the broker's waits wake at it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .messages import StoredMessage


class Expiry:
    """The deadline of one queue's head, and its timer.

    :param on_due: called when the timer finds the head due: the queue expires what is.
    """

    def __init__(self, on_due: Callable[[], None]) -> None:
        self.on_due = on_due
        #: The head's deadline (``None``: the queue is empty, or its head has no TTL).
        self.next_deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def start(message: StoredMessage, *ttls: float | None) -> None:
        """Give a newly enqueued message its deadline: the smallest TTL that applies wins."""
        applying = [ttl for ttl in ttls if ttl is not None]
        if applying:
            message.deadline = time.monotonic() + min(applying)

    @staticmethod
    def expired(message: StoredMessage) -> bool:
        """Whether ``message``'s deadline has passed."""
        return message.deadline is not None and message.deadline <= time.monotonic()

    def due(self) -> bool:
        """Whether the head's deadline has passed."""
        return self.next_deadline is not None and self.next_deadline <= time.monotonic()

    def arm(self, head: StoredMessage | None) -> None:
        """``head`` is the queue's head now (``None``: it is empty): expire it when due."""
        deadline = head.deadline if head is not None else None
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None  # expired when the queue is next looked at, or waited on
        if deadline == self.next_deadline and self._timer is not None and loop is self._loop:
            return  # the same deadline, on a timer that can still fire
        self.disarm()
        self.next_deadline = deadline
        if deadline is not None and loop is not None:
            delay = max(0.0, deadline - time.monotonic())
            self._timer, self._loop = loop.call_later(delay, self._deadline_reached), loop

    def disarm(self) -> None:
        """Forget the timer and the deadline (the queue is empty, or deleted)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop = None
        self.next_deadline = None

    def _deadline_reached(self) -> None:
        self._timer = None
        deadline = self.next_deadline
        if deadline is not None and deadline > time.monotonic() and self._loop is not None:
            # The loop's clock fired a little early: wait for the rest.
            self._timer = self._loop.call_later(deadline - time.monotonic(), self._deadline_reached)
        else:
            self.on_due()
