"""What pamqp can decode: a cheap, conservative check of a content header's properties, run
on every content header a connection reads.

Theory of operation
-------------------
pamqp decodes every frame aiormq reads, and a frame it cannot decode ends the connection. In
a content header it fails on exactly these (at any depth of the headers table):

- a short string (``message_id``, ``reply_to``, ...) or a header key that is not UTF-8;
- a timestamp beyond what it turns into a ``datetime`` (it reads values above ``2**32 - 1`` as
  milliseconds, so microseconds since 1970 or ``2**64 - 1`` fail);
- bytes that are not a well-formed property list (RabbitMQ never delivers such).

:func:`classify` walks the property list once, checking only those, and answers
:data:`CLEAN` (pamqp decodes it and re-encodes it faithfully), :data:`KEEP` (pamqp decodes
it, but a faithful copy needs the bytes: a headers table, a millisecond timestamp, an empty
string pamqp would drop) or :data:`SUSPECT` (pamqp may fail: non-UTF-8 text, a timestamp
beyond pamqp's range, nesting deeper than :data:`~eventrabbit.fields.MAX_DEPTH`, or bytes it
could not walk). Only a suspect is decoded by pamqp on trial; only what pamqp then refuses
gets a stand-in (:mod:`eventrabbit.standins`).

Where there is no headers table, the check leans on RabbitMQ: it parses every property list
when the message is published, so the list's shape is sound, and ASCII text (an ASCII slice
needs no walk) and a last-place timestamp can be checked without walking it.
"""

from __future__ import annotations

import struct

from .fields import MAX_DEPTH, is_utf8
from .properties import LAYOUT, SHORTSTR, TABLE, TIMESTAMP

#: pamqp decodes these properties, and re-encodes them as they were.
CLEAN = 0
#: pamqp decodes these properties, but a faithful copy needs their bytes.
KEEP = 1
#: pamqp may fail on these properties: decode them on trial.
SUSPECT = 2

# The highest timestamp pamqp reads (as milliseconds, up to the year 9999), and the highest
# it reads as seconds, which it also re-encodes as they were.
_STAMP_MAX = 253_402_300_799_000
_SECONDS_MAX = 0xFFFFFFFF
_U32 = struct.Struct(">I").unpack_from
_U64 = struct.Struct(">Q").unpack_from

_S, _O, _T, _F = 0, 1, 2, 3  # short string, octet, timestamp, table
_CODES = {SHORTSTR: _S, TABLE: _F, TIMESTAMP: _T}
# The type codes of the properties each flag word announces, computed once per flag word.
_plans: dict[int, tuple[int, ...]] = {}
# Value sizes by type octet: fixed sizes; -1 length-prefixed; -2 unknown.
_VALUE_SIZES = [-2] * 256
for _tag, _size in zip(b"tbBsuIilLfdDTV", (1, 1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 5, 8, 0), strict=True):
    _VALUE_SIZES[_tag] = _size
for _tag in b"SxAF":
    _VALUE_SIZES[_tag] = -1
_TAG_T, _TAG_F, _TAG_A = ord("T"), ord("F"), ord("A")


def _plan(flags: int) -> tuple[int, ...]:
    plan = tuple(_CODES.get(kind, _O) for _, bit, kind in LAYOUT if flags & bit)
    _plans[flags] = plan
    return plan


def classify(buf: bytes | bytearray, pos: int, end: int) -> int:
    """How pamqp fares with the property list in ``buf[pos:end]`` (flag word first):
    :data:`CLEAN`, :data:`KEEP` or :data:`SUSPECT`. Reads ``buf`` in place (the reader's
    buffer) and never raises."""
    try:
        flags = buf[pos] << 8 | buf[pos + 1]
        if not flags & 0x2003:
            # No headers. RabbitMQ checked the list's shape when it was published, so where
            # the timestamp is last its place is known, and ASCII text (hence UTF-8) is all
            # pamqp needs. A zero octet may be an empty string pamqp would not re-encode.
            if not flags & 0x0040:
                text = buf[pos + 2 : end]
                if text.isascii() and 0 not in text:
                    return CLEAN
            elif not flags & 0x003C:
                text = buf[pos + 2 : end - 8]
                if text.isascii() and 0 not in text and _U64(buf, end - 8)[0] <= _SECONDS_MAX:
                    return CLEAN
            return _walk_plain(buf, pos, end, flags)
        return _walk(buf, pos, end, flags)  # headers or stray flag bits
    except (IndexError, struct.error):
        return SUSPECT  # ran past the buffer: malformed, pamqp decides


