"""From annotations to shapes: what a handler's signature says its data and its result are.

Theory of operation
-------------------
At decoration time each parameter's annotation, and the return annotation, is resolved with
:func:`typing.get_type_hints` (so ``from __future__ import annotations`` works) and mapped to a
shape (:mod:`eventrabbit.shapes`) by :func:`shape_of`: one rule per supported annotation,
applied recursively. An annotation no rule fits raises :class:`ConfigurationError` naming the
handler, the parameter and the annotation — nothing is left unchecked silently. Two ways to
leave something unchecked on purpose: ``Annotated[T, Unchecked]`` for one annotation (or any
part of one) and ``check=False`` on a decorator for all of a handler's.

Dataclasses and ``TypedDict`` classes are built once each: a class that contains itself gets
the very node being built (the tree closes a loop). pydantic models and msgspec Structs are
recognised by their metaclass's module, without importing either library.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired, Required, Union
from uuid import UUID

from .errors import ConfigurationError
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


class Unchecked:
    """Marker: ``Annotated[T, Unchecked]`` leaves a parameter, a result or any part of one
    unchecked (handed over as it arrived)."""


ANY = AnyShape()
_SCALARS: dict[Any, Scalar] = {
    kind: Scalar(name)  # type: ignore[arg-type]
    for kind, name in ((int, "int"), (float, "float"), (str, "str"), (bool, "bool"))
}
_SCALARS[None] = _SCALARS[type(None)] = Scalar("none")
# datetime before date: a datetime is a date too.
_FORMS: dict[type, StringForm] = {
    datetime: StringForm("date-time"), date: StringForm("date"),
    UUID: StringForm("uuid"), Decimal: StringForm("decimal"),
}  # fmt: skip
_JSON_SCALARS = (str, int, float, bool, type(None))
#: Classes being built, by class: a class met again inside itself gets its own node.
Building = dict[type, ObjectOf]
_HOW_TO_SKIP = "leave it unchecked with Annotated[..., eventrabbit.Unchecked] or check=False"


def shape_of(hint: Any, building: Building | None = None) -> Shape:
    """The shape of a resolved annotation.

    :raises ConfigurationError: no shape fits it (the message says which part).
    """
    building = {} if building is None else building
    if hint is Any or hint is object:
        return ANY
    if hint is None:
        return _SCALARS[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        if any(meta is Unchecked or isinstance(meta, Unchecked) for meta in hint.__metadata__):
            return ANY
        return shape_of(args[0], building)
    if isinstance(hint, typing.NewType):
        return shape_of(hint.__supertype__, building)
    if origin is Union or origin is types.UnionType:
        return UnionOf(tuple(shape_of(arg, building) for arg in args))
    if origin is Literal:
        if not all(isinstance(value, _JSON_SCALARS) for value in args):
            raise _refuse(hint, "its values must be JSON scalars (str, int, bool, None)")
        return LiteralOf(args)
    if hint is list or origin is list:
        return ListOf(shape_of(args[0], building) if args else ANY)
    if hint is dict or origin is dict:
        if args and args[0] not in (str, Any):
            raise _refuse(hint, "JSON object keys are strings: use dict[str, ...]")
        return DictOf(shape_of(args[1], building) if args else ANY)
    if hint is tuple:
        return TupleOf((ANY,), variadic=True)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return TupleOf((shape_of(args[0], building),), variadic=True)
        return TupleOf(tuple(shape_of(arg, building) for arg in args))
    if isinstance(hint, type):
        return _class_shape(hint, building)
    raise _refuse(hint, "no JSON shape fits it")


def _class_shape(cls: type, building: Building) -> Shape:
    if cls in _SCALARS:
        return _SCALARS[cls]
    for form_type, form in _FORMS.items():
        if issubclass(cls, form_type):
            return form
    if issubclass(cls, enum.Enum):
        if not all(isinstance(member.value, _JSON_SCALARS) for member in cls):
            raise _refuse(cls, "its members' values must be JSON scalars")
        return EnumOf(cls)
    library = model_library(cls)
    if library is not None:
        return ModelOf(library, cls)
    if cls in building:
        return building[cls]
    if issubclass(cls, dict) and hasattr(cls, "__required_keys__"):
        return _object(cls, building, _typeddict_fields)
    if dataclasses.is_dataclass(cls):
        return _object(cls, building, _dataclass_fields)
    raise _refuse(cls, "no JSON shape fits it")


def model_library(cls: type) -> Literal["pydantic", "msgspec"] | None:
    """``"pydantic"`` for a pydantic (v2) model, ``"msgspec"`` for a msgspec ``Struct``,
    ``None`` otherwise — told by the metaclass's module, so neither library is imported."""
    for meta in inspect.getmro(type(cls)):
        top = meta.__module__.partition(".")[0]
        if top == "pydantic" and hasattr(cls, "model_validate"):
            return "pydantic"
        if top == "msgspec" and hasattr(cls, "__struct_fields__"):
            return "msgspec"
    return None


