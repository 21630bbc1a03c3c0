"""AMQP 0-9-1 field tables as bytes: split without losing a byte, build entries, decode to
Python tolerantly. Pure: no I/O, no pamqp.

Theory of operation
-------------------
pamqp turns a table into a ``dict`` and back, which is not faithful: a double comes back a
32-bit float, an ``l`` integer comes back the narrowest width, keys are re-sorted, and some
values cannot be decoded or re-encoded at all. Here a table is a tuple of :class:`Entry`
(the key's bytes and a :class:`Value`: the one-letter type tag and the value's bytes exactly
as they were on the wire). Splitting reads only the top level — a nested table or array stays
raw bytes — so parsing never recurses and emitting an unedited table is byte-identical.

The types are RabbitMQ's (``rabbit_binary_parser``): ``t`` bool; ``b``/``B`` signed/unsigned
8-bit; ``s``/``u`` 16-bit; ``I``/``i`` 32-bit; ``l`` and ``L`` signed 64-bit; ``f`` float;
``d`` double; ``D`` decimal; ``S`` long string (any bytes); ``x`` byte array; ``A`` array;
``T`` timestamp (unsigned 64-bit); ``F`` table; ``V`` void. Anything else is a
``ValueError``, as are bytes cut short.

pamqp refuses two things in a table, at any depth: a key that is not UTF-8, and a timestamp
it cannot turn into a ``datetime`` (:func:`timestamp_value`). :func:`decode` never refuses:
such a key becomes its text with backslash escapes (:func:`text`), such a timestamp its
integer (:mod:`eventrabbit.standins` makes what pamqp is handed instead).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

#: How deep tables and arrays may nest before a value counts as undecodable (pamqp decodes
#: nested values recursively; a deeper value would exhaust its stack).
MAX_DEPTH = 64
#: The longest key or short string: a short string's length is one octet.
SHORTSTR_MAX = 255

_FIXED = {"t": 1, "b": 1, "B": 1, "s": 2, "u": 2, "I": 4, "i": 4, "l": 8, "L": 8}
_FIXED.update({"f": 4, "d": 8, "D": 5, "T": 8, "V": 0})
_SIZED = frozenset("SxAF")  # a 4-byte length, then that many bytes
_INTS = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I", "l": ">q", "L": ">q"}
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_DOUBLE = struct.Struct(">d")
# pamqp reads a timestamp above 2**32 - 1 as milliseconds.
_SECONDS_MAX = 0xFFFFFFFF


@dataclass(slots=True, frozen=True)
class Value:
    """One field value as on the wire: its type tag and the bytes after the tag."""

    kind: str
    raw: bytes

    def encode(self) -> bytes:
        """The tag and the value's bytes."""
        return self.kind.encode("latin-1") + self.raw


@dataclass(slots=True, frozen=True)
class Entry:
    """One field-table entry as on the wire."""

    key: bytes
    value: Value

    @property
    def name(self) -> str:
        """The key as text (backslash escapes where it is not UTF-8)."""
        return text(self.key)

    @property
    def size(self) -> int:
        """Bytes this entry takes in its table."""
        return 2 + len(self.key) + len(self.value.raw)

    def encode(self) -> bytes:
        """The key as a short string, then the value."""
        return bytes((len(self.key),)) + self.key + self.value.encode()


def text(raw: bytes) -> str:
    """``raw`` as UTF-8 text, bytes that are not UTF-8 written as ``\\xNN`` escapes."""
    return raw.decode("utf-8", "backslashreplace")


def short_text(raw: bytes) -> bytes:
    """:func:`text` of ``raw``, UTF-8 encoded and cut to what a short string holds."""
    return text(raw).encode()[:SHORTSTR_MAX].decode("utf-8", "ignore").encode()


def is_utf8(raw: bytes) -> bool:
    """Whether ``raw`` is valid UTF-8."""
    if raw.isascii():
        return True
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def timestamp_value(seconds: int) -> datetime | None:
    """The ``datetime`` pamqp makes of a timestamp, or ``None`` where pamqp fails on it.

    pamqp reads a value above ``2**32 - 1`` as milliseconds; beyond the year 9999 (such as
    microseconds since 1970, or ``2**64 - 1``) it raises.
    """
    try:
        return datetime.fromtimestamp(
            seconds / 1000.0 if seconds > _SECONDS_MAX else seconds, tz=UTC
        )
    except (OverflowError, OSError, ValueError):
        return None


