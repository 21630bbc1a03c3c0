"""How exchanges route, exactly as RabbitMQ does: pure functions, no state, no I/O.

- **direct**: the binding key equals the routing key.
- **fanout**: every bound queue.
- **topic**: binding keys are patterns of words split on ``.``; ``*`` is exactly one word,
  ``#`` zero or more. Words may be empty (``"a..b"`` has three), and the empty key has none:
  ``"*"`` does not match ``""`` but ``"#"`` does, and ``"a.#"`` matches ``"a"``.
- **headers**: the binding's arguments against the message's headers. ``x-match`` is ``all``
  (the default), ``any``, ``all-with-x`` or ``any-with-x``; plain ``all``/``any`` ignore
  binding arguments whose names start with ``x-``. A binding argument without a value
  (``None``) matches on presence alone; other values must be equal and of the same kind
  (``1`` does not match ``"1"``). ``all`` with nothing to compare matches every message,
  ``any`` with nothing matches none.

The default exchange (``""``) is not routed here: it delivers to the queue named by the
routing key, which only the broker knows.
"""

from __future__ import annotations

import datetime
import decimal
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: The binding argument that chooses how headers are matched.
X_MATCH = "x-match"
#: The values ``x-match`` may take.
X_MATCH_MODES = frozenset({"all", "any", "all-with-x", "any-with-x"})
#: The exchange types this broker routes.
EXCHANGE_TYPES = frozenset({"direct", "fanout", "topic", "headers"})


@dataclass(slots=True, frozen=True)
class Binding:
    """A queue bound to an exchange with a routing key and arguments."""

    queue: str
    routing_key: str = ""
    arguments: Mapping[str, Any] | None = None


def _words(key: str) -> tuple[str, ...]:
    # RabbitMQ splits "" into no words at all, but "." into two empty ones.
    return tuple(key.split(".")) if key else ()


@functools.lru_cache(maxsize=4096)
def _match_words(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match_words(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match_words(rest, words[1:])


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a topic binding key ``pattern`` matches ``routing_key``."""
    return _match_words(_words(pattern), _words(routing_key))


def _kind(value: object) -> str:
    """The AMQP type class of a table value; values of different classes never match."""
    if value is None:
        return "void"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float | decimal.Decimal):
        return type(value).__name__
    if isinstance(value, datetime.datetime):
        return "timestamp"
    return type(value).__name__


def x_match_error(arguments: Mapping[str, Any] | None) -> str | None:
    """Why a headers binding's ``x-match`` is invalid, or ``None`` if it is valid."""
    mode = (arguments or {}).get(X_MATCH, "all")
    if mode in X_MATCH_MODES:
        return None
    return f"Invalid x-match field value {mode!r}; expected all, any, all-with-x, or any-with-x"


def headers_match(arguments: Mapping[str, Any] | None, headers: Mapping[str, Any] | None) -> bool:
    """Whether a headers binding with ``arguments`` matches a message with ``headers``."""
    arguments = arguments or {}
    headers = headers or {}
    mode = str(arguments.get(X_MATCH, "all"))
    with_x = mode.endswith("-with-x")
    wanted = [
        (key, value)
        for key, value in arguments.items()
        if key != X_MATCH and (with_x or not key.startswith("x-"))
    ]
    hits = (_header_hit(headers, key, value) for key, value in wanted)
    return any(hits) if mode.startswith("any") else all(hits)


def _header_hit(headers: Mapping[str, Any], key: str, wanted: object) -> bool:
    if key not in headers:
        return False
    if wanted is None:
        return True
    value = headers[key]
    return _kind(value) == _kind(wanted) and bool(value == wanted)


def route(
    exchange_type: str,
    bindings: Iterable[Binding],
    routing_key: str,
    headers: Mapping[str, Any] | None = None,
) -> list[str]:
    """The queues a message reaches through an exchange, each once, in binding order.

    :raises ValueError: an exchange type this broker does not know.
    """
    if exchange_type not in EXCHANGE_TYPES:
        raise ValueError(f"unknown exchange type {exchange_type!r}")
    queues: dict[str, None] = {}
    for binding in bindings:
        if _binding_matches(exchange_type, binding, routing_key, headers):
            queues.setdefault(binding.queue)
    return list(queues)


def _binding_matches(
    exchange_type: str, binding: Binding, routing_key: str, headers: Mapping[str, Any] | None
) -> bool:
    if exchange_type == "fanout":
        return True
    if exchange_type == "direct":
        return binding.routing_key == routing_key
    if exchange_type == "topic":
        return topic_matches(binding.routing_key, routing_key)
    return headers_match(binding.arguments, headers)
