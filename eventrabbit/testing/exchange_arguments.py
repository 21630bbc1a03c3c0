"""What RabbitMQ 3.10 checks when an exchange is declared: the ``alternate-exchange``
argument and what a second declare must repeat. Pure functions, in RabbitMQ's words.

A new exchange's ``alternate-exchange`` must be a ``longstr`` (406 otherwise); the name need
not exist, then or ever. A second declare must agree on the type, durability, ``internal``
and ``alternate-exchange`` (406 for the first that differs); other arguments are ignored,
then as at the first declare. ``auto_delete`` is not compared: the in-memory broker keeps no
auto-delete exchanges.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .field_values import type_name

#: The exchange argument naming where unroutable messages go.
ALTERNATE = "alternate-exchange"
#: Integer field types, which RabbitMQ compares by value alone.
_INTEGERS = frozenset(
    {"byte", "unsignedbyte", "short", "unsignedshort", "signedint", "unsignedint", "long"}
)


def alternate_exchange(arguments: Mapping[str, Any] | None) -> str | None:
    """The alternate exchange named by ``arguments``, if any."""
    name = (arguments or {}).get(ALTERNATE)
    return name if isinstance(name, str) else None


def invalid_alternate(exchange: str, arguments: Mapping[str, Any] | None) -> str | None:
    """Why a new exchange's ``alternate-exchange`` is refused, or ``None``."""
    if ALTERNATE not in (arguments or {}):
        return None
    kind = type_name((arguments or {})[ALTERNATE])
    if kind == "longstr":
        return None
    return f"invalid type '{kind}' for arg '{ALTERNATE}' in exchange '{exchange}' in vhost '/'"


def _bare(value: object) -> str:
    # Erlang's ~s of a binary, ~p of anything else (booleans are atoms there).
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytearray | bytes):
        return bytes(value).decode(errors="replace")
    return str(value)


def _typed(arguments: Mapping[str, Any], key: str) -> str:
    if key not in arguments:
        return "none"
    value = arguments[key]
    return f"the value '{_bare(value)}' of type '{type_name(value)}'"


def _class(value: object) -> str:
    kind = type_name(value)
    return "int" if kind in _INTEGERS else kind


def mismatch(exchange: str, existing: Mapping[str, Any], declared: Mapping[str, Any]) -> str | None:
    """The first property a second declare of ``exchange`` disagrees on, or ``None``.

    :param existing: the exchange's ``type``, ``durable``, ``internal`` and ``arguments``.
    :param declared: the same, as the second declare gives them.
    """
    where = f"for exchange '{exchange}' in vhost '/'"
    for key in ("type", "durable", "internal"):
        if existing[key] != declared[key]:
            old, new = _bare(existing[key]), _bare(declared[key])
            return f"inequivalent arg '{key}' {where}: received '{new}' but current is '{old}'"
    old_args, new_args = existing["arguments"], declared["arguments"]
    if ALTERNATE not in old_args and ALTERNATE not in new_args:
        return None
    if ALTERNATE in old_args and ALTERNATE in new_args:
        old, new = old_args[ALTERNATE], new_args[ALTERNATE]
        if _class(old) == _class(new) and old == new:
            return None
        return (
            f"inequivalent arg '{ALTERNATE}' {where}: "
            f"received '{_bare(new)}' but current is '{_bare(old)}'"
        )
    return (
        f"inequivalent arg '{ALTERNATE}' {where}: "
        f"received {_typed(new_args, ALTERNATE)} but current is {_typed(old_args, ALTERNATE)}"
    )
