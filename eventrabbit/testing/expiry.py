"""Message TTL in the in-memory broker: each ready message's deadline, and the timers that
expire it on time.

Theory of operation
-------------------
A message gets its deadline when it is enqueued: now plus the smaller of the queue's
``x-message-ttl`` and its own ``expiration``. While it is ready it has a timer on the event
loop that enqueued it, which makes the queue expire what is due; leaving the ready list
(delivered, taken, purged) cancels the timer, coming back (requeued) arms a new one. The
queue also expires what is due whenever it is looked at, because a message may have no live
timer: one enqueued with no running loop, or whose loop has ended — brokers outlive tests'
loops. :attr:`Expiry.next_deadline` is a lower bound of the ready messages' deadlines, so the
common case (nothing due) costs one comparison; the broker's waits wake at it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .messages import StoredMessage


class Expiry:
    """The deadlines of one queue's ready messages.

    :param on_due: called when a timer finds a message due: the queue expires what is.
    """

    def __init__(self, on_due: Callable[[], None]) -> None:
        self.on_due = on_due
        #: No ready message expires before this (``None``: none has a deadline).
        self.next_deadline: float | None = None

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

    def watch(self, message: StoredMessage) -> None:
        """``message`` is ready now: expire it when its deadline comes."""
        if message.deadline is None:
            return
        if self.next_deadline is None or message.deadline < self.next_deadline:
            self.next_deadline = message.deadline
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: expired when the queue is next looked at, or waited on
        delay = max(0.0, message.deadline - time.monotonic())
        message.timer = loop.call_later(delay, self._deadline_reached, message)

    def due(self, ready: list[StoredMessage]) -> list[StoredMessage]:
        """The messages of ``ready`` whose deadline has passed; :attr:`next_deadline` becomes
        that of the others."""
        now = time.monotonic()
        if self.next_deadline is None or self.next_deadline > now:
            return []
        due = [m for m in ready if m.deadline is not None and m.deadline <= now]
        later = [m.deadline for m in ready if m.deadline is not None and m.deadline > now]
        self.next_deadline = min(later, default=None)
        return due

    def _deadline_reached(self, message: StoredMessage) -> None:
        # A message leaving the ready list cancels its timer, so this one is still ready.
        message.timer = None
        if message.deadline is not None and message.deadline > time.monotonic():
            self.watch(message)  # the loop's clock fired a little early
        else:
            self.on_due()
