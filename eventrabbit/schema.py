"""Shapes written as JSON Schema (draft 2020-12).

Theory of operation
-------------------
A :class:`SchemaWriter` turns shapes (:mod:`eventrabbit.shapes`) into JSON Schema, one node per
shape. The schemas one writer writes share its ``defs``: a dataclass or ``TypedDict`` is
written once there and referred to by ``$ref`` when it occurs more than once among them or
contains itself — a first pass (:meth:`SchemaWriter.count`) counts each class; without it a
class is written inline. Pydantic models and msgspec structs are written by their own library
(imported only here, only when such a shape occurs) with the writer's ``$ref`` template, their
definitions joining the writer's. ``ref_template`` decides where the definitions live:
``#/$defs/{name}`` for a standalone schema (:func:`json_schema`), ``#/components/schemas/{name}``
in an AsyncAPI document. :func:`draft7` rewrites a 2020-12 schema in draft-07 terms (what
AsyncAPI 3.0's schema format is built on): tuples only, everything else is the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .shapes import (
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

#: The dialect of every schema written here.
DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Where a standalone schema keeps its definitions.
DEFS_TEMPLATE = "#/$defs/{name}"

_SCALARS = {"int": "integer", "float": "number", "str": "string", "bool": "boolean", "none": "null"}
#: A finite decimal number as ``Decimal(str)`` reads it: sign, digits, point, exponent.
DECIMAL_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_FORMS: dict[str, dict[str, Any]] = {
    "date-time": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "uuid": {"type": "string", "format": "uuid"},
    "decimal": {"type": "string", "pattern": DECIMAL_PATTERN},
}


class SchemaWriter:
    """Writes shapes as JSON Schema sharing one set of definitions (``defs``, by name)."""

    def __init__(self, ref_template: str = DEFS_TEMPLATE) -> None:
        self.ref_template = ref_template
        self.defs: dict[str, Any] = {}
        self._counts: Counter[type] = Counter()
        self._names: dict[type, str] = {}
        self._writing: list[type] = []

    def count(self, shapes: Iterable[Shape]) -> None:
        """Count each class's occurrences in ``shapes`` (all that will be written), so that
        those occurring more than once, or inside themselves, become definitions."""
        for shape in shapes:
            self._count(shape, ())

    def _count(self, shape: Shape, path: tuple[type, ...]) -> None:
        if isinstance(shape, ObjectOf):
            if shape.cls is not None:
                self._counts[shape.cls] += 1
                if shape.cls in path:
                    self._counts[shape.cls] += 1  # recursive: must be a definition
                    return
                if self._counts[shape.cls] > 1:
                    return  # its fields were counted already
                path = (*path, shape.cls)
            for _, field in shape.fields:
                self._count(field, path)
        elif isinstance(shape, ListOf):
            self._count(shape.item, path)
        elif isinstance(shape, DictOf):
            self._count(shape.value, path)
        elif isinstance(shape, TupleOf | UnionOf):
            for one in shape.items if isinstance(shape, TupleOf) else shape.options:
                self._count(one, path)

    def write(self, shape: Shape) -> dict[str, Any]:
        """The schema of ``shape``; definitions it needs are added to ``defs``."""
        if isinstance(shape, AnyShape):
            return {}
        if isinstance(shape, Scalar):
            return {"type": _SCALARS[shape.kind]}
        if isinstance(shape, StringForm):
            return dict(_FORMS[shape.kind])
        if isinstance(shape, ListOf):
            return {"type": "array", "items": self.write(shape.item)}
        if isinstance(shape, DictOf):
            return {"type": "object", "additionalProperties": self.write(shape.value)}
        if isinstance(shape, TupleOf):
            return self._tuple(shape)
        if isinstance(shape, UnionOf):
            options = [self.write(option) for option in shape.options]
            return options[0] if len(options) == 1 else {"anyOf": options}
        if isinstance(shape, LiteralOf):
            values = list(shape.values)
            return {"const": values[0]} if len(values) == 1 else {"enum": values}
        if isinstance(shape, EnumOf):
            return {"title": shape.enum.__name__, "enum": [m.value for m in shape.enum]}
        if isinstance(shape, ObjectOf):
            return self._object(shape)
        return self._model(shape)

    def _tuple(self, shape: TupleOf) -> dict[str, Any]:
        if shape.variadic:
            return {"type": "array", "items": self.write(shape.items[0])}
        size = len(shape.items)
        if not size:
            return {"type": "array", "maxItems": 0}
        prefix = [self.write(item) for item in shape.items]
        return {"type": "array", "prefixItems": prefix, "items": False, "minItems": size}

    def _object(self, shape: ObjectOf) -> dict[str, Any]:
        if shape.cls is None:
            return self._fields(shape)
        # A class met inside itself becomes a definition even if it was not counted.
        if self._counts[shape.cls] < 2 and shape.cls not in self._writing:
            self._writing.append(shape.cls)
            try:
                return self._fields(shape)
            finally:
                self._writing.pop()
        name = self._names.get(shape.cls)
        if name is None:
            name = self._names[shape.cls] = self._free_name(shape.name)
            self.defs[name] = {}  # taken before its fields are written: it may contain itself
            self.defs[name] = self._fields(shape)
        return {"$ref": self.ref_template.format(name=name)}

    def _fields(self, shape: ObjectOf) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object"}
        if shape.cls is not None:
            schema["title"] = shape.name
        schema["properties"] = {name: self.write(field) for name, field in shape.fields}
        required = [name for name, _ in shape.fields if name in shape.required]
        if required:
            schema["required"] = required
        if not shape.extra:
            schema["additionalProperties"] = False
        return schema

    def _free_name(self, name: str) -> str:
        """``name``, or ``name_2``, ``name_3``... when another class took it (same name,
        another module)."""
        taken, number = name, 1
        while taken in self.defs:
            number += 1
            taken = f"{name}_{number}"
        return taken

    def _model(self, shape: ModelOf) -> dict[str, Any]:
        if shape.library == "pydantic":
            # pydantic names the class ``{model}`` in its template, msgspec ``{name}``.
            template = self.ref_template.replace("{name}", "{model}")
            schema: dict[str, Any] = shape.cls.model_json_schema(  # type: ignore[attr-defined]
                ref_template=template
            )
            defs = schema.pop("$defs", {})
        else:
            import msgspec.json

            (schema,), defs = msgspec.json.schema_components(
                [shape.cls], ref_template=self.ref_template
            )
        # A library names its definitions after the classes, as this writer does: the same
        # class written twice gives the same definition, which is kept once.
        self.defs.update(defs)
        return schema


def json_schema(shape: Shape) -> dict[str, Any]:
    """A standalone draft 2020-12 schema of ``shape``: ``$schema``, and ``$defs`` if needed."""
    writer = SchemaWriter()
    writer.count([shape])
    schema = writer.write(shape)
    if writer.defs:
        schema = {**schema, "$defs": writer.defs}
    return {"$schema": DIALECT, **schema}


#: Keywords whose value is a schema, a list of schemas, or a map of name to schema.
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
_MANY = ("allOf", "anyOf", "oneOf")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def draft7(schema: Any) -> Any:
    """``schema`` (2020-12) in draft-07 terms: ``prefixItems`` become an ``items`` array and
    what ``items`` said of the rest ``additionalItems``. Values (``const``, ``enum``,
    ``default``, ``examples``) are left alone."""
    if not isinstance(schema, dict):
        return schema  # true or false
    result = dict(schema)
    for key in _ONE:
        if key in schema:
            result[key] = draft7(schema[key])
    for key in _MANY:
        if key in schema:
            result[key] = [draft7(one) for one in schema[key]]
    for key in _MAP:
        if key in schema:
            result[key] = {name: draft7(one) for name, one in schema[key].items()}
    if "prefixItems" in schema:
        result["items"] = [draft7(one) for one in result.pop("prefixItems")]
        if "items" in schema:
            result["additionalItems"] = draft7(schema["items"])
    return result


def action_schemas(
    consumed: Mapping[str, tuple[Shape, Shape | None]], published: Iterable[tuple[str, Shape]]
) -> dict[str, dict[str, Any]]:
    """Each action's standalone schemas: ``data`` (what a handled action's handler takes, else
    what is published), ``result`` (a handler's return, when annotated), ``published`` (what
    this service publishes as the action; ``anyOf`` when its producers differ)."""
    schemas: dict[str, dict[str, Any]] = {}
    for action, (data, result) in consumed.items():
        schemas[action] = {"data": json_schema(data)}
        if result is not None:
            schemas[action]["result"] = json_schema(result)
    distinct: dict[str, dict[str, Shape]] = {}  # action -> schema text -> shape
    for action, shape in published:
        distinct.setdefault(action, {}).setdefault(repr(json_schema(shape)), shape)
    for action, shapes in distinct.items():
        options = tuple(shapes.values())
        schema = json_schema(options[0] if len(options) == 1 else UnionOf(options))
        schemas.setdefault(action, {"data": schema})["published"] = schema
    return schemas
