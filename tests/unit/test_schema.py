"""Shapes as JSON Schema (draft 2020-12), held to a validator: each row is a shape, values its
schema must accept and values it must refuse."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker

from eventrabbit.schema import DIALECT, SchemaWriter, draft7, json_schema
from eventrabbit.shapes import (
    AnyShape,
    DictOf,
    EnumOf,
    ListOf,
    LiteralOf,
    ModelOf,
    ObjectOf,
    Scalar,
    Shape,
    StringForm,
    TupleOf,
    UnionOf,
)

INT, STR, FLOAT = Scalar("int"), Scalar("str"), Scalar("float")


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Named(TypedDict, total=False):
    name: str


@dataclasses.dataclass
class Node:
    value: int
    children: list[Node]


class Model(pydantic.BaseModel):
    id: int
    tags: list[str] = []


class Struct(msgspec.Struct):
    id: int
    pair: tuple[int, str]


POINT = ObjectOf("Point", (("x", INT), ("y", INT)), frozenset({"x", "y"}), Point)
NAMED = ObjectOf("Named", (("name", STR),), frozenset(), Named)
# A recursive shape: the annotations compiler closes the loop after building the node.
NODE = ObjectOf("Node", (), frozenset({"value", "children"}), Node)
object.__setattr__(NODE, "fields", (("value", INT), ("children", ListOf(NODE))))
HANDLER = ObjectOf("handler", (("user_id", INT), ("name", STR)), frozenset({"user_id"}))
KWARGS = ObjectOf("handler", (("user_id", INT),), frozenset({"user_id"}), extra=True)

#: shape, values that fit, values that do not.
CASES: list[tuple[str, Shape, list[Any], list[Any]]] = [
    ("any", AnyShape(), [1, "x", None, [], {}], []),
    ("int", INT, [0, -5, 2**70], [1.5, "1", True, None]),
    ("float", FLOAT, [1.5, 2, -0.0], ["1.5", False, None]),
    ("str", STR, ["", "é"], [1, None, []]),
    ("bool", Scalar("bool"), [True, False], [0, 1, "true", None]),
    ("none", Scalar("none"), [None], [0, "", False]),
    ("date-time", StringForm("date-time"), ["2026-01-02T03:04:05+00:00"], ["yesterday", 5]),
    ("date", StringForm("date"), ["2026-01-02"], ["2026-13-01", "02/01/2026", 20260102]),
    ("uuid", StringForm("uuid"), [str(uuid.uuid4())], ["not-a-uuid", 1]),
    (
        "decimal",
        StringForm("decimal"),
        ["1", "-1.50", ".5", "1e-3", "+2E10"],
        ["1.2.3", "abc", "NaN", "", 1.5],
    ),
    ("list", ListOf(INT), [[], [1, 2]], [[1, "2"], {}, "12"]),
    ("dict", DictOf(FLOAT), [{}, {"a": 1.5, "b": 2}], [{"a": "x"}, [], None]),
    ("tuple", TupleOf((INT, STR)), [[1, "a"]], [[1], [1, "a", 2], ["a", 1], []]),
    ("empty tuple", TupleOf(()), [[]], [[1]]),
    ("variadic tuple", TupleOf((INT,), variadic=True), [[], [1, 2, 3]], [[1, "x"]]),
    ("union", UnionOf((INT, Scalar("none"))), [1, None], ["1", 1.5]),
    ("single option", UnionOf((STR,)), ["a"], [1]),
    ("literal", LiteralOf(("a",)), ["a"], ["b", 1]),
    ("literals", LiteralOf((1, "b", None)), [1, "b", None], [2, "a", True]),
    ("enum", EnumOf(Colour), ["red", "green"], ["RED", "blue", 1]),
    ("int enum", EnumOf(Level), [1, 2], [3, "1"]),
    ("dataclass", POINT, [{"x": 1, "y": 2}], [{"x": 1}, {"x": 1, "y": 2, "z": 3}, [1, 2]]),
    ("typeddict", NAMED, [{}, {"name": "a"}], [{"name": 1}, {"other": 1}]),
    (
        "recursive",
        NODE,
        [{"value": 1, "children": [{"value": 2, "children": []}]}],
        [{"value": 1, "children": [{"value": 2}]}, {"value": 1}],
    ),
    (
        "twice",
        ListOf(TupleOf((POINT, POINT))),
        [[[{"x": 1, "y": 2}, {"x": 3, "y": 4}]]],
        [[[{"x": 1, "y": 2}, {"x": 3}]]],
    ),
    (
        "handler",
        HANDLER,
        [{"user_id": 1}, {"user_id": 1, "name": "a"}],
        [{}, {"user_id": "1"}, {"user_id": 1, "other": 2}],
    ),
    ("kwargs", KWARGS, [{"user_id": 1, "anything": [1]}], [{"anything": 1}]),
    (
        "pydantic",
        ModelOf("pydantic", Model),
        [{"id": 1}, {"id": 1, "tags": ["a"]}],
        [{"tags": []}, {"id": 1, "tags": [1]}],
    ),
    (
        "msgspec",
        ModelOf("msgspec", Struct),
        [{"id": 1, "pair": [1, "a"]}],
        [{"id": 1, "pair": [1, 2]}, {"id": 1}],
    ),
]


def _checker() -> FormatChecker:
    """The validator's format checks, with ``date-time`` (jsonschema checks it only when an
    optional package is installed)."""
    checker = FormatChecker()
    checker.checks("date-time", raises=ValueError)(
        lambda value: not isinstance(value, str) or bool(datetime.datetime.fromisoformat(value))
    )
    return checker


@pytest.mark.parametrize(
    ("shape", "valid", "invalid"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_schema_accepts_what_fits_and_refuses_the_rest(
    shape: Shape, valid: list[Any], invalid: list[Any]
) -> None:
    schema = json_schema(shape)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DIALECT
    validator = Draft202012Validator(schema, format_checker=_checker())
    for value in valid:
        assert not list(validator.iter_errors(value)), value
    for value in invalid:
        assert list(validator.iter_errors(value)), value


@pytest.mark.parametrize(
    ("shape", "valid", "invalid"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_draft_07_form_judges_alike(shape: Shape, valid: list[Any], invalid: list[Any]) -> None:
    schema = draft7({**json_schema(shape), "$schema": "http://json-schema.org/draft-07/schema#"})
    Draft7Validator.check_schema(schema)
    validator = Draft7Validator(schema, format_checker=_checker())
    for value in valid:
        assert not list(validator.iter_errors(value)), value
    for value in invalid:
        assert list(validator.iter_errors(value)), value


#: shape, the schema written (without ``$schema``).
WRITTEN: list[tuple[Shape, dict[str, Any]]] = [
    (AnyShape(), {}),
    (Scalar("float"), {"type": "number"}),
    (StringForm("uuid"), {"type": "string", "format": "uuid"}),
    (DictOf(INT), {"type": "object", "additionalProperties": {"type": "integer"}}),
    (
        TupleOf((INT, STR)),
        {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
            "items": False,
            "minItems": 2,
        },
    ),
    (TupleOf((INT,), variadic=True), {"type": "array", "items": {"type": "integer"}}),
    (UnionOf((INT, STR)), {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
    (LiteralOf((1,)), {"const": 1}),
    (LiteralOf((1, 2)), {"enum": [1, 2]}),
    (EnumOf(Colour), {"title": "Colour", "enum": ["red", "green"]}),
    (
        KWARGS,
        {"type": "object", "properties": {"user_id": {"type": "integer"}}, "required": ["user_id"]},
    ),
    (
        POINT,
        {
            "type": "object",
            "title": "Point",
            "additionalProperties": False,
            "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
            "required": ["x", "y"],
        },
    ),
    (
        ListOf(UnionOf((POINT, POINT))),
        {
            "type": "array",
            "items": {"anyOf": [{"$ref": "#/$defs/Point"}, {"$ref": "#/$defs/Point"}]},
            "$defs": {
                "Point": {
                    "type": "object",
                    "title": "Point",
                    "additionalProperties": False,
                    "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                    "required": ["x", "y"],
                }
            },
        },
    ),
]


@pytest.mark.parametrize(("shape", "expected"), WRITTEN)
def test_what_is_written(shape: Shape, expected: dict[str, Any]) -> None:
    schema = json_schema(shape)
    del schema["$schema"]
    assert schema == expected


def test_a_recursive_class_is_a_definition_referring_to_itself() -> None:
    schema = json_schema(NODE)
    assert schema["$ref"] == "#/$defs/Node"
    assert schema["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}


def test_a_recursive_class_written_without_counting_still_ends() -> None:
    writer = SchemaWriter()
    schema = writer.write(NODE)
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert set(writer.defs) == {"Node"}


def test_two_classes_of_one_name_get_two_definitions() -> None:
    @dataclasses.dataclass
    class Point:  # another Point, as if from another module
        z: str

    other = ObjectOf("Point", (("z", STR),), frozenset({"z"}), Point)
    writer = SchemaWriter(ref_template="#/components/schemas/{name}")
    shapes = [POINT, POINT, other, other]
    writer.count(shapes)
    refs = [writer.write(shape)["$ref"] for shape in shapes]
    assert refs == ["#/components/schemas/Point"] * 2 + ["#/components/schemas/Point_2"] * 2
    assert writer.defs["Point_2"]["properties"] == {"z": {"type": "string"}}


@pytest.mark.parametrize("library", ["pydantic", "msgspec"])
def test_models_share_the_writers_definitions(library: str) -> None:
    cls = Model if library == "pydantic" else Struct
    writer = SchemaWriter(ref_template="#/components/schemas/{name}")
    schema = writer.write(ModelOf(library, cls))  # type: ignore[arg-type]
    assert "$defs" not in schema
    text = str(schema) + str(writer.defs)
    assert "#/$defs/" not in text


#: 2020-12 in, draft-07 out.
DRAFT7: list[tuple[Any, Any]] = [
    (True, True),
    (
        {"prefixItems": [{"type": "integer"}], "items": False},
        {"items": [{"type": "integer"}], "additionalItems": False},
    ),
    (
        {"prefixItems": [{}], "items": {"type": "string"}},
        {"items": [{}], "additionalItems": {"type": "string"}},
    ),
    (
        {"properties": {"prefixItems": {"prefixItems": [{}]}}},
        {"properties": {"prefixItems": {"items": [{}]}}},
    ),
    (
        {"const": {"prefixItems": [1]}, "enum": [{"prefixItems": [1]}]},
        {"const": {"prefixItems": [1]}, "enum": [{"prefixItems": [1]}]},
    ),
    (
        {"anyOf": [{"additionalProperties": {"prefixItems": []}}]},
        {"anyOf": [{"additionalProperties": {"items": []}}]},
    ),
]


@pytest.mark.parametrize(("schema", "expected"), DRAFT7)
def test_draft7(schema: Any, expected: Any) -> None:
    assert draft7(schema) == expected
