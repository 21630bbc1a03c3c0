"""The in-memory broker's routing rules: pure functions, checked against RabbitMQ's answers.

The expected tables were recorded by binding one queue per pattern on a RabbitMQ 3.10 broker
and publishing every key (or header set) once: what each queue received is what it matches.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiormq.exceptions import AMQPConnectionError

from eventrabbit.testing.field_values import erlang_term, to_value, values_equal
from eventrabbit.testing.routing import (
    Binding,
    headers_match,
    route,
    topic_matches,
    x_match_error,
)
from eventrabbit.testing.wire_arguments import as_sent, check_parsable

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


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("bogus", 'value <<"bogus">>; expected all, any, all-with-x, or any-with-x'),
        ("ñ", 'value <<"ñ">>; expected all'),
        (["any"], 'type array (value [{longstr,<<"any">>}]); expected longstr'),
        (bytearray(b"any"), 'type binary (value <<"any">>); expected longstr'),
        (bytearray(b"\x00\x01"), "type binary (value <<0,1>>)"),
        (None, "type void (value undefined)"),
        (1, "type byte (value 1)"),
        (300, "type short (value 300)"),
        (True, "type bool (value true)"),
        (0.5, "type float (value 0.5)"),
        (Decimal("-1.5"), "type decimal (value {1,4294967281})"),
        (datetime(2020, 1, 1), "type timestamp (value 1577836800)"),
        ({}, "type table (value [])"),
        ({"a": 1, "b": "x"}, 'type table (value [{<<"a">>,byte,1},{<<"b">>,longstr,<<"x">>}])'),
    ],
)
def test_invalid_x_match_is_refused_in_rabbitmqs_words(mode: object, error: str) -> None:
    # The texts are RabbitMQ 3.10.8's (it wraps a long table over lines; this does not).
    found = x_match_error({"x-match": mode})
    assert found is not None
    assert found.startswith("Invalid x-match field ")
    assert error in found


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


# ------------------------------------------------------------------ headers: value rules

ONE_SECOND = datetime(1970, 1, 1, 0, 0, 1)

#: (binding value, header value, equal on RabbitMQ 3.10, equal on 3.13): recorded on 3.10.8.
VALUE_RULES = [
    pytest.param(1, 1, True, True, id="int"),
    pytest.param(1, 1.0, True, False, id="int-float"),
    pytest.param(1, ONE_SECOND, True, True, id="int-timestamp"),
    pytest.param(1.0, ONE_SECOND, True, False, id="float-timestamp"),
    pytest.param(2**40, float(2**40), True, False, id="big-int-float"),
    pytest.param(300, 300, True, True, id="short"),
    pytest.param(1, True, False, False, id="bool-is-no-number"),
    pytest.param(True, True, True, True, id="bool"),
    pytest.param(0.1, 0.1, True, True, id="float-32-bit-both"),
    pytest.param(0.1, 0.10000000149011612, True, True, id="float-its-32-bit-self"),
    pytest.param(0.0, -0.0, True, True, id="signed-zero"),
    pytest.param(Decimal("1"), Decimal("1"), True, True, id="decimal"),
    pytest.param(Decimal("1"), Decimal("1.0"), False, False, id="decimal-scale"),
    pytest.param(Decimal("1"), 1, False, False, id="decimal-int"),
    pytest.param(Decimal("-1"), Decimal("-1"), True, True, id="decimal-negative"),
    pytest.param("1", bytearray(b"1"), True, True, id="string-bytes"),
    pytest.param("1", b"1", True, True, id="string-raw-bytes"),
    pytest.param("1", 1, False, False, id="string-int"),
    pytest.param({}, [], True, True, id="empty-table-array"),
    pytest.param({"a": 1}, [1], False, False, id="table-array"),
    pytest.param(datetime(2020, 1, 1, 0, 0, 0, 5), datetime(2020, 1, 1), True, True, id="micro"),
    pytest.param({"a": 1}, {"a": 1}, True, True, id="nested-int"),
    pytest.param({"a": 1}, {"a": 1.0}, False, False, id="nested-int-float"),
    pytest.param({"a": 1}, {"a": ONE_SECOND}, False, False, id="nested-int-timestamp"),
    pytest.param([True], [1], False, False, id="nested-bool-int"),
    pytest.param(["1"], [bytearray(b"1")], False, False, id="nested-string-bytes"),
    pytest.param([Decimal("1")], [Decimal("1.0")], False, False, id="nested-decimal"),
    pytest.param([0.0], [-0.0], True, True, id="nested-signed-zero"),
    pytest.param([[]], [{}], False, False, id="nested-empty-table-array"),
    pytest.param({"b": 1, "a": 2}, {"a": 2, "b": 1}, True, True, id="nested-key-order"),
    pytest.param({"k" * 200: 1}, {"k" * 130: 1}, True, True, id="nested-keys-cut"),
    pytest.param(None, None, True, True, id="void"),
]


@pytest.mark.parametrize(("bound", "sent", "equal", "equal_313"), VALUE_RULES)
def test_values_equal_like_rabbitmq(bound: Any, sent: Any, equal: bool, equal_313: bool) -> None:
    a, b = to_value(bound), to_value(sent)
    assert values_equal(a, b) is equal
    assert values_equal(b, a) is equal
    assert values_equal(a, b, strict=True) is equal_313


@pytest.mark.parametrize(
    ("version", "expected"), [((3, 10), True), ((3, 12), True), ((3, 13), False), ((4, 0), False)]
)
def test_headers_match_by_version(version: tuple[int, int], expected: bool) -> None:
    assert headers_match({"k": 1}, {"k": 1.0}, version) is expected


@pytest.mark.parametrize(
    ("arguments", "headers", "expected"),
    [
        ({"k" * 200: "v"}, {"k" * 150: "v"}, True),  # both cut to 128 bytes
        ({"x-match": "all-with-x"}, {}, True),  # x-match itself is never compared
        ({"x-match": "any-with-x", "x-match-extra": 1}, {"x-match-extra": 1.0}, True),
        ({"x-match": "anything", "a": 1}, {"a": 1}, True),  # unvalidated: legacy "all"
        ({"x-match": "any-bogus", "a": 1, "b": 2}, {"a": 1}, False),  # "all", not "any"
        ({"a": None}, {"a": None}, True),
        ({"a": 1}, {"a": None}, False),
    ],
)
def test_headers_match_edges(
    arguments: dict[str, Any], headers: dict[str, Any], expected: bool
) -> None:
    assert headers_match(arguments, headers) is expected


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ({"k": 1}, {"k": 1}, True),
        ({"k": 1}, {"k": 1.0}, False),  # RabbitMQ keeps both
        ({"k": 0.1}, as_sent({"k": 0.1}), True),  # unbind with what bind was given
        ({"k": True}, {"k": 1}, False),
        (None, {}, True),
        ({"k": {1, 2}}, {"k": {1, 2}}, True),  # made by hand, unencodable: Python's ==
    ],
)
def test_bindings_are_the_same_on_the_wire(first: Any, second: Any, same: bool) -> None:
    one, other = Binding("q", "", first), Binding("q", "", second)
    assert (one == other) is same
    assert len({one, other}) == (1 if same else 2)


def test_arguments_as_sent_go_through_pamqp() -> None:
    sent = as_sent({"k" * 200: 0.1, "t": datetime(2020, 1, 1, 0, 0, 0, 5), "d": Decimal(-1)})
    assert sent.keys() == {"k" * 128, "t", "d"}  # keys cut to 128 bytes
    assert sent["k" * 128] == 0.10000000149011612  # a 32-bit float
    assert sent["t"] == datetime(2020, 1, 1, tzinfo=UTC)  # whole seconds, naive taken as UTC
    assert to_value(sent["d"]) == to_value(Decimal(-1))


@pytest.mark.parametrize("value", [{1, 2}, b"raw", 2**64, Decimal("NaN")])
def test_arguments_pamqp_cannot_encode_raise_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        as_sent({"k": value})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [1.0, float("-inf")]])
def test_a_float_rabbitmq_cannot_parse_resets_the_connection(value: object) -> None:
    with pytest.raises(AMQPConnectionError, match="Connection reset by peer"):
        check_parsable({"k": value})
    check_parsable({"k": 1.0})


def test_erlang_terms() -> None:
    assert erlang_term(to_value([1, "a", None, True])) == (
        '[{byte,1},{longstr,<<"a">>},{void,undefined},{bool,true}]'
    )
