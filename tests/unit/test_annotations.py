"""Annotations to shapes, at decoration time: what each supported annotation becomes, what is
refused (and how to opt out), and what the decorators do with a handler's annotations and
a producer's or function's result.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import subprocess
import sys
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NewType, NotRequired, Required, TypedDict, TypeVar

import msgspec
import pydantic
import pytest

from eventrabbit import ConfigurationError, InvalidResult, Unchecked
from eventrabbit.annotations import model_library, result_shape, shape_of
from eventrabbit.events import Events
from eventrabbit.registry import Handler
from eventrabbit.shapes import (
    AnyShape,
    DictOf,
    EnumOf,
    ListOf,
    LiteralOf,
    ModelOf,
    ObjectOf,
    Scalar,
    StringForm,
    TupleOf,
    UnionOf,
)
from tests.unit.test_registry import Published, RecordingPublisher, make_events

INT, STR, NONE, ANY = Scalar("int"), Scalar("str"), Scalar("none"), AnyShape()
T = TypeVar("T")
UserId = NewType("UserId", int)


class Color(enum.Enum):
    RED = "red"


class Bad(enum.Enum):
    WHEN = date(2024, 1, 1)


class Strings(TypedDict, total=False):
    # String annotations (this module has ``from __future__ import annotations``): Python
    # 3.11's own __required_keys__ gets both of these wrong.
    a: Required[int]
    b: str


class Mixed(TypedDict):
    x: NotRequired[str]
    y: int


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0
    label: str = dataclasses.field(default="", init=False)


@dataclasses.dataclass
class Node:
    value: int
    children: list[Node]


class Model(pydantic.BaseModel):
    a: int


class Struct(msgspec.Struct):
    a: int


@pytest.mark.parametrize(
    ("hint", "shape"),
    [
        pytest.param(int, INT, id="int"),
        pytest.param(float, Scalar("float"), id="float"),
        pytest.param(bool, Scalar("bool"), id="bool"),
        pytest.param(None, NONE, id="none"),
        pytest.param(Any, ANY, id="any"),
        pytest.param(UserId, INT, id="newtype"),
        pytest.param(datetime, StringForm("date-time"), id="datetime"),
        pytest.param(date, StringForm("date"), id="date"),
        pytest.param(uuid.UUID, StringForm("uuid"), id="uuid"),
        pytest.param(Decimal, StringForm("decimal"), id="decimal"),
        pytest.param(list[int], ListOf(INT), id="list"),
        pytest.param(list, ListOf(ANY), id="list-bare"),
        pytest.param(dict[str, int], DictOf(INT), id="dict"),
        pytest.param(tuple[int, str], TupleOf((INT, STR)), id="tuple"),
        pytest.param(tuple[int, ...], TupleOf((INT,), variadic=True), id="tuple-variadic"),
        pytest.param(int | None, UnionOf((INT, NONE)), id="optional"),
        pytest.param(Literal["a", 1, None], LiteralOf(("a", 1, None)), id="literal"),
        pytest.param(Color, EnumOf(Color), id="enum"),
        pytest.param(Annotated[int, "doc"], INT, id="annotated"),
        pytest.param(Annotated[int, Unchecked], ANY, id="unchecked"),
        pytest.param(Annotated[int, Unchecked()], ANY, id="unchecked-instance"),
        pytest.param(Model, ModelOf("pydantic", Model), id="pydantic"),
        pytest.param(Struct, ModelOf("msgspec", Struct), id="msgspec"),
        pytest.param(
            Strings, ObjectOf("Strings", (("a", INT), ("b", STR)), frozenset("a"), Strings), id="td"
        ),
        pytest.param(
            Mixed, ObjectOf("Mixed", (("x", STR), ("y", INT)), frozenset("y"), Mixed), id="td-not"
        ),
        pytest.param(
            Point,
            ObjectOf("Point", (("x", INT), ("y", INT)), frozenset("x"), Point),
            id="dataclass",
        ),
    ],
)
def test_shape_of(hint: Any, shape: Any) -> None:
    assert shape_of(hint) == shape


def test_a_class_that_contains_itself_closes_a_loop() -> None:
    node = shape_of(Node)
    assert isinstance(node, ObjectOf)
    children = dict(node.fields)["children"]
    assert isinstance(children, ListOf)
    assert children.item is node


@pytest.mark.parametrize(
    ("hint", "words"),
    [
        pytest.param(set[int], "set[int]", id="set"),
        pytest.param(bytes, "bytes", id="bytes"),
        pytest.param(dict[int, str], "keys are strings", id="dict-int-keys"),
        pytest.param(collections.abc.Sequence[int], "Sequence", id="abc"),
        pytest.param(T, "~T", id="typevar"),
        pytest.param(Literal[Color.RED], "JSON scalars", id="literal-enum-member"),
        pytest.param(Bad, "members' values", id="enum-values"),
        pytest.param(list[complex], "complex", id="nested"),
        pytest.param(type("Plain", (), {}), "Plain", id="plain-class"),
    ],
)
def test_what_no_shape_fits_is_refused(hint: Any, words: str) -> None:
    with pytest.raises(ConfigurationError, match="cannot check") as info:
        shape_of(hint)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("cls", "library"),
    [(Model, "pydantic"), (Struct, "msgspec"), (Point, None), (dict, None), (int, None)],
)
def test_models_are_told_by_their_metaclass(cls: type, library: str | None) -> None:
    assert model_library(cls) == library


def test_nothing_imports_pydantic_or_msgspec_until_an_annotation_names_one() -> None:
    code = (
        "import sys, dataclasses\n"
        "from eventrabbit.registry import Handler\n"
        "@dataclasses.dataclass\n"
        "class P:\n    x: int\n"
        "async def h(p: P, n: list[int], d: dict[str, float]) -> P: ...\n"
        "Handler.of('A', h)\n"
        "print('pydantic' in sys.modules, 'msgspec' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------------- handlers


async def _typed(user_id: int, name: str = "", *, when: datetime | None = None) -> Point: ...


def test_a_handler_records_its_data_and_result_shapes() -> None:
    handler = Handler.of("USER_CREATED", _typed)
    assert handler.data_shape == ObjectOf(
        "USER_CREATED",
        (("user_id", INT), ("name", STR), ("when", UnionOf((StringForm("date-time"), NONE)))),
        frozenset({"user_id"}),
    )
    assert handler.result_shape == shape_of(Point)
    assert handler.accepted == frozenset({"user_id", "name", "when"})


async def _untyped(a, b=1, **rest):  # type: ignore[no-untyped-def]
    ...


def test_no_annotations_means_unchecked() -> None:
    handler = Handler.of("A", _untyped)
    assert handler.data_shape == ObjectOf("A", (("a", ANY), ("b", ANY)), frozenset("a"), None, True)
    assert handler.result_shape is None
    assert handler.accepted is None


async def _odd(when: set[int], items: list[int]) -> None: ...


async def _typed_rest(a: int, **rest: int) -> None: ...


async def _unresolvable(a: Missing) -> None: ...  # type: ignore[name-defined]  # noqa: F821


async def _odd_result() -> complex: ...


@pytest.mark.parametrize(
    ("func", "words"),
    [
        pytest.param(_odd, "'_odd' for 'A': parameter 'when': cannot check set[int]", id="param"),
        pytest.param(_typed_rest, "**rest takes the keys no parameter names", id="kwargs"),
        pytest.param(_unresolvable, "name 'Missing' is not defined", id="unresolvable"),
        pytest.param(_odd_result, "return annotation: cannot check complex", id="result"),
    ],
)
def test_an_uncheckable_handler_is_refused_at_decoration(func: Any, words: str) -> None:
    events = make_events(RecordingPublisher())
    with pytest.raises(ConfigurationError) as info:
        events.consumer("A")(func)
    assert words in str(info.value)
    assert "A" not in events.registry.handlers
    # ...and is taken, unchecked, when asked.
    events.consumer("A", check=False)(func)
    handler = events.registry.handlers["A"]
    assert all(shape == ANY for _, shape in handler.data_shape.fields)
    assert handler.result_shape is None


def test_check_false_still_checks_the_keys() -> None:
    handler = Handler.of("A", _odd, check=False)
    assert handler.misfit({"when": "x", "items": "y"}) is None
    assert handler.misfit({"when": 1}) == "data does not fit handler 'A': missing keys items"


def test_result_shape_of_a_producer() -> None:
    assert result_shape("A", _typed) == shape_of(Point)
    assert result_shape("A", _typed, check=False) is None
    assert result_shape("A", _untyped) is None


# ---------------------------------------------------------------------------------- results


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def events(publisher: RecordingPublisher) -> Events:
    return make_events(publisher)


async def test_a_producer_whose_result_does_not_fit_raises_and_publishes_nothing(
    events: Events, publisher: RecordingPublisher
) -> None:
    @events.producer("users", "USER_CREATED")
    async def create_user(user_id: int) -> dict[str, int]:
        return {"user_id": str(user_id)}  # type: ignore[dict-item]

    with pytest.raises(InvalidResult) as info:
        await create_user(7)
    assert str(info.value) == (
        "the result of test_a_producer_whose_result_does_not_fit_raises_and_publishes_nothing."
        "<locals>.create_user() for 'USER_CREATED' does not fit its return annotation, nothing"
        " was published: ['user_id']: expected int, got str"
    )
    assert (info.value.path, info.value.problem) == ("['user_id']", "expected int, got str")
    assert isinstance(info.value, TypeError)
    assert publisher.calls == []


async def test_a_producer_publishes_what_orjson_can_write_and_returns_its_result(
    events: Events, publisher: RecordingPublisher
) -> None:
    @events.producer("prices", "PRICED")
    async def price() -> dict[str, Decimal | Model]:
        return {"total": Decimal("9.90"), "model": Model(a=1)}

    result = await price()
    assert result == {"total": Decimal("9.90"), "model": Model(a=1)}  # the caller's own
    assert publisher.calls == [
        Published("prices", "PRICED", {"total": "9.90", "model": {"a": 1}}, "", False, None)
    ]


async def test_a_producer_left_unchecked_publishes_anything(
    events: Events, publisher: RecordingPublisher
) -> None:
    @events.producer("ex", "A", check=False)
    async def make() -> int:
        return "not an int"  # type: ignore[return-value]

    assert await make() == "not an int"
    assert [call.data for call in publisher.calls] == ["not an int"]


async def test_a_function_whose_result_does_not_fit_fails_its_delivery(
    events: Events, publisher: RecordingPublisher
) -> None:
    @events.function("QUOTE", "prices", "QUOTED")
    async def quote(sku: str) -> Literal["ok"]:
        return "nope"  # type: ignore[return-value]

    handler = events.registry.handlers["QUOTE"]
    assert handler.after is not None
    with pytest.raises(InvalidResult, match="expected one of 'ok', got 'nope'"):
        await handler.after(await handler.func(sku="a"))
    with pytest.raises(InvalidResult):
        await quote("a")  # called directly, too
    assert publisher.calls == []


async def test_a_function_replies_what_it_published(events: Events) -> None:
    @events.function("QUOTE", "prices", "QUOTED")
    async def quote() -> dict[str, Decimal]:
        return {"total": Decimal("9.90")}

    handler = events.registry.handlers["QUOTE"]
    assert handler.after is not None
    # dispatch replies to reply_to with what ``after`` returns: the Decimal as its string.
    assert await handler.after(await quote.__wrapped__()) == {"total": "9.90"}  # type: ignore[attr-defined]
