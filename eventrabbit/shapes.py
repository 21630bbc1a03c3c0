"""The shapes of event data: what a handler's annotations say its ``data`` must look like.

Theory of operation
-------------------
A handler's annotations are compiled once, at decoration time, into a tree of the frozen
dataclasses below (:mod:`eventrabbit.annotations` builds it). Everything else reads the tree,
never the annotations: the validator (:mod:`eventrabbit.validate`) checks and converts data on
delivery, and :mod:`eventrabbit.schema` writes the same tree as JSON Schema. A tree holds only
what JSON can carry and the string forms JSON carries for what it cannot (a ``datetime`` as
an ISO 8601 string): there is one shape per supported annotation and no "anything else" node —
an annotation no shape fits is refused when the handler is decorated.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class AnyShape:
    """Unchecked: ``Any``, no annotation, or a parameter left unchecked on request."""


@dataclass(frozen=True, slots=True)
class Scalar:
    """A JSON scalar: ``int`` (never a ``bool``), ``float`` (an ``int`` too), ``str``,
    ``bool`` (never an ``int``) or ``None``."""

    kind: Literal["int", "float", "str", "bool", "none"]


@dataclass(frozen=True, slots=True)
class StringForm:
    """A value JSON carries as a string in a standard form, parsed and handed to the handler
    as its Python type: ``date-time`` (``datetime``, ISO 8601), ``date`` (``date``), ``uuid``
    (``uuid.UUID``), ``decimal`` (``decimal.Decimal``, its string form)."""

    kind: Literal["date-time", "date", "uuid", "decimal"]


@dataclass(frozen=True, slots=True)
class ListOf:
    """A JSON array of ``item``, handed over as a ``list``."""

    item: Shape


@dataclass(frozen=True, slots=True)
class DictOf:
    """A JSON object with any keys and values of ``value``, handed over as a ``dict``."""

    value: Shape


@dataclass(frozen=True, slots=True)
class TupleOf:
    """A JSON array handed over as a ``tuple``: ``items`` one per position, or, when
    ``variadic``, any number of ``items[0]`` (``tuple[int, ...]``)."""

    items: tuple[Shape, ...]
    variadic: bool = False


@dataclass(frozen=True, slots=True)
class UnionOf:
    """Any one of ``options``, tried in order (``X | Y``, ``Optional[X]``)."""

    options: tuple[Shape, ...]


@dataclass(frozen=True, slots=True)
class LiteralOf:
    """Exactly one of ``values`` (``Literal[...]``; JSON scalars, compared with their type)."""

    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class EnumOf:
    """A member of ``enum``, given by its value (which must be a JSON scalar)."""

    enum: type[enum.Enum]


@dataclass(frozen=True, slots=True)
class ObjectOf:
    """A JSON object with named fields: a ``TypedDict`` (handed over as a ``dict``), a
    dataclass (built with the fields as keyword arguments), or a handler's own parameters
    (``cls`` is ``None``; the fields become its keyword arguments).

    :param fields: each field's name and shape, in declaration order.
    :param required: the names that must be present.
    :param extra: whether keys other than ``fields`` are allowed (a handler taking
        ``**kwargs``); they are passed on unchecked.
    """

    name: str
    fields: tuple[tuple[str, Shape], ...]
    required: frozenset[str]
    cls: type | None = None
    extra: bool = False


@dataclass(frozen=True, slots=True)
class ModelOf:
    """A pydantic model or a msgspec ``Struct``: that library validates and builds it (it is
    imported only where a user already uses it)."""

    library: Literal["pydantic", "msgspec"]
    cls: type


#: Every shape.
Shape = (
    AnyShape
    | Scalar
    | StringForm
    | ListOf
    | DictOf
    | TupleOf
    | UnionOf
    | LiteralOf
    | EnumOf
    | ObjectOf
    | ModelOf
)
