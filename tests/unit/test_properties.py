"""eventrabbit.properties and eventrabbit.copies: property lists parsed and emitted byte for
byte, edited, decoded as pamqp decodes them; copies fitted to frame_max and published as
exact bytes through pamqp's own frame marshalling.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.header import ContentHeader

from eventrabbit.copies import HEADER_FRAME_OVERHEAD, NOTE_MAX, RawProperties, fit
from eventrabbit.fields import Entry, Value
from eventrabbit.properties import WireProperties, parse_properties
from tests.unit.test_fields import EVERY_TYPE, entry, long

STAMP = datetime.fromtimestamp(1_700_000_000, tz=UTC)

#: Property lists as pamqp writes them.
PAMQP_MADE = [
    spec.Basic.Properties(),
    spec.Basic.Properties(content_type="application/json", delivery_mode=2),
    spec.Basic.Properties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={"x-retry-count": 3, "trace": "abc", "nested": {"a": [1, "b"]}},
        delivery_mode=1,
        priority=9,
        correlation_id="c",
        reply_to="amq.rabbitmq.reply-to",
        expiration="60000",
        message_id="m" * 32,
        timestamp=STAMP,
        message_type="t",
        user_id="guest",
        app_id="app",
    ),
    spec.Basic.Properties(headers={}),
]


def every_type_table() -> bytes:
    return b"".join(entry(f"k{i}".encode(), tag, raw) for i, (tag, raw, _) in enumerate(EVERY_TYPE))


def shortstr(raw: bytes) -> bytes:
    return bytes((len(raw),)) + raw


#: Property lists pamqp does not write (and partly cannot read), built by hand.
HAND_MADE = [
    struct.pack(">H", 0x2000) + long(every_type_table()),
    struct.pack(">H", 0x0080) + shortstr(b"id\xff"),
    struct.pack(">H", 0x0040) + struct.pack(">Q", 2**64 - 1),
    struct.pack(">H", 0x8000 | 0x0080) + shortstr(b"") + shortstr(b""),
    struct.pack(">H", 0x1000 | 0x0004) + b"\x07" + shortstr(b"cluster"),
]


@pytest.mark.parametrize("properties", PAMQP_MADE)
def test_pamqp_made_lists_round_trip_and_decode_as_pamqp_does(
    properties: spec.Basic.Properties,
) -> None:
    raw = properties.marshal()
    parsed = parse_properties(raw)
    assert parsed.encode() == raw
    header = ContentHeader()
    header.unmarshal(b"\x00\x3c\x00\x00" + b"\x00" * 8 + raw)
    assert RawProperties(parsed) == header.properties


@pytest.mark.parametrize("raw", HAND_MADE)
def test_hand_made_lists_round_trip(raw: bytes) -> None:
    assert parse_properties(raw).encode() == raw
    assert RawProperties(parse_properties(raw)).marshal() == raw


def test_decoded_attributes_of_what_pamqp_refuses() -> None:
    raw = (
        struct.pack(">H", 0x2000 | 0x0080 | 0x0040)
        + long(entry(b"caf\xe9", "T", struct.pack(">Q", 2**64 - 1)))
        + shortstr(b"id\xff")
        + struct.pack(">Q", 1_700_000_000_000_000)
    )
    properties = RawProperties(parse_properties(raw))
    assert properties.message_id == "id\\xff"
    assert properties.timestamp == 1_700_000_000_000_000
    assert properties.headers == {"caf\\xe9": 2**64 - 1}
    assert properties.marshal() == raw


def test_edits_change_only_what_they_name() -> None:
    table = every_type_table() + entry(b"x-death", "A", long(b""))
    raw = struct.pack(">H", 0x2000 | 0x0010) + long(table) + shortstr(b"other-user")
    edited = (
        parse_properties(raw)
        .without_headers(["x-death", b"absent"])
        .with_headers({"k0": "replaced", "x-retry-count": 2})
        .replace("user_id", None)
        .replace("app_id", b"\xffapp")
    )
    original = parse_properties(raw).headers
    assert original is not None
    assert edited.headers == (
        Entry(b"k0", Value("S", long(b"replaced"))),
        *original[1 : len(EVERY_TYPE)],
        Entry(b"x-retry-count", Value("l", struct.pack(">q", 2))),
    )
    assert edited.get("user_id") is None
    assert edited.get("app_id") == b"\xffapp"
    assert parse_properties(edited.encode()) == edited


def test_replace_refuses_what_does_not_fit() -> None:
    properties = WireProperties()
    with pytest.raises(ValueError, match="not a property"):
        properties.replace("headers", b"")
    with pytest.raises(ValueError, match="do not fit"):
        properties.replace("message_id", b"x" * 256)
    with pytest.raises(ValueError, match="do not fit"):
        properties.replace("timestamp", b"\x00")


def test_with_headers_makes_a_table_where_there_was_none() -> None:
    edited = WireProperties().with_headers({"a": True})
    assert edited.encode() == struct.pack(">H", 0x2000) + long(entry(b"a", "t", b"\x01"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "flags are cut short"),
        (b"\x00\x01", "0x0003 are not basic properties"),
        (b"\x80\x00", "content_type is cut short"),
        (b"\x80\x00\x05ab", "needs 5 bytes, has 2"),
        (b"\x20\x00\x00\x00", "headers table's length is cut short"),
        (b"\x20\x00\x00\x00\x00\x03\x01kZ", "unknown field type"),
        (b"\x00\x00\x00", "1 bytes left over"),
    ],
)
def test_malformed_lists_raise_a_clear_error(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_properties(raw)


def test_raw_properties_go_out_verbatim_through_pamqp_frames() -> None:
    raw = HAND_MADE[0]
    header = ContentHeader(body_size=3, properties=RawProperties(parse_properties(raw)))
    frame = pamqp_frame.marshal(header, 5)
    assert frame[7 + 12 : -1] == raw


def test_a_message_id_aiormq_assigns_goes_out() -> None:
    properties = RawProperties(parse_properties(struct.pack(">H", 0x2000) + long(b"")))
    assert properties.message_id is None
    properties.message_id = "assigned"
    assert parse_properties(properties.marshal()).get("message_id") == b"assigned"


def big(key: str, size: int) -> tuple[str, str]:
    return key, "x" * size


def test_fit_leaves_what_fits_alone() -> None:
    properties = WireProperties().with_headers(dict([big("a", 100)]))
    assert fit(properties, 4096).properties is properties
    assert fit(properties, 0).dropped == ()


def test_fit_drops_the_largest_first_and_never_the_kept_ones() -> None:
    properties = WireProperties().with_headers(
        dict([big("small", 10), big("huge", 5000), big("keep", 6000), big("mid", 3000)])
    )
    fitted = fit(properties, 10_000, keep=["keep"])
    assert fitted.dropped == ("huge",)
    assert HEADER_FRAME_OVERHEAD + len(fitted.properties.encode()) <= 10_000
    names = [e.name for e in fitted.properties.headers or ()]
    assert names == ["small", "keep", "mid"]


def test_fit_notes_what_it_dropped_and_makes_room_for_the_note() -> None:
    headers = dict(big(f"h{i:03}", 100) for i in range(200))
    properties = WireProperties().with_headers({"x-dropped": "old", **headers})
    fitted = fit(properties, 4096, note="x-dropped")
    assert HEADER_FRAME_OVERHEAD + len(fitted.properties.encode()) <= 4096
    decoded = RawProperties(fitted.properties).headers
    assert decoded is not None
    note = decoded["x-dropped"]
    assert note.startswith("h000, h001, ")
    assert note.endswith(f" ({len(fitted.dropped)} in all)")
    assert len(note.encode()) <= NOTE_MAX
    assert len(fitted.dropped) + len(decoded) - 1 == 200


def test_fit_refuses_when_the_kept_headers_alone_are_too_big() -> None:
    properties = WireProperties().with_headers(dict([big("keep", 5000), big("other", 10)]))
    with pytest.raises(ValueError, match="kept headers"):
        fit(properties, 4096, keep=["keep"])