def read_value(data: bytes, pos: int) -> tuple[Value, int]:
    """The value starting at ``data[pos]`` (its tag) and the position after it.

    :raises ValueError: an unknown tag or a value cut short.
    """
    if pos >= len(data):
        raise ValueError(f"a value's type tag is missing at byte {pos}")
    kind = chr(data[pos])
    pos += 1
    size = _FIXED.get(kind)
    if size is None:
        if kind not in _SIZED:
            raise ValueError(f"unknown field type {kind!r} at byte {pos - 1}")
        if pos + 4 > len(data):
            raise ValueError(f"the length of a {kind!r} value is cut short at byte {pos}")
        size = 4 + _U32.unpack_from(data, pos)[0]
    end = pos + size
    if end > len(data):
        raise ValueError(
            f"a {kind!r} value at byte {pos} needs {size} bytes, has {len(data) - pos}"
        )
    return Value(kind, bytes(data[pos:end])), end


def parse_table(content: bytes) -> tuple[Entry, ...]:
    """Split a table's content (the bytes after its 4-byte length) into its entries.

    :raises ValueError: malformed or cut short; the message says where.
    """
    entries = []
    pos, end = 0, len(content)
    while pos < end:
        key_end = pos + 1 + content[pos]
        if key_end > end:
            raise ValueError(f"a key at byte {pos} is cut short")
        key = bytes(content[pos + 1 : key_end])
        value, pos = read_value(content, key_end)
        entries.append(Entry(key, value))
    return tuple(entries)


def parse_array(content: bytes) -> tuple[Value, ...]:
    """Split an array's content (the bytes after its 4-byte length) into its values.

    :raises ValueError: malformed or cut short.
    """
    values = []
    pos = 0
    while pos < len(content):
        value, pos = read_value(content, pos)
        values.append(value)
    return tuple(values)


def table_content(entries: Iterable[Entry]) -> bytes:
    """A table's content (without its length) holding ``entries`` in order."""
    return b"".join(entry.encode() for entry in entries)


def sized(content: bytes) -> bytes:
    """``content`` behind its 4-byte length, as tables, arrays and long strings are sent."""
    return _U32.pack(len(content)) + content


def make_value(value: Any) -> Value:
    """A new field value: ``str`` as ``S`` (UTF-8), ``bytes`` as ``S`` holding exactly those
    bytes, ``bytearray`` as ``x``, ``bool`` as ``t``, ``int`` as ``l`` (64-bit signed: the
    width RabbitMQ itself writes counts in, and a fixed one, so a header's size does not
    depend on its value), ``float`` as ``d``, ``None`` as ``V``; a :class:`Value` as it is.

    :raises TypeError: any other type. :raises OverflowError: an int beyond 64 bits.
    """
    if isinstance(value, Value):
        return value
    if isinstance(value, bool):
        return Value("t", b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return Value("l", _I64.pack(value) if -(2**63) <= value < 2**63 else _too_big(value))
    if isinstance(value, str):
        return Value("S", sized(value.encode()))
    if isinstance(value, bytearray):
        return Value("x", sized(bytes(value)))
    if isinstance(value, bytes):
        return Value("S", sized(value))
    if isinstance(value, float):
        return Value("d", _DOUBLE.pack(value))
    if value is None:
        return Value("V", b"")
    raise TypeError(f"no AMQP field type for {type(value).__name__}")


def _too_big(value: int) -> bytes:
    raise OverflowError(f"{value} does not fit a 64-bit signed field")


def decode(value: Value, depth: int = 0) -> Any:
    """``value`` as Python, the way pamqp decodes it where pamqp can; where it cannot, a
    timestamp becomes its ``int`` and a key that is not UTF-8 its :func:`text`. An ``S`` that
    is not UTF-8 is ``bytes`` (as in pamqp), ``x`` a ``bytearray``, ``V`` ``None``.

    :raises ValueError: malformed nested content, or nested deeper than :data:`MAX_DEPTH`.
    """
    kind, raw = value.kind, value.raw
    fmt = _INTS.get(kind)
    if fmt is not None:
        return struct.unpack(fmt, raw)[0]
    if kind == "S":
        try:
            return raw[4:].decode()
        except UnicodeDecodeError:
            return raw[4:]
    if kind == "T":
        seconds = _U64.unpack(raw)[0]
        stamp = timestamp_value(seconds)
        return seconds if stamp is None else stamp
    if kind in "FA":
        if depth >= MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if kind == "F":
            return {e.name: decode(e.value, depth + 1) for e in parse_table(raw[4:])}
        return [decode(item, depth + 1) for item in parse_array(raw[4:])]
    if kind == "t":
        return raw != b"\x00"
    if kind == "d":
        return _DOUBLE.unpack(raw)[0]
    if kind == "f":
        return struct.unpack(">f", raw)[0]
    if kind == "D":
        places, mantissa = struct.unpack(">Bi", raw)
        return Decimal(mantissa) * Decimal(10) ** -places
    if kind == "x":
        return bytearray(raw[4:])
    return None  # V
