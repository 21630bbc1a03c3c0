"""Compiled checkers of the shapes that hold no others: JSON scalars, the string forms
(``datetime``, ``date``, ``UUID``, ``Decimal``), literals and enums (the part of
:mod:`eventrabbit.validate` at the tips of a tree).

Inbound, a scalar must have its exact JSON type (``True`` is no ``int``, ``1`` no ``bool``; an
``int`` is a ``float``, handed over as one); a string form is parsed from the standard form
JSON Schema names it by, strictly (``Decimal(" 1_0 ")`` would take what the schema refuses);
a literal or an enum is matched by value *and* type. Outbound, whatever orjson writes as that
JSON type passes (an ``IntEnum`` is an ``int``), and a ``Decimal`` is written as its string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from .containers import Compiled
from .errors import InvalidData
from .mismatch import describe, shown, wrong
from .shapes import EnumOf, LiteralOf

_EXACT: dict[str, type] = {"int": int, "str": str, "bool": bool, "none": type(None)}
_HASHABLE = frozenset({str, int, float, bool, type(None)})
_OUT_FITS: dict[str, Callable[[Any], bool]] = {
    "int": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "str": lambda value: isinstance(value, str),
    "bool": lambda value: value is True or value is False,
    "none": lambda value: value is None,
}


def _wrong_of(kind: type, value: Any) -> InvalidData:
    return wrong("None" if kind is type(None) else kind.__name__, value)


def compile_scalar(kind: str, out: bool) -> Compiled:
    """``int``, ``float``, ``str``, ``bool`` or ``None``."""
    if kind == "float":

        def number(value: Any) -> Any:
            if type(value) is float or (out and isinstance(value, float)):
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                return value if out else float(value)
            raise wrong("float", value)

        return number, not out
    expected = _EXACT[kind]
    if out:
        # What orjson writes as that JSON type: subclasses too (an IntEnum), never a bool
        # for an int.
        fits = _OUT_FITS[kind]

        def loose(value: Any) -> Any:
            if not fits(value):
                raise _wrong_of(expected, value)
            return value

        return loose, False

    def exactly(value: Any) -> Any:
        if type(value) is not expected:
            raise _wrong_of(expected, value)
        return value

    return exactly, False


# The same pattern as the JSON Schema eventrabbit writes (schema.DECIMAL_PATTERN): a finite
# number, no spaces or underscores, which Decimal() alone would take.
_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


def _parse_datetime(text: str) -> datetime:
    if len(text) <= 10:  # a date alone: fromisoformat would take it as midnight
        raise ValueError(text)
    return datetime.fromisoformat(text)


def _parse_decimal(text: str) -> Decimal:
    if not _DECIMAL.match(text):
        raise ValueError(text)
    return Decimal(text)


def _parse_uuid(text: str) -> UUID:
    if not _UUID.match(text):
        raise ValueError(text)
    return UUID(text)


_FORMS: dict[str, tuple[type, Callable[[str], Any]]] = {
    "date-time": (datetime, _parse_datetime),
    "date": (date, date.fromisoformat),
    "uuid": (UUID, _parse_uuid),
    "decimal": (Decimal, _parse_decimal),
}


def compile_form(kind: str, out: bool) -> Compiled:
    """A ``datetime``, ``date``, ``UUID`` or ``Decimal``, as its string."""
    cls, parse = _FORMS[kind]
    expected = f"{kind} string"

    def parsed(value: Any) -> Any:
        if type(value) is not str:
            raise wrong(expected, value)
        try:
            return parse(value)
        except (ValueError, InvalidOperation):
            raise InvalidData(f"expected {expected}, got {shown(value)}") from None

    def written(value: Any) -> Any:
        if not isinstance(value, cls) or (cls is date and isinstance(value, datetime)):
            parsed(value)
            return value  # a string in the right form goes out as it is
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise InvalidData(f"expected {expected}, got {value}")
            return str(value)  # orjson cannot write a Decimal
        return value  # orjson writes datetime, date and UUID in their standard forms

    return (written, kind == "decimal") if out else (parsed, True)


def compile_choice(shape: LiteralOf | EnumOf, out: bool) -> Compiled:
    """One of a literal's values, or an enum's member by its value."""
    if isinstance(shape, LiteralOf):
        allowed = {(type(value), value): value for value in shape.values}
    else:
        allowed = {(type(member.value), member.value): member for member in shape.enum}
    enum_cls = shape.enum if isinstance(shape, EnumOf) else None
    expected = describe(shape)

    def chosen(value: Any) -> Any:
        if out and enum_cls is not None and isinstance(value, enum_cls):
            return value
        kind = _json_type(value) if out else type(value)
        if kind in _HASHABLE and (kind, value) in allowed:
            return value if out else allowed[kind, value]
        raise InvalidData(f"expected {expected}, got {shown(value)}")

    return chosen, not out and enum_cls is not None


def _json_type(value: Any) -> type:
    """The JSON scalar type a value is written as (an ``IntEnum`` is an ``int``)."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind
    return type(value)
