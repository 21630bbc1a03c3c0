"""The in-memory broker routes as RabbitMQ 3.10 does: played on both, compared
(:mod:`tests.differential`).

Headers exchanges get tables of cases — one bindings-by-messages matrix each, every queue
drained — and hypothesis-made ones; what each table shows about RabbitMQ is in its comment.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiormq
import aiormq.exceptions
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventrabbit.testing import memory_broker
from eventrabbit.testing.transport import connect_memory
from tests.differential import Case, Side, compare
from tests.helpers import BROKER_URL

pytestmark = pytest.mark.differential

#: Each hypothesis test: enough examples to find a rule broken, few enough to stay quick.
GENERATED = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


async def default_exchange_and_returns(side: Side) -> None:
    await side.queue("q")
    await side.publish("", side.name("q"), b"to q")
    await side.publish("", side.name("nowhere"), b"lost", mandatory=True)
    await side.publish("", side.name("nowhere"), b"dropped")
    await side.drain("q")


async def double_bindings(side: Side) -> None:
    await side.exchange("x", "topic")
    await side.queue("q")
    await side.bind("q", "x", "a.*")
    await side.bind("q", "x", "#")
    await side.bind("q", "x", "a.*")  # the same binding twice
    await side.publish("x", "a.b", b"once", headers={"h": 1})
    await side.publish("x", "c", b"once too")
    await side.drain("q")


@pytest.mark.parametrize("case", [default_exchange_and_returns, double_bindings])
async def test_case(case: Case) -> None:
    rabbit, memory = await compare(case)
    assert memory == rabbit


# ------------------------------------------------------------------------ headers: tables


def matrix(
    bindings: Mapping[str, Mapping[str, Any]], messages: list[dict[str, Any] | None]
) -> Case:
    """A case: one queue per binding on one headers exchange, every message published
    (its body is its index), every queue drained."""

    async def case(side: Side) -> None:
        await side.exchange("x", "headers")
        for name, arguments in bindings.items():
            await side.queue(name)
            await side.bind(name, "x", "", arguments)
        for index, headers in enumerate(messages):
            await side.publish("x", "", str(index).encode(), headers=headers)
        for name in bindings:
            await side.drain(name)

    return case


UTC_SECOND = datetime(1970, 1, 1, 0, 0, 1)
LONG_KEY = "k" * 200  # pamqp cuts keys to 128 bytes: 200 and 150 "k"s are one key
#: Values go over the wire before RabbitMQ compares them: 0.1 is a 32-bit float on both
#: sides, a datetime whole seconds — so these match, at the top level and inside.
WIRE = matrix(
    {
        "float": {"k": 0.1},
        "micro": {"k": datetime(2020, 1, 1, 0, 0, 0, 500000)},
        "long_key": {LONG_KEY: "v"},
        "nested": {"k": {"f": 0.1, "t": datetime(2020, 1, 1, 0, 0, 0, 1)}},
        "in_array": {"k": [0.1, datetime(2020, 1, 1, 0, 0, 0, 2)]},
    },
    [
        {"k": 0.1},
        {"k": datetime(2020, 1, 1, 0, 0, 0, 900000)},
        {"k" * 150: "v"},
        {"k": {"f": 0.1, "t": datetime(2020, 1, 1)}},
        {"k": [0.1, datetime(2020, 1, 1)]},
        {"k": 0.10000000149011612},  # 0.1's 32-bit self
    ],
)
#: Top level, RabbitMQ 3.10 compares with Erlang's ==: numbers by value whatever their type
#: (1, 1.0 and a timestamp of one second), a long string and a byte array by their bytes, an
#: empty table and an empty array alike; a bool is no number, a decimal is (scale, mantissa).
TOP_LEVEL = matrix(
    {
        "int": {"k": 1},
        "float": {"k": 1.0},
        "timestamp": {"k": UTC_SECOND},
        "bool": {"k": True},
        "decimal": {"k": Decimal("1")},
        "decimal_scaled": {"k": Decimal("1.0")},
        "string": {"k": "1"},
        "bytes": {"k": bytearray(b"1")},
        "table": {"k": {}},
        "array": {"k": []},
        "big": {"k": 2**40},
        "void": {"k": None},
    },
    [
        {"k": 1}, {"k": 1.0}, {"k": UTC_SECOND}, {"k": True}, {"k": Decimal("1")},
        {"k": Decimal("1.0")}, {"k": "1"}, {"k": bytearray(b"1")}, {"k": {}}, {"k": []},
        {"k": float(2**40)}, {"k": 2**40}, {"k": None}, {"k": -1}, {"k": Decimal("-1")},
    ],
)  # fmt: skip
#: Inside tables and arrays every value keeps its type: {k: 1} is not {k: 1.0}, [True] not
#: [1], D("1") not D("1.0"), a string not a byte array; keys are in pamqp's (sorted) order.
NESTED = matrix(
    {
        "table_int": {"k": {"a": 1}},
        "array_bool": {"k": [True]},
        "array_decimal": {"k": [Decimal("1")]},
        "array_string": {"k": ["1"]},
        "array_of_tables": {"k": [{"a": 1, "b": [1]}]},
        "zero": {"k": [0.0]},
    },
    [
        {"k": {"a": 1}}, {"k": {"a": 1.0}}, {"k": [True]}, {"k": [1]}, {"k": [Decimal("1")]},
        {"k": [Decimal("1.0")]}, {"k": ["1"]}, {"k": [bytearray(b"1")]},
        {"k": [{"b": [1], "a": 1}]}, {"k": [{"a": 1, "b": [1.0]}]}, {"k": [-0.0]},
        {"k": [UTC_SECOND]},
    ],
)  # fmt: skip
#: x-match is never compared; plain all/any skip other x- arguments, the -with-x modes don't.
MODES = matrix(
    {
        "all": {"x-match": "all", "a": 1, "x-b": 2},
        "any": {"x-match": "any", "a": 1, "x-b": 2},
        "all_x": {"x-match": "all-with-x", "a": 1, "x-b": 2},
        "any_x": {"x-match": "any-with-x", "a": 1, "x-b": 2},
        "any_void": {"x-match": "any", "a": None, "b": 0.5},
        "any_x_only": {"x-match": "any", "x-b": 2},
    },
    [{"a": 1}, {"x-b": 2}, {"a": 1, "x-b": 2}, {"a": 1.0, "x-b": 2.0}, {"b": 0.5}, None],
)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(WIRE, id="wire"),
        pytest.param(TOP_LEVEL, id="top-level"),
        pytest.param(NESTED, id="nested"),
        pytest.param(MODES, id="modes"),
    ],
)
async def test_headers_table(case: Case) -> None:
    rabbit, memory = await compare(case)
    assert memory == rabbit


# ------------------------------------------------------------------- headers: refusals

#: Any x-match but the four long strings is refused with 406, whatever its type, and the
#: channel closes; on a direct exchange nobody looks at it.
BAD_X_MATCH = [["any"], bytearray(b"any"), None, 1, True, "ANY", "", {"a": 1}, Decimal(1)]


async def bad_x_match(side: Side) -> None:
    await side.exchange("x", "headers")
    await side.exchange("d", "direct")
    await side.queue("q")
    for mode in BAD_X_MATCH:
        await side.bind("q", "x", "", {"x-match": mode, "k": 1})
        await side.bind("q", "d", "k", {"x-match": mode})
    await side.bind("q", "x", "", {"x-match": "any", "k": 1})  # a fresh channel binds
    await side.publish("x", "", b"m", headers={"k": 1.0})
    await side.publish("d", "k", b"direct")
    await side.drain("q")


async def unencodable(side: Side) -> None:
    # pamqp refuses these in the client, before anything is sent: the channel stays open.
    await side.exchange("x", "headers")
    await side.queue("q")
    for value in ({1, 2}, b"bytes", 2**64, 1e300, Decimal("NaN")):
        channel = await side.channel()
        try:
            await channel.queue_bind(side.name("q"), side.name("x"), arguments={"k": value})
        except (TypeError, OverflowError) as exc:
            side.transcript.append(("bind", type(exc).__name__, channel.is_closed))
    await side.bind("q", "x", "", {"k": 1})
    await side.publish("x", "", b"m", headers={"k": 1})
    await side.drain("q")


@pytest.mark.parametrize("case", [bad_x_match, unencodable])
async def test_headers_refusal(case: Case) -> None:
    rabbit, memory = await compare(case)
    assert memory == rabbit


async def _bind_non_finite(connection: aiormq.abc.AbstractConnection, name: str) -> list[str]:
    seen = []
    channel = await connection.channel()
    await channel.exchange_declare(name, exchange_type="headers", auto_delete=True)
    await channel.queue_declare(name, exclusive=True)
    try:
        await channel.queue_bind(name, name, arguments={"k": [1.0, float("nan")]})
    except aiormq.exceptions.AMQPConnectionError as exc:
        seen.append(type(exc).__name__)
    seen.append(f"connection closed: {connection.is_closed}")
    return seen


async def test_a_float_rabbitmq_cannot_parse_resets_the_connection() -> None:
    # NaN and infinity encode, but Erlang has no such floats: RabbitMQ drops the connection.
    name = f"diff.{uuid.uuid4().hex[:8]}.nan"
    rabbit_connection = await aiormq.connect(BROKER_URL)
    try:
        rabbit = await _bind_non_finite(rabbit_connection, name)
    finally:
        await rabbit_connection.close()
    async with contextlib.AsyncExitStack() as stack:  # the exclusive queue went with it
        cleanup = await aiormq.connect(BROKER_URL)
        stack.push_async_callback(cleanup.close)
        await (await cleanup.channel()).exchange_delete(name)
    with memory_broker() as broker:
        memory_connection = await connect_memory(broker.url)
        try:
            memory = await _bind_non_finite(memory_connection, name)
        finally:
            await memory_connection.close()
    assert memory == rabbit == ["AMQPConnectionError", "connection closed: True"]


# ---------------------------------------------------------------- headers: generated

#: Values that equal one another in some ways and not in others, so matches are common.
POOL: list[Any] = [
    0, 1, -1, 127, 128, -129, 255, 256, 32768, 65535, 65536, 2**31, 2**32 - 1, 2**32, 2**40,
    0.0, -0.0, 1.0, 0.1, 1.5, 128.0, 2.0**32, True, False, "", "1", "abc", bytearray(b""),
    bytearray(b"1"), bytearray(b"abc"), Decimal("1"), Decimal("1.0"), Decimal("0.1"),
    Decimal("-1"), Decimal("1E+1"), UTC_SECOND, datetime(1970, 1, 1, 0, 0, 1, 250000),
    datetime(2024, 2, 29, 12), None, [], {}, [1], [1.0], {"a": 1}, {"a": 1.0},
]  # fmt: skip
KEYS = st.sampled_from(["a", "b", "c", "x-d", LONG_KEY])
LEAVES = st.one_of(
    st.sampled_from(POOL),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.binary(max_size=3).map(bytearray),
    st.decimals(-1000, 1000, allow_nan=False, allow_infinity=False, places=2),
    st.datetimes(datetime(1970, 1, 2), datetime(2100, 1, 1)),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=5,
)
TABLES = st.dictionaries(KEYS, VALUES, max_size=3)
#: Mostly one of the four modes; now and then one RabbitMQ refuses.
X_MATCH = st.sampled_from(
    ["all", "any", "any", "all-with-x", "any-with-x", "bogus", bytearray(b"any"), ["all"]]
)


@st.composite
def headers_cases(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """Four bindings, and five messages — some made from a binding, so ``all`` matches."""
    bindings: dict[str, dict[str, Any]] = {}
    for index in range(4):
        arguments = draw(TABLES)
        mode = draw(st.one_of(X_MATCH, st.just(None)))
        if mode is not None:
            arguments["x-match"] = mode
        bindings[f"b{index}"] = arguments
    messages: list[Any] = []
    for _ in range(5):
        if draw(st.booleans()):
            source = draw(st.sampled_from(list(bindings.values())))
            headers = {k: v for k, v in source.items() if k != "x-match"}
            headers.update(draw(st.dictionaries(KEYS, VALUES, max_size=1)))
            messages.append(headers)
        else:
            messages.append(draw(st.one_of(st.none(), TABLES)))
    return bindings, messages


@GENERATED
@given(headers_cases())
def test_generated_headers(spec: tuple[dict[str, dict[str, Any]], list[Any]]) -> None:
    # A sync test: hypothesis drives it, and asyncio.run gives each example its own loop.
    rabbit, memory = asyncio.run(compare(matrix(*spec)))
    assert memory == rabbit


# ------------------------------------------------------------------ topic: generated

WORDS = st.sampled_from(["a", "b", ""])
TOPIC_KEYS = st.lists(WORDS, max_size=4).map(".".join)
PATTERNS = st.lists(st.one_of(WORDS, st.sampled_from(["*", "#"])), max_size=4).map(".".join)


def topic_matrix(patterns: list[str], keys: list[str]) -> Case:
    """A case: one queue per pattern on a topic exchange, one message per key."""

    async def case(side: Side) -> None:
        await side.exchange("t", "topic")
        for index, pattern in enumerate(patterns):
            await side.queue(f"p{index}")
            await side.bind(f"p{index}", "t", pattern)
        for index, key in enumerate(keys):
            await side.publish("t", key, str(index).encode())
        for index in range(len(patterns)):
            await side.drain(f"p{index}")

    return case


@GENERATED
@given(st.lists(PATTERNS, min_size=4, max_size=4), st.lists(TOPIC_KEYS, min_size=6, max_size=6))
def test_generated_topic(patterns: list[str], keys: list[str]) -> None:
    rabbit, memory = asyncio.run(compare(topic_matrix(patterns, keys)))
    assert memory == rabbit
