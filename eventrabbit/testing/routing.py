"""How exchanges route, exactly as RabbitMQ 3.10 does: pure functions, no state, no I/O.

- **direct**: the binding key equals the routing key.
- **fanout**: every bound queue.
- **topic**: binding keys are patterns of words split on ``.``; ``*`` is exactly one word,
  ``#`` zero or more. Words may be empty (``"a..b"`` has three), and the empty key has none:
  ``"*"`` does not match ``""`` but ``"#"`` does, and ``"a.#"`` matches ``"a"``.
- **headers**: the binding's arguments against the message's headers, both as they went over
  the wire and compared as RabbitMQ compares them (:mod:`.field_values`: ``1`` matches ``1.0``
  at the top level, not inside a table). ``x-match`` is ``all`` (the default), ``any``,
  ``all-with-x`` or ``any-with-x`` — a long string; any other value or type is refused at
  bind time. ``x-match`` itself is never compared, and plain ``all``/``any`` ignore the other
  arguments whose names start with ``x-``. An argument without a value (``None``) matches on
  presence alone. ``all`` with nothing to compare matches every message, ``any`` none.

A binding is identified by its queue, key and arguments as sent: ``{"k": 1}`` and
``{"k": 1.0}`` are two bindings, ``{"k": 0.1}`` and its 32-bit self one.

The default exchange (``""``) is not routed here: it delivers to the queue named by the
routing key, which only the broker knows.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .field_values import ERLANG_TYPES, erlang_term, table_entries, to_value, values_equal
from .version import RABBITMQ_VERSION

#: The binding argument that chooses how headers are matched.
X_MATCH = "x-match"
#: The values ``x-match`` may take.
X_MATCH_MODES = frozenset({"all", "any", "all-with-x", "any-with-x"})
#: From this version on, headers compare with Erlang's ``=:=``: an integer is never a float.
STRICT_HEADERS_FROM = (3, 13)
#: The exchange types this broker routes.
EXCHANGE_TYPES = frozenset({"direct", "fanout", "topic", "headers"})


@dataclass(slots=True, frozen=True, eq=False)
class Binding:
    """A queue bound to an exchange with a routing key and arguments; bindings are equal when
    their arguments are the same on the wire (a type and a value each)."""

    queue: str
    routing_key: str = ""
    arguments: Mapping[str, Any] | None = None

    def _identity(self) -> tuple[str, str, object]:
        try:
            arguments: object = to_value(dict(self.arguments or {}))
        except TypeError:  # made by hand, not through queue.bind: compare as Python does
            arguments = dict(self.arguments or {})
        return self.queue, self.routing_key, arguments

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Binding):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity()[:2])


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


def x_match_error(arguments: Mapping[str, Any] | None) -> str | None:
    """Why a headers binding's ``x-match`` is invalid (RabbitMQ's words), or ``None``.

    :raises TypeError: a value that cannot go over the wire.
    """
    value = table_entries(arguments).get(X_MATCH.encode())
    if value is None:
        return None
    if value.kind != "S":
        return (
            f"Invalid x-match field type {ERLANG_TYPES[value.kind]} "
            f"(value {erlang_term(value)}); expected longstr"
        )
    if value.raw[4:].decode("utf-8", "replace") in X_MATCH_MODES:
        return None
    return (
        f"Invalid x-match field value {erlang_term(value)}; "
        "expected all, any, all-with-x, or any-with-x"
    )


def headers_match(
    arguments: Mapping[str, Any] | None,
    headers: Mapping[str, Any] | None,
    version: tuple[int, int] = RABBITMQ_VERSION,
) -> bool:
    """Whether a headers binding with ``arguments`` matches a message with ``headers``, by
    the rules of RabbitMQ ``version`` (3.13 on: :data:`STRICT_HEADERS_FROM`).

    :raises TypeError: a value that cannot go over the wire.
    """
    pattern = table_entries(arguments)
    data = table_entries(headers)
    mode = pattern.get(X_MATCH.encode())
    kind = mode.raw[4:].decode("utf-8", "replace") if mode and mode.kind == "S" else "all"
    if kind not in X_MATCH_MODES:
        kind = "all"  # RabbitMQ's legacy reading of an x-match it did not validate
    with_x = kind.endswith("-with-x")
    strict = version >= STRICT_HEADERS_FROM
    hits = (
        key in data and (wanted.kind == "V" or values_equal(wanted, data[key], strict=strict))
        for key, wanted in pattern.items()
        if key != X_MATCH.encode() and (with_x or not key.startswith(b"x-"))
    )
    return any(hits) if kind.startswith("any") else all(hits)


def route(
    exchange_type: str,
    bindings: Iterable[Binding],
    routing_key: str,
    headers: Mapping[str, Any] | None = None,
    version: tuple[int, int] = RABBITMQ_VERSION,
) -> list[str]:
    """The queues a message reaches through an exchange, each once, in binding order; a
    headers exchange compares as RabbitMQ ``version`` does (:func:`headers_match`).

    :raises ValueError: an exchange type this broker does not know.
    """
    if exchange_type not in EXCHANGE_TYPES:
        raise ValueError(f"unknown exchange type {exchange_type!r}")
    queues: dict[str, None] = {}
    for binding in bindings:
        if _binding_matches(exchange_type, binding, routing_key, headers, version):
            queues.setdefault(binding.queue)
    return list(queues)


def _binding_matches(
    exchange_type: str,
    binding: Binding,
    routing_key: str,
    headers: Mapping[str, Any] | None,
    version: tuple[int, int],
) -> bool:
    if exchange_type == "fanout":
        return True
    if exchange_type == "direct":
        return binding.routing_key == routing_key
    if exchange_type == "topic":
        return topic_matches(binding.routing_key, routing_key)
    return headers_match(binding.arguments, headers, version)
