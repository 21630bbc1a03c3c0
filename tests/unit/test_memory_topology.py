"""The pure parts of the in-memory broker's topology: ``CC``/``BCC`` routing keys, the
``alternate-exchange`` argument, routing across exchanges, and exchange-to-exchange bindings.

The expected texts are RabbitMQ 3.10's, as the real broker answered them.
"""

from __future__ import annotations

import datetime
import decimal
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
)
from pamqp import commands as spec

from eventrabbit.testing.exchange_arguments import (
    alternate_exchange,
    invalid_alternate,
    mismatch,
)
from eventrabbit.testing.exchanges import Exchanges
from eventrabbit.testing.field_values import type_name
from eventrabbit.testing.forwarding import reach
from eventrabbit.testing.messages import decode_properties, encode_properties
from eventrabbit.testing.routing import Binding
from eventrabbit.testing.sender_selected import (
    copied_keys,
    hide_blind,
    invalid_header,
    without_blind,
)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("s", "longstr"),
        (1, "byte"),
        (300, "short"),
        (70000, "signedint"),
        (2**40, "long"),
        (1.5, "float"),
        (decimal.Decimal("1.5"), "decimal"),
        (True, "bool"),
        (datetime.datetime(2020, 1, 1), "timestamp"),
        (None, "void"),
        ({"a": 1}, "table"),
        (["a"], "array"),
        (bytearray(b"a"), "binary"),
    ],
)
def test_type_names(value: Any, name: str) -> None:
    assert type_name(value) == name


# ------------------------------------------------------------------------------ CC / BCC


@pytest.mark.parametrize(
    ("headers", "keys"),
    [
        (None, []),
        ({}, []),
        ({"x": "CC"}, []),
        ({"CC": []}, []),
        ({"CC": ["a", "b"]}, ["a", "b"]),
        ({"BCC": ["c"], "CC": ["a"]}, ["a", "c"]),  # CC first, whatever the order
        ({"CC": ["a", 7, bytearray(b"b"), None, ["c"]]}, ["a"]),  # only strings count
        ({"cc": ["a"], "Bcc": ["b"]}, []),  # the names are case-sensitive
    ],
)
def test_copied_keys(headers: dict[str, Any] | None, keys: list[str]) -> None:
    assert invalid_header(headers) is None
    assert copied_keys(headers) == keys


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"CC": "a"}, '{unacceptable_type_in_header,"CC",longstr}'),
        ({"BCC": "a"}, '{unacceptable_type_in_header,"BCC",longstr}'),
        ({"CC": 5}, '{unacceptable_type_in_header,"CC",byte}'),
        ({"CC": {"a": "b"}}, '{unacceptable_type_in_header,"CC",table}'),
        ({"CC": None}, '{unacceptable_type_in_header,"CC",void}'),
        ({"BCC": True, "CC": 1.5}, '{unacceptable_type_in_header,"CC",float}'),
        ({"CC": ["a"], "BCC": bytearray(b"a")}, '{unacceptable_type_in_header,"BCC",binary}'),
    ],
)
def test_a_cc_that_is_not_an_array_is_refused(headers: dict[str, Any], why: str) -> None:
    assert invalid_header(headers) == f"invalid message: {why}"
    with pytest.raises(ChannelPreconditionFailed, match="PRECONDITION_FAILED - invalid message"):
        copied_keys(headers)


@pytest.mark.parametrize(
    ("headers", "shown"),
    [
        (None, None),
        ({"CC": ["a"]}, None),
        ({"BCC": ["a"]}, {}),
        ({"CC": ["a"], "BCC": ["b"], "h": 1}, {"CC": ["a"], "h": 1}),
    ],
)
def test_bcc_is_not_shown(headers: dict[str, Any] | None, shown: dict[str, Any] | None) -> None:
    assert without_blind(headers) == shown


def test_hide_blind_reencodes_only_when_there_is_a_bcc() -> None:
    plain = encode_properties(spec.Basic.Properties(headers={"CC": ["a"]}), 0)
    assert hide_blind(plain, 0) is plain
    blind = encode_properties(spec.Basic.Properties(headers={"BCC": ["a"], "h": "v"}), 0)
    assert decode_properties(hide_blind(blind, 0)).headers == {"h": "v"}


# ------------------------------------------------------------------- alternate-exchange


