"""Compiled checks: every supported annotation has a table of valid and invalid data.

Inbound tables give the JSON value (as orjson decodes it), what the handler gets, and its
exact type; misfit tables give the value and the reason, path included. Outbound tables check
results about to be published: what passes, what is published instead, what is refused.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired, Optional, Required, TypedDict, Union

import msgspec
import pydantic
import pytest

from eventrabbit import InvalidData, Unchecked
from eventrabbit.annotations import parameters_shape, shape_of
from eventrabbit.schema import DECIMAL_PATTERN
from eventrabbit.validate import _compile, compile_check, compile_parameters


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Item:
    price: float
    name: str = "item"


@dataclasses.dataclass
class Positive:
    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError("n must be positive")


class Order(TypedDict):
    id: int
    items: list[Item]
    note: NotRequired[str]


class Partial(TypedDict, total=False):
    a: Required[int]
    b: str


@dataclasses.dataclass
class Node:
    value: int
    children: list[Node]


class Model(pydantic.BaseModel):
    a: int


class Struct(msgspec.Struct):
    a: int


UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def check(hint: Any, value: Any, *, outbound: bool = False) -> Any:
    checker = compile_check(shape_of(hint), outbound=outbound)
    return value if checker is None else checker(value)


def reason(hint: Any, value: Any, *, outbound: bool = False) -> str:
    with pytest.raises(InvalidData) as info:
        check(hint, value, outbound=outbound)
    return str(info.value)


# ------------------------------------------------------------------------------------ inbound

VALID: list[Any] = [
    pytest.param(int, 3, 3, int, id="int"),
    pytest.param(int, -(2**63), -(2**63), int, id="int-min"),
    pytest.param(float, 2.5, 2.5, float, id="float"),
    pytest.param(float, 2, 2.0, float, id="float-from-int"),
    pytest.param(str, "x", "x", str, id="str"),
    pytest.param(bool, False, False, bool, id="bool"),
    pytest.param(None, None, None, type(None), id="none"),
    pytest.param(Any, {"a": [1]}, {"a": [1]}, dict, id="any"),
    pytest.param(object, "x", "x", str, id="object"),
    pytest.param(list[int], [1, 2], [1, 2], list, id="list"),
    pytest.param(list[int], [], [], list, id="list-empty"),
    pytest.param(list, [1, "a"], [1, "a"], list, id="list-bare"),
    pytest.param(list[float], [1, 2.5], [1.0, 2.5], list, id="list-converted"),
    pytest.param(dict[str, int], {"a": 1}, {"a": 1}, dict, id="dict"),
    pytest.param(
        dict[str, date], {"a": "2024-05-01"}, {"a": date(2024, 5, 1)}, dict, id="dict-conv"
    ),
    pytest.param(dict, {"a": None}, {"a": None}, dict, id="dict-bare"),
    pytest.param(tuple[int, str], [1, "a"], (1, "a"), tuple, id="tuple-fixed"),
    pytest.param(tuple[()], [], (), tuple, id="tuple-empty"),
    pytest.param(tuple[int, ...], [1, 2, 3], (1, 2, 3), tuple, id="tuple-variadic"),
    pytest.param(tuple, [1, "a"], (1, "a"), tuple, id="tuple-bare"),
    pytest.param(int | None, None, None, type(None), id="optional-none"),
    pytest.param(Optional[int], 4, 4, int, id="optional-int"),  # noqa: UP045
    pytest.param(Union[int, str], "a", "a", str, id="union"),  # noqa: UP007
    pytest.param(int | list[int], [1], [1], list, id="union-container"),
    pytest.param(Literal["a", 1], 1, 1, int, id="literal-int"),
    pytest.param(Literal["a", 1], "a", "a", str, id="literal-str"),
    pytest.param(Literal[True], True, True, bool, id="literal-bool"),
    pytest.param(Color, "red", Color.RED, Color, id="enum"),
    pytest.param(Level, 2, Level.HIGH, Level, id="int-enum"),
    pytest.param(Partial, {"a": 1}, {"a": 1}, dict, id="typeddict-total-false"),
    pytest.param(Item, {"price": 1}, Item(1.0), Item, id="dataclass"),
    pytest.param(Item, {"price": 1.5, "name": "n"}, Item(1.5, "n"), Item, id="dataclass-all"),
    pytest.param(datetime, "2024-05-01T12:00:00Z", NOON, datetime, id="datetime"),
    pytest.param(
        datetime,
        "2024-05-01T12:00:00+02:00",
        datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))),
        datetime,
        id="datetime-offset",
    ),
    pytest.param(date, "2024-05-01", date(2024, 5, 1), date, id="date"),
    pytest.param(uuid.UUID, str(UID), UID, uuid.UUID, id="uuid"),
    pytest.param(Decimal, "-1.50", Decimal("-1.50"), Decimal, id="decimal"),
    pytest.param(Decimal, "1e3", Decimal("1e3"), Decimal, id="decimal-exponent"),
    pytest.param(Annotated[int, "docs"], 1, 1, int, id="annotated"),
    pytest.param(Annotated[int, Unchecked], "not an int", "not an int", str, id="unchecked"),
    pytest.param(list[Annotated[int, Unchecked]], ["x"], ["x"], list, id="unchecked-inside"),
    pytest.param(Model, {"a": 1}, Model(a=1), Model, id="pydantic"),
    pytest.param(Struct, {"a": 1}, Struct(a=1), Struct, id="msgspec"),
    pytest.param(list[Model], [{"a": 1}], [Model(a=1)], list, id="pydantic-nested"),
]


@pytest.mark.parametrize(("hint", "value", "expected", "kind"), VALID)
def test_valid_data_is_handed_over_converted(
    hint: Any, value: Any, expected: Any, kind: type
) -> None:
    result = check(hint, value)
    assert result == expected
    assert type(result) is kind


def test_nested_combinations_convert_all_the_way_down() -> None:
    value = {"id": 1, "items": [{"price": 1}, {"price": 2.5, "name": "b"}], "note": "n"}
    assert check(Order, value) == {"id": 1, "items": [Item(1.0), Item(2.5, "b")], "note": "n"}
    tree = {"value": 1, "children": [{"value": 2, "children": []}]}
    assert check(Node, tree) == Node(1, [Node(2, [])])
    assert check(dict[str, tuple[Color, date | None]], {"k": ["green", None]}) == {
        "k": (Color.GREEN, None)
    }


INVALID: list[Any] = [
    pytest.param(int, "1", "expected int, got str", id="int-str"),
    pytest.param(int, True, "expected int, got bool", id="int-bool"),
    pytest.param(int, 1.0, "expected int, got float", id="int-float"),
    pytest.param(float, "1.5", "expected float, got str", id="float-str"),
    pytest.param(float, False, "expected float, got bool", id="float-bool"),
    pytest.param(str, None, "expected str, got None", id="str-none"),
    pytest.param(bool, 1, "expected bool, got int", id="bool-int"),
    pytest.param(None, 0, "expected None, got int", id="none-int"),
    pytest.param(list[int], {"a": 1}, "expected list[int], got dict", id="list-dict"),
    pytest.param(list[int], [1, 2, "3"], "[2]: expected int, got str", id="list-item"),
    pytest.param(list[float], [1, None], "[1]: expected float, got None", id="list-conv-item"),
    pytest.param(dict[str, int], [], "expected dict[str, int], got list", id="dict-list"),
    pytest.param(dict[str, int], {"a": "b"}, "['a']: expected int, got str", id="dict-value"),
    pytest.param(tuple[int, str], [1], "expected tuple[int, str], got 1 items", id="tuple-short"),
    pytest.param(tuple[int, str], [1, 2], "[1]: expected str, got int", id="tuple-item"),
    pytest.param(tuple[int, ...], [1, "a"], "[1]: expected int, got str", id="tuple-var-item"),
    pytest.param(int | None, "x", "expected int | None, got str", id="optional"),
    pytest.param(int | list[int], [1, "x"], "[1]: expected int, got str", id="union-deeper"),
    pytest.param(Literal["a", 1], "b", "expected one of 'a', 1, got 'b'", id="literal"),
    pytest.param(Literal[1], True, "expected one of 1, got True", id="literal-bool-for-int"),
    pytest.param(Literal["a"], ["a"], "expected one of 'a', got ['a']", id="literal-list"),
    pytest.param(Color, "blue", "expected Color ('red', 'green'), got 'blue'", id="enum"),
    pytest.param(Level, True, "expected Level (1, 2), got True", id="int-enum-bool"),
    pytest.param(Order, [], "expected Order, got list", id="typeddict-list"),
    pytest.param(Order, {"items": []}, "missing keys id", id="typeddict-missing"),
    pytest.param(Order, {"id": 1, "items": [], "x": 0}, "unexpected keys x", id="typeddict-extra"),
    pytest.param(
        Order,
        {"id": 1, "items": [{"price": 1}, {"price": 2}, {"price": "3"}]},
        "items[2].price: expected float, got str",
        id="nested-path",
    ),
    pytest.param(Partial, {"b": "x"}, "missing keys a", id="typeddict-required"),
    pytest.param(Partial, {"a": 1, "b": 2}, "b: expected str, got int", id="typeddict-optional"),
    pytest.param(Item, {"name": "n"}, "missing keys price", id="dataclass-missing"),
    pytest.param(
        Positive, {"n": 0}, "Positive() refused it: ValueError: n must be positive", id="post-init"
    ),
    pytest.param(
        Node,
        {"value": 1, "children": [{"value": 2, "children": [{"value": "x", "children": []}]}]},
        "children[0].children[0].value: expected int, got str",
        id="recursive",
    ),
    pytest.param(datetime, "2024-05-01", "expected date-time string, got '2024-05-01'", id="dt"),
    pytest.param(datetime, "yesterday", "expected date-time string, got 'yesterday'", id="dt-text"),
    pytest.param(datetime, 1714564800, "expected date-time string, got int", id="dt-number"),
    pytest.param(date, "2024-13-01", "expected date string, got '2024-13-01'", id="date"),
    pytest.param(uuid.UUID, UID.hex, f"expected uuid string, got '{UID.hex}'", id="uuid-hex"),
    pytest.param(Decimal, "1_000", "expected decimal string, got '1_000'", id="decimal-underscore"),
    pytest.param(Decimal, "NaN", "expected decimal string, got 'NaN'", id="decimal-nan"),
    pytest.param(Decimal, 1.5, "expected decimal string, got float", id="decimal-number"),
    pytest.param(
        Model,
        {"a": "x"},
        "a: Input should be a valid integer, unable to parse string as an integer"
        " (Model, by pydantic)",
        id="pydantic",
    ),
    pytest.param(
        list[Struct],
        [{"a": 1}, {"a": "x"}],
        "[1].a: Expected `int`, got `str` (Struct, by msgspec)",
        id="msgspec",
    ),
]


@pytest.mark.parametrize(("hint", "value", "expected"), INVALID)
def test_invalid_data_is_refused_with_path_and_reason(hint: Any, value: Any, expected: str) -> None:
    assert reason(hint, value) == expected


def test_a_long_value_is_cut_in_the_reason() -> None:
    text = reason(Literal["a"], "x" * 100)
    assert text.endswith("...")
    assert len(text) < 80


def test_the_decimal_form_is_the_one_the_json_schema_states() -> None:
    from eventrabbit.leaves import _DECIMAL

    assert _DECIMAL.pattern == DECIMAL_PATTERN


def test_unchecked_compiles_to_no_check_at_all() -> None:
    assert compile_check(shape_of(Any)) is None
    assert compile_check(shape_of(int | Annotated[str, Unchecked])) is None


def test_a_container_of_unchanged_items_returns_itself() -> None:
    value = [1, 2]
    assert check(list[int], value) is value
    mapping = {"a": [1]}
    assert check(dict[str, list[int]], mapping) is mapping
    assert _compile(shape_of(list[float]), False, {})[1] is True  # this one converts


# ----------------------------------------------------------------------------------- outbound

OUT_VALID: list[Any] = [
    pytest.param(int, Level.LOW, Level.LOW, id="int-enum-as-int"),
    pytest.param(float, 1, 1, id="float-int"),
    pytest.param(dict[str, int], {"a": 1}, {"a": 1}, id="dict"),
    pytest.param(list[int], (1, 2), (1, 2), id="list-as-tuple"),
    pytest.param(tuple[int, str], [1, "a"], [1, "a"], id="tuple-as-list"),
    pytest.param(datetime, NOON, NOON, id="datetime"),
    pytest.param(datetime, "2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z", id="datetime-string"),
    pytest.param(uuid.UUID, UID, UID, id="uuid"),
    pytest.param(Decimal, Decimal("1.50"), "1.50", id="decimal-as-string"),
    pytest.param(dict[str, Decimal], {"a": Decimal(2)}, {"a": "2"}, id="decimal-nested"),
    pytest.param(Color, Color.RED, Color.RED, id="enum-member"),
    pytest.param(Color, "red", "red", id="enum-value"),
    pytest.param(Item, Item(1.0), Item(1.0), id="dataclass"),
    pytest.param(Order, {"id": 1, "items": [Item(2)]}, {"id": 1, "items": [Item(2)]}, id="td"),
    pytest.param(Model, Model(a=1), {"a": 1}, id="pydantic-dumped"),
    pytest.param(Struct, Struct(a=1), {"a": 1}, id="msgspec-dumped"),
    pytest.param(Literal["a"], "a", "a", id="literal"),
]


@pytest.mark.parametrize(("hint", "value", "published"), OUT_VALID)
def test_fitting_results_are_published_as_orjson_can_write_them(
    hint: Any, value: Any, published: Any
) -> None:
    assert check(hint, value, outbound=True) == published


OUT_INVALID: list[Any] = [
    pytest.param(int, True, "expected int, got bool", id="int-bool"),
    pytest.param(int, "1", "expected int, got str", id="int-str"),
    pytest.param(bool, 0, "expected bool, got int", id="bool-int"),
    pytest.param(dict[str, int], {1: 1}, "expected dict[str, int], got key 1", id="dict-key"),
    pytest.param(list[int], [1, None], "[1]: expected int, got None", id="list-item"),
    pytest.param(date, NOON, "expected date string, got datetime", id="date-datetime"),
    pytest.param(Decimal, Decimal("Infinity"), "expected decimal string, got Infinity", id="inf"),
    pytest.param(Item, {"price": 1}, "expected Item, got dict", id="dataclass-dict"),
    pytest.param(Item, Item("x"), "price: expected float, got str", id="dataclass-field"),  # type: ignore[arg-type]
    pytest.param(Model, {"a": 1}, "expected Model, got dict", id="pydantic-dict"),
    pytest.param(Order, {"id": 1}, "missing keys items", id="typeddict-missing"),
]


@pytest.mark.parametrize(("hint", "value", "expected"), OUT_INVALID)
def test_misfitting_results_are_refused(hint: Any, value: Any, expected: str) -> None:
    assert reason(hint, value, outbound=True) == expected


def test_a_result_that_needs_no_conversion_is_the_very_same_object() -> None:
    value = {"id": 1, "items": [Item(2)]}
    assert check(Order, value, outbound=True) is value
    items = [{"a": [1, 2]}]
    assert check(list[dict[str, list[int]]], items, outbound=True) is items


# --------------------------------------------------------------------------------- parameters


async def _handler(user_id: int, name: str, score: float = 0.0, tags: list[int] = []) -> None:  # noqa: B006
    """The seed's example handler, with two more parameters."""


PARAMETERS = compile_parameters(parameters_shape("USER_CREATED", _handler))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({"user_id": "abc", "name": 7}, "user_id: expected int, got str", id="seed"),
        pytest.param({"user_id": 1, "name": 7}, "name: expected str, got int", id="second"),
        pytest.param({"user_id": 1, "name": "a", "score": "x"}, "score: expected float, got str"),
        pytest.param(
            {"user_id": 1, "name": "a", "tags": [1, "x"]}, "tags[1]: expected int, got str"
        ),
        pytest.param({"user_id": 1, "name": "a", "x": 1}, "unexpected keys x", id="unknown"),
        pytest.param({"name": "a"}, "missing keys user_id", id="missing"),
    ],
)
def test_parameters_refuse_misfits(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidData) as info:
        PARAMETERS(data)
    assert str(info.value) == expected


def test_parameters_are_converted_in_place() -> None:
    data: dict[str, Any] = {"user_id": 1, "name": "a", "score": 3}
    assert PARAMETERS(data) is data
    assert data == {"user_id": 1, "name": "a", "score": 3.0}
    assert type(data["score"]) is float
