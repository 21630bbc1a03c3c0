"""Queue arguments (``x-*``): what the in-memory broker reads from them, which values a new
queue refuses, and which of them a second declare of a queue must repeat.

RabbitMQ refuses a new queue whose ``x-message-ttl``, ``x-max-length``,
``x-max-length-bytes`` is not a non-negative integer (a TTL at most ten years), whose
``x-overflow`` is not one it knows, or that has an ``x-dead-letter-routing-key`` without an
``x-dead-letter-exchange`` (406 ``PRECONDITION_FAILED``, :func:`invalid_argument`). It
compares a fixed set of arguments when a queue is declared again and refuses a declare that
disagrees (406); every other argument is ignored then. A queue declared without
``x-queue-type`` is a classic queue, so the two compare equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

from .limits import OVERFLOWS
from .messages import MAX_EXPIRATION

#: Queue arguments that must be non-negative integers.
COUNTS = ("x-message-ttl", "x-max-length", "x-max-length-bytes")
#: RabbitMQ's names of the AMQP types a Python value is sent as, for its error texts.
_TYPE_NAMES = {bool: "bool", int: "long", float: "float", str: "longstr", bytes: "longstr"}

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
    return ttl / 1000 if _is_integer(ttl) and ttl >= 0 else None


def invalid_argument(queue: str, arguments: Mapping[str, Any]) -> str | None:
    """Why RabbitMQ refuses a new queue ``queue`` with ``arguments``, in its words, or
    ``None`` when it takes them (only the arguments of TTL, limits and dead-lettering)."""
    for key in COUNTS:
        value = arguments.get(key)
        if value is None:
            continue
        if not _is_integer(value):
            reason = f'"expected integer, got {_type_name(value)}"'
        elif value < 0:
            reason = f"{{value_negative,{value}}}"
        elif key == "x-message-ttl" and value > MAX_EXPIRATION:
            reason = f"{{value_too_large,{value}}}"
        else:
            continue
        return _invalid(key, queue, reason)
    overflow = arguments.get("x-overflow")
    if overflow is not None and not isinstance(overflow, str):
        return _invalid("x-overflow", queue, f"{{unacceptable_type,{_type_name(overflow)}}}")
    if overflow is not None and overflow not in OVERFLOWS:
        return _invalid("x-overflow", queue, "invalid_overflow")
    if "x-dead-letter-routing-key" in arguments and "x-dead-letter-exchange" not in arguments:
        return _invalid("x-dead-letter-routing-key", queue, "routing_key_but_no_dlx_defined")
    return None


def _invalid(key: str, queue: str, reason: str) -> str:
    return f"invalid arg '{key}' for queue '{queue}' in vhost '/': {reason}"


def _is_integer(value: object) -> TypeGuard[int]:
    # AMQP has a bool type of its own: True is no integer to RabbitMQ.
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


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
    queue: str,
    existing: Mapping[str, Any],
    declared: Mapping[str, Any],
    flags: Mapping[str, tuple[bool, bool]] | None = None,
) -> str | None:
    """The first flag (``durable``: (existing, declared)) or compared argument a second
    declare of ``queue`` disagrees on, in RabbitMQ's words, or ``None`` when they are
    equivalent.
    """
    for flag, (was, now) in (flags or {}).items():
        if was != now:
            return f"inequivalent arg '{flag}' for queue '{queue}'"
    for key in sorted(EQUIVALENT_ARGUMENTS):
        old, new = existing.get(key), declared.get(key)
        if not _same(key, old, new):
            return (
                f"inequivalent arg '{key}' for queue '{queue}': "
                f"received {new!r} but current is {old!r}"
            )
    return None
