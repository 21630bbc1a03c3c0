"""A queue's ready messages in the in-memory broker: kept in arrival order, taken from the
head, expired from the head (:mod:`.expiry`) and held to the queue's length limits
(:mod:`.limits`).

Theory of operation
-------------------
Messages are kept in arrival order — the broker-wide ``seq``, so a requeued message goes back
to its place. Every change that may move the head re-arms the queue's
:class:`~.expiry.Expiry` at the new head. What leaves because it expired or because the
queue is over its limits is handed back to the queue, head first, which dead-letters it; this
module decides only *which* messages those are.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from typing import Any

from .arguments import message_ttl
from .expiry import Expiry
from .limits import Limits
from .messages import StoredMessage


class ReadyMessages:
    """The ready messages of one queue.

    :param arguments: the queue's arguments (its TTL and limits).
    :param on_due: called when the head's deadline comes: the queue expires what is due.
    """

    def __init__(self, arguments: Mapping[str, Any], on_due: Callable[[], None]) -> None:
        #: Oldest first; the head is ``messages[0]``.
        self.messages: list[StoredMessage] = []
        self.ttl = message_ttl(arguments)
        self.limits = Limits.of(arguments)
        self.expiry = Expiry(on_due)

    def refuses(self, message: StoredMessage) -> bool:
        """Whether the queue is too full for ``message`` (``x-overflow`` ``reject-publish``)."""
        return self.limits.refuses(len(self.messages), self._bytes(), len(message.body))

    def start(self, message: StoredMessage, ttl: float | None) -> None:
        """Give a new message its deadline (``ttl``: its own, if it has one)."""
        Expiry.start(message, self.ttl, ttl)

    def add(self, message: StoredMessage) -> None:
        """Put a new or requeued message in its place."""
        bisect.insort(self.messages, message, key=_seq)
        self._moved()

    def pop(self) -> StoredMessage | None:
        """Take the head (to deliver it), if there is one."""
        return self._take(1)[0] if self.messages else None

    def expired(self) -> list[StoredMessage]:
        """Take the run of messages at the head whose deadline has passed."""
        if not self.expiry.due():
            return []
        count = 0
        while count < len(self.messages) and Expiry.expired(self.messages[count]):
            count += 1
        return self._take(count)

    def overflowing(self) -> list[StoredMessage]:
        """Take messages from the head until the queue is within its limits (``drop-head``)."""
        length, size, count = len(self.messages), self._bytes(), 0
        while self.limits.drops_head(length - count, size):
            size -= len(self.messages[count].body)
            count += 1
        return self._take(count)

    def clear(self) -> int:
        """Drop every message; return how many."""
        return len(self._take(len(self.messages)))

    def _take(self, count: int) -> list[StoredMessage]:
        taken = self.messages[:count]
        if taken:
            del self.messages[:count]
            self._moved()
        return taken

    def _bytes(self) -> int:
        # Summed only for a queue with x-max-length-bytes: the others never ask for it.
        return sum(len(m.body) for m in self.messages) if self.limits.counts_bytes else 0

    def _moved(self) -> None:
        self.expiry.arm(self.messages[0] if self.messages else None)


def _seq(message: StoredMessage) -> int:
    return message.seq
