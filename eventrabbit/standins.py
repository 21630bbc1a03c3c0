"""Stand-ins pamqp can decode for frames it cannot: a content header's properties, and the
names in a ``Basic.Deliver``. Pure: bytes in, bytes and problems out.

Theory of operation
-------------------
A stand-in changes only what pamqp refuses, and says what it changed:

- a short string that is not UTF-8 (``message_id``, ``reply_to``, the routing key, ...)
  becomes its text with ``\\xNN`` escapes (:func:`~eventrabbit.fields.short_text`) — the same
  text :class:`~eventrabbit.copies.RawProperties` shows for it, so aiormq still matches a
  returned copy to its publish by ``message_id``;
- a header key that is not UTF-8 becomes its escaped text, its value kept;
- a timestamp pamqp cannot read (property or header), nesting deeper than
  :data:`~eventrabbit.fields.MAX_DEPTH`, or malformed nested bytes are left out;
- if pamqp still refuses the result (it should not), or the property list cannot be parsed
  at all, every property is left out.

Each problem names its place (``property message_id``, ``header 'a.b[2]'``, ``routing key``)
and why; :func:`header_stand_in` joins them into the reason a dead letter carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from pamqp.header import ContentHeader

from .fields import (
    MAX_DEPTH,
    Entry,
    Value,
    is_utf8,
    parse_array,
    parse_table,
    short_text,
    sized,
    table_content,
    timestamp_value,
)
from .properties import KINDS, SHORTSTR, TIMESTAMP, WireProperties, parse_properties

#: How many problems a reason lists before "and N more".
MAX_PROBLEMS = 5
#: A property list with no property: what pamqp always decodes.
EMPTY_PROPERTIES = b"\x00\x00"


@dataclass(slots=True, frozen=True)
class StandIn:
    """A content header's stand-in.

    :param payload: the frame payload to hand pamqp instead (class, weight, body size, the
        mended property list).
    :param problem: what pamqp could not decode, and what was done about it.
    :param properties: the property list a faithful copy starts from: the original, or the
        stand-in's when the original cannot be parsed.
    """

    payload: bytes
    problem: str
    properties: bytes


def refusal(payload: bytes) -> str | None:
    """Why pamqp cannot decode this content-header payload, or ``None`` when it can."""
    try:
        ContentHeader().unmarshal(payload)
    except Exception as exc:  # noqa: BLE001 - anything pamqp raises would end the connection
        return f"{type(exc).__name__}: {exc}"
    return None


def header_stand_in(payload: bytes) -> StandIn | None:
    """Decode a content-header payload with pamqp on trial; ``None`` when pamqp can, else
    a :class:`StandIn` for it."""
    refused = refusal(payload)
    if refused is None:
        return None
    prefix, original = payload[:12], payload[12:]  # class, weight, body size | properties
    try:
        properties, problems = sanitize_properties(original)
    except ValueError as exc:
        properties, problems = EMPTY_PROPERTIES, [f"malformed properties ({exc}) left out"]
        original = EMPTY_PROPERTIES
    if refusal(prefix + properties) is not None:
        problems.append(f"pamqp refused them ({refused}): every property left out")
        properties = original = EMPTY_PROPERTIES
    listed = "; ".join(problems[:MAX_PROBLEMS])
    if len(problems) > MAX_PROBLEMS:
        listed += f"; and {len(problems) - MAX_PROBLEMS} more"
    return StandIn(prefix + properties, f"undecodable properties: {listed}", original)


def deliver_stand_in(payload: bytes, names_at: int) -> tuple[bytes, str] | None:
    """A ``Basic.Deliver`` payload whose exchange and routing key (from ``names_at``) pamqp
    can decode, and the problem; ``None`` when both are UTF-8 already."""
    exchange_end = names_at + 1 + payload[names_at]
    exchange = payload[names_at + 1 : exchange_end]
    routing_key = payload[exchange_end + 1 :]
    problems = [
        f"{what} '{short_text(raw).decode()}' is not UTF-8"
        for what, raw in (("exchange", exchange), ("routing key", routing_key))
        if not is_utf8(raw)
    ]
    if not problems:
        return None
    names = b"".join(bytes((len(s),)) + s for s in (short_text(exchange), short_text(routing_key)))
    return payload[:names_at] + names, "; ".join(problems)


def sanitize_properties(data: bytes) -> tuple[bytes, list[str]]:
    """A stand-in for the property list ``data`` that pamqp can decode, and what changed.

    A short string that is not UTF-8 becomes its :func:`~eventrabbit.fields.short_text` (so
    ``message_id`` and ``reply_to`` stay readable, and equal to what
    :class:`~eventrabbit.properties.RawProperties` shows); a timestamp pamqp cannot read is
    left out; the headers as :func:`sanitize_table` mends them.

    :raises ValueError: ``data`` is not a well-formed property list.
    """
    properties = parse_properties(data)
    problems: list[str] = []
    values = []
    for name, raw in properties.values:
        kind = KINDS[name]
        if kind == SHORTSTR and not is_utf8(raw):
            problems.append(f"property {name} '{short_text(raw).decode()}' is not UTF-8")
            raw = short_text(raw)
        elif kind == TIMESTAMP:
            seconds = int.from_bytes(raw, "big")
            if timestamp_value(seconds) is None:
                problems.append(f"property timestamp {seconds} is out of range")
                continue
        values.append((name, raw))
    headers = properties.headers
    if headers is not None:
        headers, more = sanitize_table(headers)
        problems.extend(more)
    return WireProperties(tuple(values), headers).encode(), problems


def sanitize_table(
    entries: tuple[Entry, ...], path: str = ""
) -> tuple[tuple[Entry, ...], list[str]]:
    """A stand-in for ``entries`` that pamqp can decode, and what had to change.

    A key that is not UTF-8 is replaced by its :func:`short_text`; a value pamqp cannot
    decode (a timestamp out of its range, nesting deeper than :data:`MAX_DEPTH`, nested bytes
    that are not a table or an array) is left out. Nested tables and arrays are mended the
    same way; each problem names its place, as in ``header 'a.b[2]'``.
    """
    problems: list[str] = []
    return _mend_entries(entries, path, 0, problems), problems


def _mend_entries(
    entries: tuple[Entry, ...], path: str, depth: int, problems: list[str]
) -> tuple[Entry, ...]:
    kept = []
    for entry in entries:
        key, name = entry.key, entry.name
        where = f"{path}.{name}" if path else name
        if not is_utf8(key):
            problems.append(f"header '{where}': the key is not UTF-8")
            key = short_text(key)
        value = _mend_value(entry.value, where, depth, problems)
        if value is entry.value and key is entry.key:
            kept.append(entry)
        elif value is not None:
            kept.append(Entry(key, value))
    return tuple(kept)


def _mend_value(value: Value, where: str, depth: int, problems: list[str]) -> Value | None:
    kind = value.kind
    if kind == "T":
        seconds = int.from_bytes(value.raw, "big")
        if timestamp_value(seconds) is None:
            problems.append(f"header '{where}': timestamp {seconds} is out of range")
            return None
        return value
    if kind != "F" and kind != "A":
        return value
    if depth >= MAX_DEPTH:
        problems.append(f"header '{where}': nested deeper than {MAX_DEPTH} levels")
        return None
    try:
        if kind == "F":
            entries = parse_table(value.raw[4:])
        else:
            items = parse_array(value.raw[4:])
    except ValueError as exc:
        problems.append(f"header '{where}': {exc}")
        return None
    if kind == "F":
        kept = _mend_entries(entries, where, depth + 1, problems)
        if len(kept) == len(entries) and all(a is b for a, b in zip(kept, entries, strict=True)):
            return value
        return Value("F", sized(table_content(kept)))
    mended = [
        _mend_value(item, f"{where}[{i}]", depth + 1, problems) for i, item in enumerate(items)
    ]
    if all(new is old for new, old in zip(mended, items, strict=True)):
        return value
    return Value("A", sized(b"".join(item.encode() for item in mended if item is not None)))
