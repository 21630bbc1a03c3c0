"""Field-table values as RabbitMQ holds them, and RabbitMQ's equality on them: what a headers
exchange compares. Pure: no state, no I/O.

Theory of operation
-------------------
RabbitMQ never sees a Python value: it sees what the client's codec (pamqp, for aiormq) put
on the wire, and compares what its own parser made of that. So a value is compared here as a
:class:`~eventrabbit.fields.Value` — its type tag and its bytes — made the way pamqp makes it
(:func:`to_value`): an ``int`` in the narrowest of ``b s u I i l``, a ``float`` as a 32-bit
``f`` (``0.1`` becomes ``0.100000001…`` on both sides), a ``datetime`` as whole seconds
``T``, ``str`` as ``S``, ``bytearray`` as ``x``, table keys cut to 128 bytes. ``bytes``
(which pamqp decodes a non-UTF-8 ``S`` to) is an ``S`` again, and a decimal's mantissa is
packed unsigned, as pamqp decodes it and RabbitMQ parses it.

RabbitMQ 3.10 (``rabbit_exchange_type_headers``) compares a binding's value with a header's by
Erlang ``==`` on the parsed values, the types dropped (:func:`values_equal`):

- at the top level a number equals a number of any type with the same value (``1``, ``1.0``,
  a timestamp of 1 second), a ``S`` equals an ``x`` with the same bytes, an empty table equals
  an empty array; ``bool``, decimal (scale and mantissa) and void equal only their own kind;
- inside tables and arrays every element carries its type, so types must agree
  (``{"k": 1}`` is not ``{"k": 1.0}``, ``[True]`` is not ``[1]``, ``D("1")`` is not ``D("1.0")``).

RabbitMQ 3.13 compares with ``=:=`` instead (``strict``): an integer never equals a float.
"""

from __future__ import annotations

import datetime
import decimal
import math
import struct
from collections.abc import Mapping
from typing import Any

from pamqp import encode as pamqp_encode

from ..fields import Value, parse_array, parse_table, read_value, sized

#: The longest key pamqp sends; it cuts longer ones (and logs a warning).
KEY_MAX = 128
#: RabbitMQ's name for each type tag: the one its error messages print.
ERLANG_TYPES = {
    "S": "longstr", "x": "binary", "b": "byte", "B": "unsignedbyte", "s": "short",
    "u": "unsignedshort", "I": "signedint", "i": "unsignedint", "l": "long", "L": "long",
    "f": "float", "d": "double", "D": "decimal", "T": "timestamp", "F": "table", "A": "array",
    "t": "bool", "V": "void",
}  # fmt: skip
_INTEGERS = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I", "l": ">q"}
_INTEGERS.update({"L": ">q", "T": ">Q"})  # a timestamp is its seconds, a number like any
_FLOATS = {"f": ">f", "d": ">d"}
_DECIMAL = struct.Struct(">BI")
#: What pamqp encodes here (and ``None``); containers, decimals and bytes are made here, and
#: a ``struct_time`` has become a ``datetime`` on its way through pamqp
#: (:func:`.wire_arguments.as_sent`).
_LEAVES = (bool, int, float, str, bytearray, datetime.datetime)


def to_value(value: Any) -> Value:
    """``value`` as pamqp puts it on the wire (see the module's doc).

    :raises TypeError: a value pamqp cannot encode either.
    """
    if isinstance(value, bytes):
        return Value("S", sized(value))
    if isinstance(value, decimal.Decimal):
        return Value("D", _decimal(value))
    if isinstance(value, dict):
        return Value("F", sized(b"".join(_entry(k, v) for k, v in sorted(value.items()))))
    if isinstance(value, list):
        return Value("A", sized(b"".join(to_value(item).encode() for item in value)))
    if not isinstance(value, _LEAVES) and value is not None:
        raise TypeError(f"Unknown type: {type(value)} ({value!r})")
    try:
        encoded = pamqp_encode.encode_table_value(value)
    except (OverflowError, struct.error) as exc:  # a float beyond 32 bits
        raise TypeError(f"cannot encode {value!r}: {exc}") from exc
    return read_value(encoded, 0)[0]


def key_bytes(key: str) -> bytes:
    """A table key as sent: UTF-8, cut to :data:`KEY_MAX` bytes (a split character dropped).

    :raises TypeError: a key that is not a ``str``.
    """
    if not isinstance(key, str):
        raise TypeError(f"a table key must be a str, not {type(key).__name__}")
    raw = key.encode()
    return raw if len(raw) <= KEY_MAX else raw[:KEY_MAX].decode("utf-8", "ignore").encode()


def _entry(key: str, value: Any) -> bytes:
    raw = key_bytes(key)
    return bytes((len(raw),)) + raw + to_value(value).encode()