def _walk_plain(buf: bytes | bytearray, pos: int, end: int, flags: int) -> int:
    # No headers: find the timestamp, then look at the text around it in two slices.
    start = pos
    pos += 2
    stamp_at = -1
    verdict = CLEAN
    for code in _plans.get(flags) or _plan(flags):
        if code == _S:
            if not buf[pos]:
                verdict = KEEP  # pamqp drops an empty string when it re-encodes
            pos += 1 + buf[pos]
        elif code == _O:
            pos += 1
        else:
            stamp_at = pos
            pos += 8
    if pos != end:
        return SUSPECT
    if stamp_at < 0:
        text_ascii = buf[start + 2 : end].isascii()
    else:
        stamp = _U64(buf, stamp_at)[0]
        if stamp > _SECONDS_MAX:
            if stamp > _STAMP_MAX:
                return SUSPECT
            verdict = KEEP  # pamqp re-encodes milliseconds as seconds
        text_ascii = buf[start + 2 : stamp_at].isascii() and buf[stamp_at + 8 : end].isascii()
    # Not ASCII: a length or octet of 128 or more, or text that may not be UTF-8.
    return verdict if text_ascii else _walk(buf, start, end, flags)


def _walk(buf: bytes | bytearray, pos: int, end: int, flags: int) -> int:
    if flags & 0x0003:
        return SUSPECT
    plan = _plans.get(flags) or _plan(flags)
    pos += 2
    verdict = CLEAN
    for code in plan:
        if code == _S:
            size = buf[pos]
            pos += 1 + size
            if not size:
                verdict = KEEP  # pamqp drops an empty string when it re-encodes
            elif not buf[pos - size : pos].isascii() and not is_utf8(bytes(buf[pos - size : pos])):
                return SUSPECT
        elif code == _O:
            pos += 1
        elif code == _T:
            stamp = _U64(buf, pos)[0]
            pos += 8
            if stamp > _SECONDS_MAX:
                if stamp > _STAMP_MAX:
                    return SUSPECT
                verdict = KEEP  # pamqp re-encodes milliseconds as seconds
        else:
            size = _U32(buf, pos)[0]
            pos += 4
            if pos + size > end or not _table_ok(buf, pos, pos + size, 0):
                return SUSPECT
            pos += size
            verdict = KEEP
    return verdict if pos == end else SUSPECT


def _table_ok(buf: bytes | bytearray, pos: int, end: int, depth: int) -> bool:
    while pos < end:
        size = buf[pos]
        pos += 1 + size
        if not buf[pos - size : pos].isascii() and not is_utf8(bytes(buf[pos - size : pos])):
            return False
        pos = _value_end(buf, pos, end, depth)
        if pos < 0:
            return False
    return pos == end


def _value_end(buf: bytes | bytearray, pos: int, end: int, depth: int) -> int:
    tag = buf[pos]
    pos += 1
    size: int = _VALUE_SIZES[tag]
    if size >= 0:
        if tag == _TAG_T and _U64(buf, pos)[0] > _STAMP_MAX:
            return -1
        return pos + size
    if size == -2:
        return -1
    size = _U32(buf, pos)[0]
    pos += 4
    if pos + size > end:
        return -1
    if tag in (_TAG_F, _TAG_A):
        if depth >= MAX_DEPTH:
            return -1
        if tag == _TAG_F:
            ok = _table_ok(buf, pos, pos + size, depth + 1)
        else:
            ok = _array_ok(buf, pos, pos + size, depth + 1)
        if not ok:
            return -1
    return pos + size


def _array_ok(buf: bytes | bytearray, pos: int, end: int, depth: int) -> bool:
    while pos < end:
        pos = _value_end(buf, pos, end, depth)
        if pos < 0:
            return False
    return pos == end
