"""Compiled checkers of the shapes that hold others: arrays, dicts, objects, and a handler's
parameters (the part of :mod:`eventrabbit.validate` that walks into values).

Each takes the compiled checks of what it holds (``compile_item``) and returns its own. A
container whose items never change checks them and returns itself; one whose items may change
builds a new one — except a handler's parameters, converted in place (the dict is the one orjson
made for this delivery). Only on a misfit is the path found: the item that failed is looked up
again, so a loop that succeeds tracks no index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .errors import InvalidData
from .mismatch import describe, key, under, wrong
from .shapes import DictOf, ListOf, ObjectOf, Scalar, Shape, TupleOf

Check = Callable[[Any], Any]
Compiled = tuple[Check | None, bool]
CompileItem = Callable[[Shape], Compiled]
_EXACT: dict[str, type] = {"int": int, "str": str, "bool": bool}


def exact_type(shape: Shape, out: bool) -> type | None:
    """The type an inbound JSON value of ``shape`` must have exactly, when that is all there
    is to check (``int``, ``str``, ``bool``): such checks are inlined, not called."""
    return _EXACT.get(shape.kind) if isinstance(shape, Scalar) and not out else None


def _first_misfit(check: Check, items: Any) -> InvalidData:
    for index, item in enumerate(items):
        try:
            check(item)
        except InvalidData as exc:
            return under(exc, index)
    raise AssertionError("a check failed once and not again")  # checks are pure


def _exactly(kind: type) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise wrong(kind.__name__, value)
        return value

    return check


def compile_array(shape: ListOf | TupleOf, out: bool, compile_item: CompileItem) -> Compiled:
    """``list[T]``, ``tuple[T, ...]`` and ``tuple[A, B]``: a JSON array (outbound, a list or a
    tuple); a tuple is handed over as a ``tuple``."""
    expected, arrays = describe(shape), (list, tuple) if out else (list,)
    as_tuple = isinstance(shape, TupleOf) and not out
    if isinstance(shape, TupleOf) and not shape.variadic:
        return _fixed(shape, out, compile_item), as_tuple
    only = shape.item if isinstance(shape, ListOf) else shape.items[0]
    item, converts = compile_item(only)
    exact = exact_type(only, out)

    def array(value: Any) -> Any:
        if type(value) not in arrays:
            raise wrong(expected, value)
        if exact is not None:
            for one in value:
                if type(one) is not exact:
                    raise _first_misfit(_exactly(exact), value)
        elif item is not None:
            try:
                if converts:
                    value = [item(one) for one in value]
                else:
                    for one in value:
                        item(one)
            except InvalidData:
                raise _first_misfit(item, value) from None
        return tuple(value) if as_tuple else value

    return array, converts or as_tuple


def _fixed(shape: TupleOf, out: bool, compile_item: CompileItem) -> Check:
    checks = [compile_item(item)[0] for item in shape.items]
    expected, arrays, size = describe(shape), (list, tuple) if out else (list,), len(checks)

    def fixed(value: Any) -> Any:
        if type(value) not in arrays:
            raise wrong(expected, value)
        if len(value) != size:
            raise InvalidData(f"expected {expected}, got {len(value)} items")
        result = list(value)
        for index, check in enumerate(checks):
            if check is not None:
                try:
                    result[index] = check(value[index])
                except InvalidData as exc:
                    raise under(exc, index) from None
        return result if out else tuple(result)

    return fixed


def compile_dict(shape: DictOf, out: bool, compile_item: CompileItem) -> Compiled:
    """``dict[str, T]``: a JSON object with any keys (outbound, all of them strings)."""
    value_check, converts = compile_item(shape.value)
    expected = describe(shape)

    def mapping(value: Any) -> Any:
        if type(value) is not dict and not (out and isinstance(value, dict)):
            raise wrong(expected, value)
        if out and not all(type(name) is str for name in value):
            bad = next(name for name in value if type(name) is not str)
            raise InvalidData(f"expected {expected}, got key {bad!r}")
        if value_check is None:
            return value
        result = {} if converts else value
        for name, item in value.items():
            try:
                checked = value_check(item)
            except InvalidData as exc:
                raise under(exc, key(name)) from None
            if converts:
                result[name] = checked
        return result

    return mapping, converts


def key_check(shape: ObjectOf) -> Callable[[dict[str, Any]], None]:
    """What an object's keys must be: none unknown (unless it takes extra keys), none of the
    required ones missing. The reasons are the ones handlers have always given."""
    accepted = frozenset(name for name, _ in shape.fields)
    required, extra = shape.required, shape.extra

    def keys(value: dict[str, Any]) -> None:
        names = value.keys()
        if not extra and not names <= accepted:
            raise InvalidData(f"unexpected keys {', '.join(sorted(names - accepted))}")
        if not required <= names:
            raise InvalidData(f"missing keys {', '.join(sorted(required - names))}")

    return keys


def compile_object(shape: ObjectOf, out: bool, compile_item: CompileItem) -> Compiled:
    """A ``TypedDict`` (a dict), a dataclass (built from its fields; outbound, an instance)."""
    # ``compile_item`` sees this object through a forward reference while its fields compile.
    fields = [(name, *compile_item(field)) for name, field in shape.fields]
    checks = [(name, check) for name, check, _ in fields if check is not None]
    build = shape.cls if shape.cls is not None and dataclasses.is_dataclass(shape.cls) else None
    converts = any(c for _, _, c in fields) or (build is not None and not out)
    expected, keys = describe(shape), key_check(shape)

    def checked(value: Any, read: Callable[[str], Any], present: Callable[[str], bool]) -> Any:
        result: dict[str, Any] = {}
        for name, check in checks:
            if present(name):
                try:
                    result[name] = check(read(name))
                except InvalidData as exc:
                    raise under(exc, name) from None
        return result

    def instance(value: Any) -> Any:
        if not isinstance(value, build):  # type: ignore[arg-type]
            raise wrong(expected, value)
        result = checked(value, value.__getattribute__, lambda _: True)
        if not converts:
            return value
        every = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        return every | result

    def mapping(value: Any) -> Any:
        if type(value) is not dict and not (out and isinstance(value, dict)):
            raise wrong(expected, value)
        keys(value)
        result = checked(value, value.__getitem__, value.__contains__)
        data = value | result if converts else value
        if build is None or out:
            return data
        try:
            return build(**data)
        except Exception as exc:  # noqa: BLE001 — the class's own checks refused the data
            raise InvalidData(f"{expected}() refused it: {type(exc).__name__}: {exc}") from None

    return (instance if out and build is not None else mapping), converts


def compile_parameters(shape: ObjectOf, compile_item: CompileItem) -> Check:
    """A handler's parameters: ``data``'s keys, checked and converted in place."""
    keys = key_check(shape)
    exact = tuple((n, kind) for n, s in shape.fields if (kind := exact_type(s, False)))
    inline = {name for name, _ in exact}
    others = tuple(
        (name, check)
        for name, field in shape.fields
        if name not in inline and (check := compile_item(field)[0]) is not None
    )

    def parameters(data: dict[str, Any]) -> dict[str, Any]:
        keys(data)
        # Plain scalars without a call each: most handlers take only those.
        for name, kind in exact:
            if name in data and type(data[name]) is not kind:
                raise under(wrong(kind.__name__, data[name]), name)
        for name, check in others:
            if name in data:
                try:
                    data[name] = check(data[name])
                except InvalidData as exc:
                    raise under(exc, name) from None
        return data

    return parameters
