"""A queue's length limits in the in-memory broker: ``x-max-length``, ``x-max-length-bytes``
and what ``x-overflow`` does when they are reached. Pure: the queue counts, this decides.

Theory of operation
-------------------
As in RabbitMQ 3.10, the limits count a queue's *ready* messages and the sum of their bodies'
sizes; messages delivered and not yet acked do not count. With ``x-overflow`` ``drop-head``
(the default) a queue takes every message and then, while it is over a limit, drops (or
dead-letters, reason ``maxlen``) the message at its head — the new message itself, when it
alone is over. With ``reject-publish`` a message that would put the queue over a limit is
refused before it is enqueued: the publisher gets a ``basic.nack`` (with confirms on), no
``basic.return``; ``reject-publish-dlx`` also dead-letters the refused message. A requeued
message goes back whatever the limits; a ``drop-head`` queue then drops from the head.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The values of ``x-overflow``.
DROP_HEAD = "drop-head"
REJECT_PUBLISH = "reject-publish"
REJECT_PUBLISH_DLX = "reject-publish-dlx"
OVERFLOWS = (DROP_HEAD, REJECT_PUBLISH, REJECT_PUBLISH_DLX)


@dataclass(frozen=True, slots=True)
class Limits:
    """A queue's limits; ``None``: no such limit."""

    max_length: int | None = None
    max_bytes: int | None = None
    overflow: str = DROP_HEAD

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> Limits:
        """The limits queue ``arguments`` set (valid ones: the declare checked them)."""
        overflow = arguments.get("x-overflow")
        return cls(
            _count(arguments.get("x-max-length")),
            _count(arguments.get("x-max-length-bytes")),
            overflow if overflow in OVERFLOWS else DROP_HEAD,
        )

    @property
    def counts_bytes(self) -> bool:
        """Whether the queue must sum its ready bodies' sizes for these limits."""
        return self.max_bytes is not None

    def over(self, length: int, size: int) -> bool:
        """Whether ``length`` ready messages of ``size`` body bytes are over a limit."""
        return (self.max_length is not None and length > self.max_length) or (
            self.max_bytes is not None and size > self.max_bytes
        )

    def refuses(self, length: int, size: int, body: int) -> bool:
        """Whether a queue holding ``length``/``size`` refuses a message of ``body`` bytes."""
        return self.overflow != DROP_HEAD and self.over(length + 1, size + body)

    def drops_head(self, length: int, size: int) -> bool:
        """Whether a queue holding ``length``/``size`` drops the message at its head."""
        return self.overflow == DROP_HEAD and self.over(length, size)

    @property
    def dead_letters_refused(self) -> bool:
        """Whether a refused message is dead-lettered (``reject-publish-dlx``)."""
        return self.overflow == REJECT_PUBLISH_DLX


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
