"""Queue arguments (``x-*``): what the in-memory broker reads from them, and which of them
a second declare of a queue must repeat.

RabbitMQ compares a fixed set of arguments when a queue is declared again and refuses a
declare that disagrees (406 ``PRECONDITION_FAILED``); every other argument is ignored then.
A queue declared without ``x-queue-type`` is a classic queue, so the two compare equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def message_ttl(arguments: Mapping[str, Any]) -> float | None:
    """``x-message-ttl`` in seconds, if it has a valid one."""
    ttl = arguments.get("x-message-ttl")
    return ttl / 1000 if isinstance(ttl, int | float) and ttl >= 0 else None


def dead_letter_exchange(arguments: Mapping[str, Any]) -> str | None:
    """``x-dead-letter-exchange``; ``None``: dead messages are dropped."""
    exchange = arguments.get("x-dead-letter-exchange")
    return exchange if isinstance(exchange, str) else None


def dead_letter_routing_key(arguments: Mapping[str, Any]) -> str | None:
    """``x-dead-letter-routing-key``; ``None``: a dead message keeps its routing key."""
    key = arguments.get("x-dead-letter-routing-key")
    return key if isinstance(key, str) else None


def delivery_limit(arguments: Mapping[str, Any]) -> int | None:
    """``x-delivery-limit``, which only quorum queues have."""
    limit = arguments.get("x-delivery-limit")
    quorum = arguments.get("x-queue-type") == "quorum"
    return limit if quorum and isinstance(limit, int) else None


def _same(key: str, old: object, new: object) -> bool:
    if key == "x-queue-type":
        return (old or "classic") == (new or "classic")
    return old == new


def argument_mismatch(
    queue: str, existing: Mapping[str, Any], declared: Mapping[str, Any]
) -> str | None:
    """The first compared argument a second declare of ``queue`` disagrees on, in RabbitMQ's
    words, or ``None`` when they are equivalent.
    """
    for key in sorted(EQUIVALENT_ARGUMENTS):
        old, new = existing.get(key), declared.get(key)
        if not _same(key, old, new):
            return (
                f"inequivalent arg '{key}' for queue '{queue}': "
                f"received {new!r} but current is {old!r}"
            )
    return None
