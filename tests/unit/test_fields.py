"""eventrabbit.fields: field tables split and emitted byte for byte, values decoded as pamqp
decodes them (and where pamqp refuses), new values made with the documented types.

Tables are built here with ``struct`` by hand, independently of the code under test.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pamqp import decode as pamqp_decode

from eventrabbit.fields import (
    MAX_DEPTH,
    Entry,
    Value,
    decode,
    is_utf8,
    make_value,
    parse_array,
    parse_table,
    short_text,
    sized,
    table_content,
    text,
    timestamp_value,
)


def long(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def entry(key: bytes, tag: str, raw: bytes) -> bytes:
    return bytes((len(key),)) + key + tag.encode() + raw


#: Every RabbitMQ field type: tag, the bytes after the tag, what it decodes to.
EVERY_TYPE: list[tuple[str, bytes, Any]] = [
    ("t", b"\x01", True),
    ("t", b"\x00", False),
    ("b", struct.pack(">b", -128), -128),
    ("B", struct.pack(">B", 255), 255),
    ("s", struct.pack(">h", -32768), -32768),
    ("u", struct.pack(">H", 65535), 65535),
    ("I", struct.pack(">i", -(2**31)), -(2**31)),
    ("i", struct.pack(">I", 2**32 - 1), 2**32 - 1),
    ("l", struct.pack(">q", -(2**63)), -(2**63)),
    ("L", struct.pack(">q", 2**63 - 1), 2**63 - 1),  # RabbitMQ reads L as signed too
    ("f", struct.pack(">f", 0.5), 0.5),
    ("d", struct.pack(">d", 0.1), 0.1),
    ("d", struct.pack(">d", 1e300), 1e300),
    ("D", struct.pack(">Bi", 2, -12345), Decimal("-123.45")),
    ("S", long(b"text"), "text"),
    ("S", long("zürich".encode()), "zürich"),
    ("S", long(b"\xff\xfe"), b"\xff\xfe"),  # not UTF-8: bytes, as pamqp gives
    ("x", long(b"\x00\x01"), bytearray(b"\x00\x01")),
    ("T", struct.pack(">Q", 1_700_000_000), datetime.fromtimestamp(1_700_000_000, tz=UTC)),
    ("T", struct.pack(">Q", 1_700_000_000_000), datetime.fromtimestamp(1_700_000_000, tz=UTC)),
    ("F", long(entry(b"k", "b", b"\x05")), {"k": 5}),
    ("F", long(b""), {}),
    ("A", long(b"b\x01" + b"S" + long(b"x")), [1, "x"]),
    ("A", long(b""), []),
    ("V", b"", None),
]

#: What pamqp refuses, and what decode() makes of it.
REFUSED: list[tuple[str, bytes, Any]] = [
    ("T", struct.pack(">Q", 1_700_000_000_000_000), 1_700_000_000_000_000),  # microseconds
    ("T", struct.pack(">Q", 2**64 - 1), 2**64 - 1),
    ("F", long(entry(b"caf\xe9", "b", b"\x01")), {"caf\\xe9": 1}),
]


@pytest.mark.parametrize(("tag", "raw", "expected"), EVERY_TYPE)
def test_every_type_splits_round_trips_and_decodes_as_pamqp_does(
    tag: str, raw: bytes, expected: Any
) -> None:
    content = entry(b"key", tag, raw)
    (parsed,) = parse_table(content)
    assert parsed == Entry(b"key", Value(tag, raw))
    assert table_content([parsed]) == content
    assert decode(parsed.value) == expected
    assert type(decode(parsed.value)) is type(expected)
    assert decode(parsed.value) == pamqp_decode.field_table(long(content))[1]["key"]


@pytest.mark.parametrize(("tag", "raw", "expected"), REFUSED)
def test_values_pamqp_refuses_decode_tolerantly(tag: str, raw: bytes, expected: Any) -> None:
    content = entry(b"key", tag, raw)
    with pytest.raises((ValueError, OverflowError)):
        pamqp_decode.field_table(long(content))
    (parsed,) = parse_table(content)
    assert table_content([parsed]) == content
    assert decode(parsed.value) == expected


def test_a_table_keeps_order_duplicates_and_odd_keys() -> None:
    content = b"".join(
        [
            entry(b"z", "l", struct.pack(">q", 1)),
            entry(b"a", "d", struct.pack(">d", 0.1)),
            entry(b"z", "S", long(b"again")),
            entry(b"\xff", "V", b""),
            entry(b"", "t", b"\x01"),
        ]
    )
    entries = parse_table(content)
    assert [e.key for e in entries] == [b"z", b"a", b"z", b"\xff", b""]
    assert table_content(entries) == content
    assert entries[3].name == "\\xff"
    assert [e.size for e in entries] == [len(e.encode()) for e in entries]


def test_nested_tables_and_arrays_stay_raw_and_decode_recursively() -> None:
    inner = long(entry(b"deep", "A", long(b"F" + long(entry(b"x", "T", struct.pack(">Q", 5))))))
    content = entry(b"outer", "F", inner)
    (parsed,) = parse_table(content)
    assert parsed.value.raw == inner
    assert decode(parsed.value) == {"deep": [{"x": datetime.fromtimestamp(5, tz=UTC)}]}


def test_nesting_deeper_than_the_limit_is_refused_by_decode() -> None:
    value = b"V"
    for _ in range(MAX_DEPTH + 1):
        value = b"A" + long(value)
    (item,) = parse_array(value)
    with pytest.raises(ValueError, match="nested deeper"):
        decode(item)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x05ab", "key at byte 0 is cut short"),
        (b"\x01k", "type tag is missing"),
        (b"\x01kZ", "unknown field type 'Z'"),
        (b"\x01kl\x00\x00", "needs 8 bytes, has 2"),
        (b"\x01kS\x00\x00", "length of a 'S' value is cut short"),
        (b"\x01kS\x00\x00\x00\x09abc", "needs 13 bytes, has 7"),
        (b"\x01kT" + b"\x00" * 7, "needs 8 bytes"),
    ],
)
def test_truncated_or_garbage_tables_raise_a_clear_error(content: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_table(content)


def test_garbage_arrays_raise_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown field type"):
        parse_array(b"b\x01?")


@pytest.mark.parametrize(
    ("value", "tag", "raw"),
    [
        ("héllo", "S", long("héllo".encode())),
        (b"\xff\x00", "S", long(b"\xff\x00")),
        (bytearray(b"\x01"), "x", long(b"\x01")),
        (True, "t", b"\x01"),
        (False, "t", b"\x00"),
        (3, "l", struct.pack(">q", 3)),
        (-(2**63), "l", struct.pack(">q", -(2**63))),
        (0.1, "d", struct.pack(">d", 0.1)),
        (None, "V", b""),
        (Value("u", b"\x00\x07"), "u", b"\x00\x07"),
    ],
)
def test_make_value_uses_the_documented_types(value: Any, tag: str, raw: bytes) -> None:
    assert make_value(value) == Value(tag, raw)


def test_make_value_refuses_what_it_has_no_type_for() -> None:
    with pytest.raises(OverflowError):
        make_value(2**63)
    with pytest.raises(TypeError, match="no AMQP field type for dict"):
        make_value({})


def test_text_helpers() -> None:
    assert text(b"ok\xff") == "ok\\xff"
    assert short_text(b"\xff" * 100) == b"\\xff" * 63 + b"\\xf"  # cut to 255 bytes
    assert len(short_text("é".encode() * 200)) == 254  # never splits a character
    assert is_utf8("é".encode())
    assert not is_utf8(b"\xe9")
    assert sized(b"ab") == b"\x00\x00\x00\x02ab"


@pytest.mark.parametrize(
    ("seconds", "decodable"),
    [
        (0, True),
        (2**32 - 1, True),
        (253_402_300_799_000, True),  # milliseconds: 9999-12-31T23:59:59
        (253_402_300_800_000, False),
        (1_700_000_000_000_000, False),
        (2**64 - 1, False),
    ],
)
def test_timestamp_value_matches_pamqp(seconds: int, decodable: bool) -> None:
    assert (timestamp_value(seconds) is not None) is decodable
    raw = struct.pack(">Q", seconds)
    if decodable:
        assert pamqp_decode.timestamp(raw)[1] == timestamp_value(seconds)
    else:
        with pytest.raises((ValueError, OverflowError, OSError)):
            pamqp_decode.timestamp(raw)