FieldHints = tuple[tuple[tuple[str, Any], ...], frozenset[str]]


def _object(cls: type, building: Building, fields_of: Callable[[type], FieldHints]) -> ObjectOf:
    try:
        hints, required = fields_of(cls)
    except NameError as exc:  # a string annotation naming what the module does not define
        raise _refuse(cls, f"its annotations cannot be resolved ({exc})") from None
    node = ObjectOf(cls.__name__, (), required, cls)
    building[cls] = node
    fields = tuple((name, shape_of(hint, building)) for name, hint in hints)
    # Frozen, yet a class that contains itself must point at its own node: set it once here.
    object.__setattr__(node, "fields", fields)
    return node


def _typeddict_fields(cls: type) -> FieldHints:
    required = set(getattr(cls, "__required_keys__", ()))
    fields = []
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        # __required_keys__ misses Required/NotRequired given as strings (Python < 3.14).
        origin = typing.get_origin(hint)
        if origin is Required or origin is NotRequired:
            (required.add if origin is Required else required.discard)(name)
            hint = typing.get_args(hint)[0]
        fields.append((name, hint))
    return tuple(fields), frozenset(required)


def _dataclass_fields(cls: type) -> FieldHints:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [field for field in dataclasses.fields(cls) if field.init]
    missing = dataclasses.MISSING
    required = {f.name for f in fields if f.default is missing and f.default_factory is missing}
    return tuple((field.name, hints[field.name]) for field in fields), frozenset(required)


def _refuse(hint: Any, why: str) -> ConfigurationError:
    return ConfigurationError(f"cannot check {_name(hint)}: {why}")


def _name(hint: Any) -> str:
    return hint.__qualname__ if isinstance(hint, type) else repr(hint).replace("typing.", "")


# ------------------------------------------------------------------------------ handlers


def parameters_shape(action: str, func: Callable[..., Any], *, check: bool = True) -> ObjectOf:
    """The handler's parameters as an object (``cls`` ``None``): its keyword parameters, which
    of them have no default, and whether it takes ``**kwargs``.

    :raises ConfigurationError: an annotation that cannot be checked or resolved.
    """
    subject = _subject(action, func)
    hints = _hints(subject, func) if check else {}
    fields: list[tuple[str, Shape]] = []
    required: set[str] = set()
    extra = False
    for param in inspect.signature(func).parameters.values():
        hint = hints.get(param.name, Any)
        if param.kind is param.VAR_KEYWORD:
            extra = True
            if not isinstance(_guarded(subject, f"parameter **{param.name}", hint), AnyShape):
                raise ConfigurationError(
                    f"{subject}: **{param.name} takes the keys no parameter "
                    f"names, unchecked: annotate it Any, not {_name(hint)}"
                )
        elif param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            fields.append((param.name, _guarded(subject, f"parameter {param.name!r}", hint)))
            if param.default is param.empty:
                required.add(param.name)
    return ObjectOf(action, tuple(fields), frozenset(required), None, extra)


def result_shape(action: str, func: Callable[..., Any], *, check: bool = True) -> Shape | None:
    """The shape of what ``func`` returns (for ``action``), from its return annotation; ``None``
    when it has none or ``check`` is false.

    :raises ConfigurationError: an annotation that cannot be checked or resolved.
    """
    if not check or "return" not in getattr(func, "__annotations__", {}):
        return None
    subject = _subject(action, func)
    return _guarded(subject, "return annotation", _hints(subject, func)["return"])


def _subject(action: str, func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__qualname__', func)!r} for {action!r}"


def _hints(subject: str, func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # noqa: BLE001 — whatever evaluating a string annotation raised
        raise ConfigurationError(
            f"{subject}: its annotations cannot be resolved ({exc}); define "
            "the types they name at module level, or pass check=False"
        ) from None


def _guarded(subject: str, where: str, hint: Any) -> Shape:
    try:
        return shape_of(hint)
    except ConfigurationError as exc:
        message = f"{subject}: {where}: {exc}; {_HOW_TO_SKIP}"
        raise ConfigurationError(message) from None