@pytest.mark.parametrize(
    ("arguments", "name", "why"),
    [
        (None, None, None),
        ({"x-other": 1}, None, None),
        ({"alternate-exchange": "ae"}, "ae", None),
        ({"alternate-exchange": ""}, "", None),
        ({"alternate-exchange": 5}, None, "invalid type 'byte'"),
        ({"alternate-exchange": bytearray(b"ae")}, None, "invalid type 'binary'"),
    ],
)
def test_the_alternate_exchange_argument(
    arguments: dict[str, Any] | None, name: str | None, why: str | None
) -> None:
    assert alternate_exchange(arguments) == name
    found = invalid_alternate("x", arguments)
    if why is None:
        assert found is None
    else:
        assert found == f"{why} for arg 'alternate-exchange' in exchange 'x' in vhost '/'"


def _props(
    kind: str = "direct", durable: bool = False, internal: bool = False, **args: Any
) -> dict[str, Any]:
    arguments = {k.replace("_", "-"): v for k, v in args.items()}
    return {"type": kind, "durable": durable, "internal": internal, "arguments": arguments}


@pytest.mark.parametrize(
    ("existing", "declared", "why"),
    [
        (_props(), _props(), None),
        (_props(alternate_exchange="ae"), _props(alternate_exchange="ae", x_other=1), None),
        (_props(x_other=1), _props(), None),
        (_props(alternate_exchange=5), _props(alternate_exchange=5), None),
        (_props(), _props("fanout"), "'type' ...: received 'fanout' but current is 'direct'"),
        (_props(), _props(durable=True), "'durable' ...: received 'true' but current is 'false'"),
        (
            _props(internal=True),
            _props(),
            "'internal' ...: received 'false' but current is 'true'",
        ),
        (
            _props(alternate_exchange="foo"),
            _props(alternate_exchange="bar"),
            "'alternate-exchange' ...: received 'bar' but current is 'foo'",
        ),
        (
            _props(alternate_exchange="foo"),
            _props(alternate_exchange=5),
            "'alternate-exchange' ...: received '5' but current is 'foo'",
        ),
        (
            _props(alternate_exchange="foo"),
            _props(),
            "'alternate-exchange' ...: received none but current is the value 'foo' of type "
            "'longstr'",
        ),
        (
            _props(),
            _props(alternate_exchange=5),
            "'alternate-exchange' ...: received the value '5' of type 'byte' but current is none",
        ),
        (
            _props("fanout", alternate_exchange="foo"),
            _props("direct", durable=True, alternate_exchange="bar"),
            "'type' ...: received 'direct' but current is 'fanout'",  # the first that differs
        ),
    ],
)
def test_a_second_declare_must_agree(
    existing: dict[str, Any], declared: dict[str, Any], why: str | None
) -> None:
    found = mismatch("x", existing, declared)
    expected = why and "inequivalent arg " + why.replace("...", "for exchange 'x' in vhost '/'")
    assert found == expected


# --------------------------------------------------------------- routing across exchanges


@dataclass
class Node:
    type: str = "direct"
    bindings: list[Binding] = field(default_factory=list)
    exchange_bindings: list[Binding] = field(default_factory=list)
    alternate: str | None = None


def to(*names: str, key: str = "k") -> list[Binding]:
    return [Binding(name, key) for name in names]


GRAPHS: dict[str, dict[str, Node]] = {
    "one": {"x": Node(bindings=to("q"))},
    "chain": {
        "x": Node(exchange_bindings=to("y")),
        "y": Node("fanout", bindings=to("q1"), exchange_bindings=to("z")),
        "z": Node(bindings=to("q2", "q1")),
    },
    "cycle": {
        "x": Node("fanout", bindings=to("q"), exchange_bindings=to("y")),
        "y": Node("fanout", bindings=to("q"), exchange_bindings=to("x", "y")),
    },
    "alternates": {
        "x": Node(bindings=to("qx", key="other"), alternate="a1"),
        "a1": Node(alternate="a2"),
        "a2": Node("fanout", bindings=to("qa")),
    },
    "alternate cycle": {
        "x": Node(alternate="a"),
        "a": Node(bindings=to("qa", key="other"), alternate="x"),
    },
    "missing alternate": {"x": Node(alternate="gone")},
    "bound but dropped": {
        "x": Node(exchange_bindings=to("y"), alternate="a"),
        "y": Node(),  # matches nothing, has no alternate: the message is dropped
        "a": Node("fanout", bindings=to("qa")),
    },
    "bound to an exchange with an alternate": {
        "x": Node(exchange_bindings=to("y"), alternate="a"),
        "y": Node(alternate="a"),
        "a": Node("fanout", bindings=to("qa")),
    },
    "self binding": {"x": Node(exchange_bindings=to("x"), alternate="a"), "a": Node("fanout")},
    "topic keys": {
        "x": Node("topic", bindings=[Binding("q1", "a.*"), Binding("q2", "b.#")]),
    },
}


