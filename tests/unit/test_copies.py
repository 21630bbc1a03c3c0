"""copies.faithful: a failure copy made from the bytes its original arrived with."""

from __future__ import annotations

import struct

import pytest
from pamqp import commands as spec
from pamqp.header import ContentHeader

from eventrabbit.common import RetryConfig
from eventrabbit.copies import DROPPED_HEADER, HEADER_FRAME_OVERHEAD, RawProperties, faithful
from eventrabbit.errors import InvalidMessage
from eventrabbit.failures import (
    ERROR_HEADER,
    MAX_REASON_BYTES,
    ORIGINAL_USER_HEADER,
    QUEUE_HEADER,
    RETRY_COUNT_HEADER,
    Copy,
    DeadLetter,
    Retry,
    plan,
)
from eventrabbit.fields import Entry
from eventrabbit.properties import parse_properties
from tests.unit.test_fields import entry, long
from tests.unit.test_properties import shortstr

FRAME_MAX = 131072
Q = "orders"
ME = "svc"
#: A µs timestamp header pamqp cannot decode, a byte array, a broker header, a nested table.
TABLE = (
    entry(b"sent", "T", struct.pack(">Q", 1_700_000_000_000_000))
    + entry(b"blob", "x", long(b"\x00\xff"))
    + entry(b"x-death", "A", long(b""))
    + entry(b"nested", "F", long(entry(b"k", "b", b"\x07")))
)
RAW = struct.pack(">H", 0x2000 | 0x0080 | 0x0010) + long(TABLE) + shortstr(b"id-\xff")
RAW += shortstr(b"alice-\xfe")


def planned(exc: BaseException, max_retries: int = 0, user: str = ME) -> Copy:
    """What failures.plan makes of the stand-in pamqp-level properties of RAW."""
    stand_in = spec.Basic.Properties(message_id="id-\\xff", user_id="alice-\\xfe", headers={})
    return plan(stand_in, exc, RetryConfig(max_retries=max_retries), queue=Q, user=user)


def entries(copy: Copy) -> dict[bytes, Entry]:
    assert isinstance(copy.properties, RawProperties)
    return {e.key: e for e in copy.properties.wire.headers or ()}


def test_a_dead_letter_keeps_every_header_byte_for_byte_but_the_brokers() -> None:
    copy = faithful(RAW, planned(InvalidMessage("the message could not be decoded: x")), FRAME_MAX)
    original = {e.key: e for e in parse_properties(RAW).headers or ()}
    kept = entries(copy)
    for key in (b"sent", b"blob", b"nested"):
        assert kept[key] == original[key]  # type tag and raw value as they arrived
    assert b"x-death" not in kept
    headers = copy.properties.headers
    assert headers[ERROR_HEADER] == "the message could not be decoded: x"
    assert headers[QUEUE_HEADER] == Q
    assert headers[RETRY_COUNT_HEADER] == 0
    assert copy.queue == Q + ".dlq"
    assert isinstance(copy.properties, RawProperties)
    assert copy.properties.wire.get("message_id") == b"id-\xff"  # not the stand-in's text


def test_a_foreign_user_id_moves_into_a_header_with_its_bytes() -> None:
    copy = faithful(RAW, planned(ValueError("no"), max_retries=1), FRAME_MAX)
    assert isinstance(copy.decision, Retry)
    assert copy.queue == Q + ".delay"
    wire = copy.properties.wire  # type: ignore[attr-defined]
    assert wire.get("user_id") is None
    assert entries(copy)[ORIGINAL_USER_HEADER.encode()].value.raw == long(b"alice-\xfe")
    assert entries(copy)[RETRY_COUNT_HEADER.encode()].value.kind == "l"


def test_the_consumers_own_user_id_stays() -> None:
    raw = struct.pack(">H", 0x0010) + shortstr(ME.encode())
    stand_in = spec.Basic.Properties(user_id=ME)
    copy = plan(stand_in, ValueError("no"), RetryConfig(max_retries=0), queue=Q, user=ME)
    made = faithful(raw, copy, FRAME_MAX)
    assert made.properties.wire.get("user_id") == ME.encode()  # type: ignore[attr-defined]
    assert ORIGINAL_USER_HEADER.encode() not in entries(made)


def test_a_copy_too_big_for_a_frame_drops_the_largest_header_and_says_so() -> None:
    big = entry(b"big", "S", long(b"v" * (FRAME_MAX - 60)))
    raw = struct.pack(">H", 0x2000) + long(big + entry(b"small", "S", long(b"s")))
    copy = faithful(raw, planned(ValueError("no")), FRAME_MAX)
    headers = copy.properties.headers
    assert "big" not in headers
    assert headers["small"] == "s"
    assert headers[DROPPED_HEADER] == "big"
    reason = headers[ERROR_HEADER]
    assert reason == f"ValueError: no (headers left out to fit frame_max: see {DROPPED_HEADER})"
    assert isinstance(copy.decision, DeadLetter)
    assert copy.decision.reason == reason
    size = len(ContentHeader(0, 0, copy.properties).marshal()) - 12 + HEADER_FRAME_OVERHEAD
    assert size <= FRAME_MAX


def test_a_long_reason_still_says_what_was_dropped() -> None:
    big = entry(b"big", "S", long(b"v" * (FRAME_MAX - 60)))
    raw = struct.pack(">H", 0x2000) + long(big)
    copy = faithful(raw, planned(ValueError("x" * 10_000)), FRAME_MAX)
    reason = copy.properties.headers[ERROR_HEADER]
    assert len(reason.encode()) <= MAX_REASON_BYTES
    assert reason.endswith(f"see {DROPPED_HEADER})")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"\x20", "cut short", id="cut-short"),
        pytest.param(
            struct.pack(">H", 0x2000) + long(b"\x01k"), "type tag is missing", id="bad-table"
        ),
    ],
)
def test_bytes_that_are_no_property_list_raise(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        faithful(raw, planned(ValueError("no")), FRAME_MAX)
