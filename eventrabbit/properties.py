"""A message's content-header properties as bytes: parse without losing anything, edit,
emit. Pure: no I/O, no pamqp.

Theory of operation
-------------------
The property list of a content header is a 16-bit flag word (one bit per property present)
and then the present properties in flag order: short strings (a length octet and bytes), two
octets (``delivery_mode``, ``priority``), a 64-bit timestamp and the headers table.
:class:`WireProperties` keeps each one as the bytes that arrived and the headers as
:class:`~eventrabbit.fields.Entry` values, so emitting what was parsed gives the same bytes,
and an edit changes only what it names.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .fields import (
    Entry,
    decode,
    make_value,
    parse_table,
    short_text,
    sized,
    table_content,
    timestamp_value,
)

SHORTSTR, OCTET, TIMESTAMP, TABLE = "shortstr", "octet", "timestamp", "table"
#: The basic properties in flag order: pamqp's attribute name, flag bit, wire type.
LAYOUT = (
    ("content_type", 0x8000, SHORTSTR),
    ("content_encoding", 0x4000, SHORTSTR),
    ("headers", 0x2000, TABLE),
    ("delivery_mode", 0x1000, OCTET),
    ("priority", 0x0800, OCTET),
    ("correlation_id", 0x0400, SHORTSTR),
    ("reply_to", 0x0200, SHORTSTR),
    ("expiration", 0x0100, SHORTSTR),
    ("message_id", 0x0080, SHORTSTR),
    ("timestamp", 0x0040, TIMESTAMP),
    ("message_type", 0x0020, SHORTSTR),
    ("user_id", 0x0010, SHORTSTR),
    ("app_id", 0x0008, SHORTSTR),
    ("cluster_id", 0x0004, SHORTSTR),
)
KINDS = {name: kind for name, _, kind in LAYOUT}
_SIZES = {OCTET: 1, TIMESTAMP: 8}
_U64 = struct.Struct(">Q")


@dataclass(slots=True, frozen=True)
class WireProperties:
    """Content-header properties as they are on the wire.

    :param values: each present property but ``headers``, in flag order: its pamqp name and
        its bytes (a short string's without the length octet, an octet, the 8 timestamp bytes).
    :param headers: the headers table's entries; ``None`` when there is no headers property.
    """

    values: tuple[tuple[str, bytes], ...] = ()
    headers: tuple[Entry, ...] | None = None

    def get(self, name: str) -> bytes | None:
        """The bytes of property ``name`` (not ``headers``), or ``None`` when absent."""
        for present, raw in self.values:
            if present == name:
                return raw
        return None

    def replace(self, name: str, raw: bytes | None) -> WireProperties:
        """These properties with ``name`` (not ``headers``) set to ``raw``, or removed.

        :raises ValueError: an unknown name, or ``raw`` that does not fit its type.
        """
        kind = KINDS.get(name)
        if kind is None or kind == TABLE:
            raise ValueError(f"{name!r} is not a property replace() sets")
        if raw is not None and (len(raw) > 255 if kind == SHORTSTR else len(raw) != _SIZES[kind]):
            raise ValueError(f"{len(raw)} bytes do not fit {name} ({kind})")
        values = {n: r for n, r in self.values if n != name}
        if raw is not None:
            values[name] = raw
        ordered = tuple((n, values[n]) for n, _, _ in LAYOUT if n in values)
        return WireProperties(ordered, self.headers)

    def without_headers(self, keys: Iterable[str | bytes]) -> WireProperties:
        """These properties without the header entries of ``keys`` (``str`` keys as UTF-8)."""
        if self.headers is None:
            return self
        drop = {k.encode() if isinstance(k, str) else k for k in keys}
        return replace(self, headers=tuple(e for e in self.headers if e.key not in drop))

    def with_headers(self, values: Mapping[str, Any]) -> WireProperties:
        """These properties with header entries set: an existing key keeps its place, a new
        one goes last. Values as :func:`~eventrabbit.fields.make_value` makes them (``str`` as
        ``S``, ``int`` as ``l``, ``bool`` as ``t``, a ``Value`` as it is)."""
        new = {key.encode(): make_value(value) for key, value in values.items()}
        entries = []
        for entry in self.headers or ():
            value = new.pop(entry.key, None)
            entries.append(entry if value is None else Entry(entry.key, value))
        entries.extend(Entry(key, value) for key, value in new.items())
        return replace(self, headers=tuple(entries))

    def encode(self) -> bytes:
        """The flag word and the properties, as a content header carries them."""
        flags, parts = 0, []
        values = dict(self.values)
        for name, bit, kind in LAYOUT:
            if kind == TABLE:
                if self.headers is not None:
                    flags |= bit
                    parts.append(sized(table_content(self.headers)))
                continue
            raw = values.get(name)
            if raw is not None:
                flags |= bit
                parts.append(bytes((len(raw),)) + raw if kind == SHORTSTR else raw)
        return flags.to_bytes(2, "big") + b"".join(parts)

    def decoded(self) -> dict[str, Any]:
        """The properties as pamqp's attributes: text for short strings (escapes where not
        UTF-8, as :func:`~eventrabbit.fields.short_text`), ints, a ``datetime`` (or the
        ``int`` where pamqp has none), headers through :func:`~eventrabbit.fields.decode`.
        A header entry that cannot be decoded at all (malformed nested bytes) is left out:
        these values are for reading; the bytes are what a copy carries."""
        result: dict[str, Any] = {}
        for name, raw in self.values:
            kind = KINDS[name]
            if kind == SHORTSTR:
                result[name] = short_text(raw).decode()
            elif kind == OCTET:
                result[name] = raw[0]
            else:
                seconds = _U64.unpack(raw)[0]
                stamp = timestamp_value(seconds)
                result[name] = seconds if stamp is None else stamp
        if self.headers is not None:
            headers = result["headers"] = {}
            for entry in self.headers:
                try:
                    headers[entry.name] = decode(entry.value)
                except ValueError:
                    continue  # unreadable nested bytes: still carried verbatim by encode()
        return result


def parse_properties(data: bytes) -> WireProperties:
    """Parse a property list (flag word first), as a content header carries it.

    :raises ValueError: flag bits basic properties do not have (continuation words too),
        bytes cut short, bytes left over, or a malformed headers table; the message says which.
    """
    if len(data) < 2:
        raise ValueError("the property flags are cut short")
    flags = int.from_bytes(data[:2], "big")
    if flags & 0x0003:
        raise ValueError(f"property flags {flags:#06x}: bits 0x0003 are not basic properties")
    values = []
    headers = None
    pos = 2
    for name, bit, kind in LAYOUT:
        if not flags & bit:
            continue
        if pos >= len(data):
            raise ValueError(f"property {name} is cut short")
        if kind == SHORTSTR:
            start, pos = pos + 1, pos + 1 + data[pos]
        elif kind == TABLE:
            if pos + 4 > len(data):
                raise ValueError("the headers table's length is cut short")
            start, pos = pos + 4, pos + 4 + int.from_bytes(data[pos : pos + 4], "big")
        else:
            start, pos = pos, pos + _SIZES[kind]
        if pos > len(data):
            raise ValueError(f"property {name} needs {pos - start} bytes, has {len(data) - start}")
        if kind == TABLE:
            headers = parse_table(bytes(data[start:pos]))
        else:
            values.append((name, bytes(data[start:pos])))
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes left over after the properties")
    return WireProperties(tuple(values), headers)


def parses(data: bytes) -> bool:
    """Whether :func:`parse_properties` takes ``data``."""
    try:
        parse_properties(data)
    except ValueError:
        return False
    return True


@dataclass(slots=True, frozen=True)
class Stashed:
    """What a delivery's content header carried, as it arrived (kept by
    :class:`~eventrabbit.wire.WireReader`).

    :param properties: the property list (flag word first), for
        :func:`parse_properties`.
    :param problem: what pamqp could not decode and what the stand-in the delivered message
        carries changed (:mod:`eventrabbit.standins`), or ``None``.
    """

    properties: bytes
    problem: str | None = None

    def parse(self) -> WireProperties:
        """The properties, to edit."""
        return parse_properties(self.properties)