def _decimal(value: decimal.Decimal) -> bytes:
    # pamqp's rules for scale and mantissa; the mantissa goes on the wire as 32 bits either way
    # and comes back unsigned, so a decoded Decimal(4294967295) is the Decimal(-1) sent.
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise TypeError(f"Cannot encode {value} as a decimal")
    scale = 0 if exponent > 0 else -exponent
    mantissa = int(value) if exponent > 0 else int(value.scaleb(scale))
    if not (0 <= scale <= 255 and -(2**31) <= mantissa < 2**32):
        raise TypeError(f"Cannot encode {value} as a decimal")
    return _DECIMAL.pack(scale, mantissa % 2**32)


def table_entries(table: Mapping[str, Any] | None) -> dict[bytes, Value]:
    """A table's entries by key as sent. Keys cut to the same 128 bytes collide: the first
    in sorted order wins, as in RabbitMQ's merge of sorted tables."""
    entries: dict[bytes, Value] = {}
    for key, value in sorted((table or {}).items()):
        entries.setdefault(key_bytes(key), to_value(value))
    return entries


def number(value: Value) -> int | float | None:
    """The number a numeric value holds (a timestamp: its seconds); ``None`` for others."""
    fmt = _INTEGERS.get(value.kind) or _FLOATS.get(value.kind)
    if fmt is None:
        return None
    found: int | float = struct.unpack(fmt, value.raw)[0]
    return found


def is_finite(value: Value) -> bool:
    """Whether ``value`` holds no NaN or infinity at any depth (RabbitMQ cannot parse those)."""
    if value.kind in _FLOATS:
        return math.isfinite(struct.unpack(_FLOATS[value.kind], value.raw)[0])
    if value.kind == "F":
        return all(is_finite(entry.value) for entry in parse_table(value.raw[4:]))
    if value.kind == "A":
        return all(is_finite(item) for item in parse_array(value.raw[4:]))
    return True


def values_equal(a: Value, b: Value, *, strict: bool = False) -> bool:
    """RabbitMQ's equality of two top-level values (the module's doc); ``strict``: 3.13's."""
    x, y = number(a), number(b)
    if x is not None and y is not None:
        return x == y and (not strict or isinstance(x, float) == isinstance(y, float))
    kinds = {a.kind, b.kind}
    if kinds == {"S", "x"}:  # both are Erlang binaries
        return a.raw == b.raw
    if kinds == {"F", "A"}:  # both are Erlang lists: equal only when both are empty
        return a.raw == b.raw == bytes(4)
    return _typed(a, b)


def _typed(a: Value, b: Value) -> bool:
    """Equality of values that carry their type: tag and value must agree."""
    if a.kind != b.kind:
        return False
    if a.kind in _FLOATS:
        return number(a) == number(b)  # -0.0 == 0.0, as in Erlang
    if a.kind == "t":
        return (a.raw != b"\x00") == (b.raw != b"\x00")
    if a.kind == "F":
        ea, eb = parse_table(a.raw[4:]), parse_table(b.raw[4:])
        return len(ea) == len(eb) and all(
            p.key == q.key and _typed(p.value, q.value) for p, q in zip(ea, eb, strict=True)
        )
    if a.kind == "A":
        ia, ib = parse_array(a.raw[4:]), parse_array(b.raw[4:])
        return len(ia) == len(ib) and all(_typed(p, q) for p, q in zip(ia, ib, strict=True))
    return a.raw == b.raw


def erlang_term(value: Value) -> str:
    """``value`` the way RabbitMQ prints it in an error message (``~tp``), near enough."""
    kind, raw = value.kind, value.raw
    if kind in "Sx":
        return _binary(raw[4:])
    if kind == "t":
        return "true" if raw != b"\x00" else "false"
    if kind == "V":
        return "undefined"
    if kind == "D":
        scale, mantissa = _DECIMAL.unpack(raw)
        return f"{{{scale},{mantissa}}}"
    if kind == "A":
        items = (f"{{{ERLANG_TYPES[v.kind]},{erlang_term(v)}}}" for v in parse_array(raw[4:]))
        return f"[{','.join(items)}]"
    if kind == "F":
        entries = (
            f"{{{_binary(e.key)},{ERLANG_TYPES[e.value.kind]},{erlang_term(e.value)}}}"
            for e in parse_table(raw[4:])
        )
        return f"[{','.join(entries)}]"
    return repr(number(value))


def _binary(raw: bytes) -> str:
    # ~tp prints a binary of printable UTF-8 as text, any other as its bytes.
    text = raw.decode("utf-8", "replace")
    if text.isprintable() and "\ufffd" not in text:
        return '<<"' + text.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    return f"<<{','.join(str(byte) for byte in raw)}>>"


def type_name(value: Any) -> str:
    """RabbitMQ's name for the field type ``value`` goes on the wire as (pamqp's choice: the
    smallest signed integer that holds an ``int``, ``float`` for a ``float``, ``longstr`` for
    a ``str``) — the name its errors print.

    :raises TypeError: a value AMQP cannot carry.
    """
    tag = pamqp_encode.encode_table_value(value)[:1].decode()
    return ERLANG_TYPES.get(tag, tag)