@pytest.mark.parametrize(
    ("graph", "keys", "queues"),
    [
        ("one", ["k"], ["q"]),
        ("one", ["other"], []),
        ("one", ["other", "k", "k"], ["q"]),
        ("chain", ["k"], ["q1", "q2"]),
        ("chain", ["other"], []),
        ("cycle", ["k"], ["q"]),
        ("alternates", ["k"], ["qa"]),
        ("alternates", ["other"], ["qx"]),
        ("alternate cycle", ["k"], []),
        ("alternate cycle", ["other"], ["qa"]),
        ("missing alternate", ["k"], []),
        ("bound but dropped", ["k"], []),
        ("bound but dropped", ["other"], ["qa"]),
        ("bound to an exchange with an alternate", ["k"], ["qa"]),
        ("self binding", ["k"], []),
        ("topic keys", ["a.1", "b", "c"], ["q1", "q2"]),
        ("topic keys", ["c"], []),
    ],
)
def test_reach(graph: str, keys: list[str], queues: list[str]) -> None:
    assert sorted(reach("x", GRAPHS[graph], keys)) == queues


# ----------------------------------------------------------------- exchange bindings


def exchanges(*names: str) -> Exchanges:
    found = Exchanges()
    for name in names:
        found.declare(name, "direct", durable=False, passive=False)
    return found


@pytest.mark.parametrize(
    ("destination", "source", "error", "text"),
    [
        ("nope", "x", ChannelNotFoundEntity, "no exchange 'nope'"),
        ("x", "nope", ChannelNotFoundEntity, "no exchange 'nope'"),
        ("nope1", "nope2", ChannelNotFoundEntity, "no exchange 'nope2'"),  # the source first
        ("", "x", ChannelAccessRefused, "the default exchange"),
        ("x", "", ChannelAccessRefused, "the default exchange"),
    ],
)
def test_exchange_bind_refusals(destination: str, source: str, error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        exchanges("x").bind(destination, source, "k", None)


def test_exchange_bind_checks_the_x_match_of_a_headers_source_only() -> None:
    found = exchanges("x")
    found.declare("h", "headers", durable=False, passive=False)
    found.bind("h", "x", "", {"x-match": "bad"})
    with pytest.raises(ChannelPreconditionFailed, match="x-match"):
        found.bind("x", "h", "", {"x-match": "bad"})


def test_exchange_bindings_are_made_once_and_removed() -> None:
    found = exchanges("x", "y")
    found.bind("y", "x", "k", None)
    found.bind("y", "x", "k", None)
    found.bind("x", "x", "k", None)
    assert found.by_name["x"].exchange_bindings == [Binding("y", "k"), Binding("x", "k")]
    found.unbind("y", "x", "k", None)
    found.unbind("y", "x", "k", None)  # gone already: fine
    found.unbind("y", "nope", "k", None)  # no such source: fine
    assert found.by_name["x"].exchange_bindings == [Binding("x", "k")]
    with pytest.raises(ChannelAccessRefused):
        found.unbind("x", "", "k", None)


def test_deleting_an_exchange_removes_the_bindings_to_it() -> None:
    found = exchanges("x", "y")
    found.bind("y", "x", "k", None)
    found.bind("x", "y", "k", None)
    found.delete("y")
    assert found.by_name["x"].exchange_bindings == []
    assert found.route("x", ["k"], None) == []


def test_nobody_publishes_to_an_internal_exchange() -> None:
    found = exchanges()
    found.declare("i", "fanout", durable=False, passive=False, internal=True)
    with pytest.raises(ChannelAccessRefused, match="cannot publish to internal exchange 'i'"):
        found.publishable("i")
    with pytest.raises(ChannelNotFoundEntity):
        found.publishable("nope")
