"""What a value that does not fit its shape is told: the words of an
:class:`~eventrabbit.errors.InvalidData`.

A reason reads ``<path>: expected <shape>, got <what came>``: the shape as it was annotated
(``list[int]``, ``int | None``, ``User``), what came as its Python type name (``str``,
``dict``) — or, where the type was right and the value was not (a literal, an enum, a string
form), the value itself, cut short. Paths are written as Python would reach the value:
``items[2].price``, ``prices['eur']``.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidData
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

#: The longest value a reason shows.
MAX_SHOWN = 40


def describe(shape: Shape) -> str:
    """A shape as a reason names it: much as it was annotated."""
    if isinstance(shape, Scalar):
        return "None" if shape.kind == "none" else shape.kind
    if isinstance(shape, StringForm):
        return f"{shape.kind} string"
    if isinstance(shape, ListOf):
        return f"list[{describe(shape.item)}]"
    if isinstance(shape, DictOf):
        return f"dict[str, {describe(shape.value)}]"
    if isinstance(shape, TupleOf):
        items = ", ".join(describe(item) for item in shape.items) or "()"
        return f"tuple[{items}, ...]" if shape.variadic else f"tuple[{items}]"
    if isinstance(shape, UnionOf):
        return " | ".join(describe(option) for option in shape.options)
    if isinstance(shape, LiteralOf):
        return "one of " + ", ".join(repr(value) for value in shape.values)
    if isinstance(shape, EnumOf):
        values = ", ".join(repr(member.value) for member in shape.enum)
        return f"{shape.enum.__name__} ({values})"
    if isinstance(shape, ObjectOf | ModelOf):
        return "object" if shape.cls is None else shape.cls.__name__
    assert isinstance(shape, AnyShape)
    return "anything"


def got(value: Any) -> str:
    """What came, by type: ``str``, ``int``, ``None``, ``dict``..."""
    return "None" if value is None else type(value).__name__


def shown(value: Any) -> str:
    """What came, by value, cut to :data:`MAX_SHOWN` characters."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def wrong(expected: str, value: Any) -> InvalidData:
    """``expected <expected>, got <type of value>``."""
    return InvalidData(f"expected {expected}, got {got(value)}")


def under(exc: InvalidData, segment: str | int) -> InvalidData:
    """``exc``, moved one level down: under field ``segment`` (a name) or item ``segment``
    (an index or, already written, a ``['key']``)."""
    step = f"[{segment}]" if isinstance(segment, int) else segment
    inner = exc.path
    exc.path = step + (inner if not inner or inner.startswith("[") else "." + inner)
    return exc


def key(name: str) -> str:
    """The step to a ``dict[str, ...]`` entry: ``['eur']``."""
    return f"[{name!r}]"


def from_model(library: str, error: Any, name: str) -> InvalidData:
    """A pydantic or msgspec ``ValidationError`` as a reason with a path."""
    if library == "pydantic":
        first = error.errors()[0]
        problem, steps = first["msg"], list(first["loc"])
    else:
        # msgspec: "Expected `int`, got `str` - at `$.items[2].price`"
        problem, _, at = str(error).partition(" - at `$")
        steps, at = [], at.rstrip("`")
        if at:
            steps = [at.lstrip(".")]
    exc = InvalidData(f"{problem} ({name}, by {library})")
    for step in reversed(steps):
        under(exc, step if isinstance(step, int | str) else str(step))
    return exc
