"""Compiled checkers: a shape tree turned, once, into closures that check and convert values.

Theory of operation
-------------------
:func:`compile_check` walks a shape tree (:mod:`eventrabbit.shapes`) once and returns one
closure per node; on delivery only the closures run — no dispatch on shape types. A closure
takes a value and returns it converted (a ``float`` from an ``int``, a ``datetime`` from its
string, a dataclass from its object), or raises :class:`~eventrabbit.errors.InvalidData`
saying what was expected and what came; the containers it passes through add the path on the
way out (``items[2].price``), so a value that fits never builds one.

Two directions. *Inbound*, data as orjson decoded it: exact JSON types, converted to what the
annotation names. *Outbound*, a result about to be published: the Python values that stand for
them are accepted too (an ``IntEnum`` for an ``int``, a ``datetime``, a dataclass, a model),
and only what orjson cannot write is converted (a ``Decimal``, a model); a result that needs no
conversion is returned as the very same object.

Each node compiles to its check and whether it may return another object than it got: a
container of items that never change checks them and returns itself. ``AnyShape`` compiles to
no check at all. A class that contains itself is compiled once, through a forward reference.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .containers import Check, Compiled, compile_array, compile_dict, compile_object
from .containers import compile_parameters as compile_parameters_of
from .errors import InvalidData
from .leaves import compile_choice, compile_form, compile_scalar
from .mismatch import describe, from_model, wrong
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

_Memo = dict[int, Compiled]


def compile_check(shape: Shape, *, outbound: bool = False) -> Check | None:
    """The checker of ``shape``: inbound (JSON data in) or ``outbound`` (a result out).
    ``None`` when anything fits."""
    return _compile(shape, outbound, {})[0]


def compile_parameters(shape: ObjectOf) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The inbound checker of a handler's parameters: it checks ``data``'s keys and values,
    converts the values in place and returns ``data``."""
    memo: _Memo = {}
    return compile_parameters_of(shape, lambda item: _compile(item, False, memo))


def _compile(shape: Shape, out: bool, memo: _Memo) -> Compiled:
    known = memo.get(id(shape))
    if known is not None:
        return known
    if isinstance(shape, AnyShape):
        return None, False
    if isinstance(shape, Scalar):
        return compile_scalar(shape.kind, out)
    if isinstance(shape, StringForm):
        return compile_form(shape.kind, out)
    if isinstance(shape, ListOf | TupleOf):
        return compile_array(shape, out, lambda item: _compile(item, out, memo))
    if isinstance(shape, DictOf):
        return compile_dict(shape, out, lambda item: _compile(item, out, memo))
    if isinstance(shape, UnionOf):
        return _union(shape, out, memo)
    if isinstance(shape, LiteralOf | EnumOf):
        return compile_choice(shape, out)
    if isinstance(shape, ObjectOf):
        return _object(shape, out, memo)
    return _model(shape, out)


def _object(shape: ObjectOf, out: bool, memo: _Memo) -> Compiled:
    # A class may contain itself: while its fields compile, it is a forward reference to the
    # check being compiled (which may convert, for all anyone knows yet).
    late: list[Check] = []
    memo[id(shape)] = (lambda value: late[0](value)), True
    check, converts = compile_object(shape, out, lambda item: _compile(item, out, memo))
    assert check is not None
    late.append(check)
    memo[id(shape)] = check, converts
    return check, converts


def _union(shape: UnionOf, out: bool, memo: _Memo) -> Compiled:
    compiled = [_compile(option, out, memo) for option in shape.options]
    checks = [check for check, _ in compiled if check is not None]
    if len(checks) < len(compiled):
        return None, False  # one option takes anything
    expected = describe(shape)

    def one_of(value: Any) -> Any:
        deeper: list[InvalidData] = []
        for check in checks:
            try:
                return check(value)
            except InvalidData as exc:
                if exc.path:
                    deeper.append(exc)
        # Exactly one option got past the value's own type: its reason is the useful one.
        raise deeper[0] if len(deeper) == 1 else wrong(expected, value)

    return one_of, any(converts for _, converts in compiled)


def _model(shape: ModelOf, out: bool) -> Compiled:
    # Imported here, only when a user's annotation names one of its classes.
    library = importlib.import_module(shape.library)
    cls, name = shape.cls, shape.cls.__name__
    if shape.library == "pydantic":
        parse: Check = cls.model_validate  # type: ignore[attr-defined]
        dump: Check = lambda model: model.model_dump(mode="json")  # noqa: E731
    else:
        parse = lambda value: library.convert(value, cls)  # noqa: E731
        dump = library.to_builtins

    def parsed(value: Any) -> Any:
        try:
            return parse(value)
        except library.ValidationError as exc:
            raise from_model(shape.library, exc, name) from None
        except Exception as exc:  # noqa: BLE001 — a validator of the user's: bad input too
            raise InvalidData(f"{name} refused it: {type(exc).__name__}: {exc}") from None

    def written(value: Any) -> Any:
        if not isinstance(value, cls):
            raise wrong(name, value)
        return dump(value)

    return (written if out else parsed), True
