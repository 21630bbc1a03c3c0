"""The in-memory broker's routing rules: pure functions, checked against RabbitMQ's answers.

The expected tables were recorded by binding one queue per pattern on a RabbitMQ 3.10 broker
and publishing every key (or header set) once: what each queue received is what it matches.
"""

from __future__ import annotations

from typing import Any

import pytest

from eventrabbit.testing.routing import (
    Binding,
    headers_match,
    route,
    topic_matches,
    x_match_error,
)

# --------------------------------------------------------------------------------- topic

TOPIC_KEYS = [
    "", "a", "b", "a.b", "b.a", "a.b.c", "a.x.b", "a.x.y.b",
    "a..b", "a.", ".a", ".", "..", "a.a", "x.a.y", "a.b.b",
]  # fmt: skip
_EVERY_KEY = set(TOPIC_KEYS)

#: pattern -> the keys RabbitMQ routed to it.
RABBITMQ_TOPIC: dict[str, set[str]] = {
    "#": _EVERY_KEY,
    "#.#": _EVERY_KEY,
    "*": {"a", "b"},
    "a.#": {"a", "a.b", "a.b.c", "a.x.b", "a.x.y.b", "a..b", "a.", "a.a", "a.b.b"},
    "#.a": {"a", "b.a", ".a", "a.a"},
    "a.*": {"a.b", "a.", "a.a"},
    "*.b": {"a.b"},
    "a.#.b": {"a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b"},
    "a.*.b": {"a.x.b", "a..b", "a.b.b"},
    "*.*": {"a.b", "b.a", "a.", ".a", ".", "a.a"},
    "a": {"a"},
    "": {""},
    "a..b": {"a..b"},
    "a.": {"a."},
    ".a": {".a"},
    "#.a.#": _EVERY_KEY - {"", "b", ".", ".."},
    "*.#": _EVERY_KEY - {""},
    "#.*": _EVERY_KEY - {""},
    "a.*.#": {"a.b", "a.b.c", "a.x.b", "a.x.y.b", "a..b", "a.", "a.a", "a.b.b"},
    "b": {"b"},
    "a.b.c": {"a.b.c"},
    "*.a.*": {"x.a.y"},
}


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        pytest.param(pattern, key, key in matched, id=f"{pattern or '<empty>'}|{key or '<empty>'}")
        for pattern, matched in RABBITMQ_TOPIC.items()
        for key in TOPIC_KEYS
    ],
)
def test_topic_matches_like_rabbitmq(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        pytest.param("#", "", True, id="hash-alone-matches-the-empty-key"),
        pytest.param("a.#", "a", True, id="hash-matches-zero-words"),
        pytest.param("*.b", "b", False, id="star-needs-exactly-one-word"),
        pytest.param("*", "", False, id="the-empty-key-has-no-words"),
        pytest.param("*.*", ".", True, id="a-dot-is-two-empty-words"),
        pytest.param("a.*.b", "a..b", True, id="star-matches-an-empty-word"),
        pytest.param("#.#.#", "a.b", True, id="many-hashes"),
        pytest.param("a.#.#.c", "a.c", True, id="adjacent-hashes-both-empty"),
        pytest.param("orders.*.created", "orders.eu.created", True, id="realistic"),
        pytest.param("orders.*.created", "orders.eu.west.created", False, id="realistic-two-words"),
        pytest.param("orders.#", "orders", True, id="realistic-prefix"),
        pytest.param("A", "a", False, id="case-sensitive"),
    ],
)
def test_topic_edge_cases(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


# ------------------------------------------------------------------------------- headers

BINDINGS: dict[str, dict[str, Any]] = {
    "all_ab": {"x-match": "all", "a": 1, "b": "x"},
    "any_ab": {"x-match": "any", "a": 1, "b": "x"},
    "default_ab": {"a": 1, "b": "x"},
    "all_empty": {"x-match": "all"},
    "any_empty": {"x-match": "any"},
    "none": {},
    "all_xfoo": {"x-match": "all", "x-foo": "1"},
    "any_xfoo": {"x-match": "any", "x-foo": "1"},
    "allx_xfoo": {"x-match": "all-with-x", "x-foo": "1"},
    "anyx_xfoo": {"x-match": "any-with-x", "x-foo": "1", "a": 2},
    "allx_empty": {"x-match": "all-with-x"},
    "anyx_empty": {"x-match": "any-with-x"},
    "all_void": {"x-match": "all", "v": None},
    "true": {"k": True},
    "one": {"k": 1},
    "one_and_a_half": {"k": 1.5},
    "big": {"k": 2**40},
    "string": {"k": "v"},
    "list": {"k": [1, "a"]},
    "table": {"k": {"a": 1}},
}

MESSAGES: dict[str, dict[str, Any] | None] = {
    "m_a1": {"a": 1},
    "m_a1bx": {"a": 1, "b": "x"},
    "m_a1bx_c": {"a": 1, "b": "x", "c": 3},
    "m_bx": {"b": "x"},
    "m_none": None,
    "m_empty": {},
    "m_xfoo": {"x-foo": "1"},
    "m_xfoo2": {"x-foo": "2"},
    "m_a2": {"a": 2},
    "m_a1s": {"a": "1"},
    "m_v": {"v": None},
    "m_vx": {"v": "x"},
    "m_true": {"k": True},
    "m_one": {"k": 1},
    "m_one_and_a_half": {"k": 1.5},
    "m_big": {"k": 2**40},
    "m_string": {"k": "v"},
    "m_void": {"k": None},
    "m_list": {"k": [1, "a"]},
    "m_table": {"k": {"a": 1}},
}
_EVERY_MESSAGE = set(MESSAGES)

#: binding -> the messages RabbitMQ routed to it.
RABBITMQ_HEADERS: dict[str, set[str]] = {
    "all_ab": {"m_a1bx", "m_a1bx_c"},
    "any_ab": {"m_a1", "m_a1bx", "m_a1bx_c", "m_bx"},
    "default_ab": {"m_a1bx", "m_a1bx_c"},
    "all_empty": _EVERY_MESSAGE,
    "any_empty": set(),
    "none": _EVERY_MESSAGE,
    "all_xfoo": _EVERY_MESSAGE,  # plain "all" ignores x- arguments: nothing left to compare
    "any_xfoo": set(),
    "allx_xfoo": {"m_xfoo"},
    "anyx_xfoo": {"m_xfoo", "m_a2"},
    "allx_empty": _EVERY_MESSAGE,
    "anyx_empty": set(),
    "all_void": {"m_v", "m_vx"},  # an argument without a value: presence is enough
    "true": {"m_true"},  # booleans are not numbers
    "one": {"m_one"},
    "one_and_a_half": {"m_one_and_a_half"},
    "big": {"m_big"},
    "string": {"m_string"},
    "list": {"m_list"},
    "table": {"m_table"},
}


@pytest.mark.parametrize(
    ("binding", "message", "expected"),
    [
        pytest.param(binding, message, message in matched, id=f"{binding}|{message}")
        for binding, matched in RABBITMQ_HEADERS.items()
        for message in MESSAGES
    ],
)
def test_headers_match_like_rabbitmq(binding: str, message: str, expected: bool) -> None:
    assert headers_match(BINDINGS[binding], MESSAGES[message]) is expected


@pytest.mark.parametrize("mode", ["all", "any", "all-with-x", "any-with-x"])
def test_valid_x_match_modes(mode: str) -> None:
    assert x_match_error({"x-match": mode}) is None


def test_missing_x_match_is_valid() -> None:
    assert x_match_error(None) is None
    assert x_match_error({"a": 1}) is None


def test_invalid_x_match_is_refused_in_rabbitmqs_words() -> None:
    error = x_match_error({"x-match": "bogus"})
    assert error is not None
    assert "Invalid x-match field value" in error
    assert "bogus" in error


# --------------------------------------------------------------------------------- route

ORDER_BINDINGS = [
    Binding("eu", "orders.eu.*"),
    Binding("all", "orders.#"),
    Binding("created", "*.*.created"),
    Binding("all", "#"),  # a second binding of one queue: it still gets one copy
]


@pytest.mark.parametrize(
    ("exchange_type", "bindings", "key", "headers", "expected"),
    [
        pytest.param(
            "direct",
            [Binding("q1", "k"), Binding("q2", "other"), Binding("q3", "k")],
            "k",
            None,
            ["q1", "q3"],
            id="direct-equal-keys",
        ),
        pytest.param("direct", [Binding("q1", "k")], "K", None, [], id="direct-case-sensitive"),
        pytest.param(
            "fanout",
            [Binding("q1", "ignored"), Binding("q2", "")],
            "anything",
            None,
            ["q1", "q2"],
            id="fanout-every-queue",
        ),
        pytest.param(
            "topic",
            ORDER_BINDINGS,
            "orders.eu.created",
            None,
            ["eu", "all", "created"],
            id="topic-each-queue-once-in-binding-order",
        ),
        pytest.param(
            "topic", ORDER_BINDINGS, "payments", None, ["all"], id="topic-only-the-catch-all"
        ),
        pytest.param(
            "headers",
            [
                Binding("pdf", "", {"format": "pdf"}),
                Binding("any", "", {"x-match": "any", "format": "zip", "size": 1}),
                Binding("everything", "", None),
            ],
            "ignored",
            {"format": "pdf", "size": 1},
            ["pdf", "any", "everything"],
            id="headers",
        ),
        pytest.param("topic", [], "a", None, [], id="no-bindings"),
    ],
)
def test_route(
    exchange_type: str,
    bindings: list[Binding],
    key: str,
    headers: dict[str, Any] | None,
    expected: list[str],
) -> None:
    assert route(exchange_type, bindings, key, headers) == expected


def test_route_refuses_an_unknown_exchange_type() -> None:
    with pytest.raises(ValueError, match="x-delayed-message"):
        route("x-delayed-message", [Binding("q")], "k")
