"""eventrabbit.frame_decode.decode against pamqp's own decoder: the same frames give the same
objects with the same values, and what pamqp refuses is refused the same way. No broker."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.base import Frame
from pamqp.body import ContentBody
from pamqp.exceptions import PAMQPException
from pamqp.header import ContentHeader

from eventrabbit.frame_decode import decode

short = st.text(max_size=40)
#: Every property, in pamqp's order.
PROPERTY_NAMES = list(spec.Basic.Properties.__slots__)


def values_of(received: object) -> tuple[str, Any]:
    """Everything a decoded frame holds, comparable."""
    if isinstance(received, ContentHeader):
        properties = {n: getattr(received.properties, n) for n in PROPERTY_NAMES}
        held = (received.class_id, received.weight, received.body_size, properties)
        return "header", held
    if isinstance(received, ContentBody):
        return "body", received.value
    assert isinstance(received, Frame)
    return received.name, {n: getattr(received, n) for n in received.__slots__}


def both(data: bytes) -> tuple[object, object]:
    ours, theirs = decode(data), pamqp_frame.unmarshal(data)
    assert ours[:2] == theirs[:2]
    assert type(ours[2]) is type(theirs[2])
    assert values_of(ours[2]) == values_of(theirs[2])
    return ours[2], theirs[2]


timestamps = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(2100, 1, 1)
).map(lambda moment: moment.replace(microsecond=0, tzinfo=datetime.UTC))
headers = st.dictionaries(
    st.text(max_size=10), st.none() | st.integers(-(2**31), 2**31 - 1) | short | st.booleans()
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "content_type": short,
            "content_encoding": short,
            "headers": headers,
            "delivery_mode": st.sampled_from([1, 2]),
            "priority": st.integers(0, 255),
            "correlation_id": short,
            "reply_to": short,
            "expiration": short,
            "message_id": short,
            "timestamp": timestamps,
            "message_type": short,
            "user_id": short,
            "app_id": short,
        },
    ),
    st.integers(0, 2**63 - 1),
    st.integers(0, 65535),
)
def test_content_headers_decode_as_pamqp_does(
    properties: dict[str, Any], body_size: int, channel: int
) -> None:
    header = ContentHeader(body_size=body_size, properties=spec.Basic.Properties(**properties))
    both(pamqp_frame.marshal(header, channel))


@settings(max_examples=200, deadline=None)
@given(
    short,
    st.integers(0, 2**63 - 1),
    st.booleans(),
    st.from_regex(r"[a-zA-Z0-9_.:-]{0,200}", fullmatch=True),  # pamqp encodes only these
    short,
    st.integers(1, 65535),
)
def test_deliveries_decode_as_pamqp_does(
    consumer_tag: str, tag: int, redelivered: bool, exchange: str, key: str, channel: int
) -> None:
    deliver = spec.Basic.Deliver(consumer_tag, tag, redelivered, "", key)
    deliver.exchange = exchange  # pamqp's constructor caps it at 127: the wire does not
    ours, _ = both(pamqp_frame.marshal(deliver, channel))
    assert isinstance(ours, spec.Basic.Deliver)


@given(st.integers(0, 2**63 - 1), st.booleans(), st.binary(max_size=300))
def test_confirms_and_bodies_decode_as_pamqp_does(tag: int, multiple: bool, body: bytes) -> None:
    both(pamqp_frame.marshal(spec.Basic.Ack(tag, multiple), 1))
    if body:  # pamqp has no empty body frame
        both(pamqp_frame.marshal(ContentBody(body), 1))


def _frame(kind: int, payload: bytes, channel: int = 1) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


HEADER_HEAD = struct.pack(">HHQ", 60, 0, 2)
ODD = [
    # a millisecond timestamp, which pamqp divides by 1000
    _frame(2, HEADER_HEAD + struct.pack(">HQ", 0x0040, 1_700_000_000_000)),
    # a second flag word
    _frame(2, HEADER_HEAD + struct.pack(">HH", 0x8001, 0) + b"\x01a"),
    # other methods: Basic.Nack, Channel.CloseOk, Basic.ConsumeOk
    pamqp_frame.marshal(spec.Basic.Nack(7, True, False), 1),
    pamqp_frame.marshal(spec.Channel.CloseOk(), 1),
    pamqp_frame.marshal(spec.Basic.ConsumeOk("tag"), 1),
    # a content type that runs past the frame: pamqp cuts it short and goes on
    _frame(2, HEADER_HEAD + struct.pack(">H", 0x8000) + b"\x09abc"),
]
BROKEN = [
    # a message id that is not UTF-8
    _frame(2, HEADER_HEAD + struct.pack(">H", 0x0080) + b"\x02\xff\xfe"),
    # a delivery cut short after its consumer tag
    _frame(1, b"\x00\x3c\x00\x3c\x03abc\x00"),
    # a table longer than the frame
    _frame(2, HEADER_HEAD + struct.pack(">HI", 0x2000, 99)),
    # no end octet
    pamqp_frame.marshal(spec.Basic.Ack(1), 1)[:-1] + b"\x00",
]


@pytest.mark.parametrize(
    "data", ODD, ids=["ms-timestamp", "flag-words", "nack", "close", "ok", "past-end"]
)
def test_odd_frames_decode_as_pamqp_does(data: bytes) -> None:
    both(data)


@pytest.mark.parametrize("data", BROKEN, ids=["utf8", "cut", "table", "end"])
def test_what_pamqp_refuses_is_refused(data: bytes) -> None:
    with pytest.raises(PAMQPException) as theirs:
        pamqp_frame.unmarshal(data)
    with pytest.raises(PAMQPException) as ours:
        decode(data)
    assert type(ours.value) is type(theirs.value)


def test_a_delivery_and_a_confirm_never_reach_pamqps_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    # The point of the module: if these fell back to pamqp, nothing above would fail.
    properties = spec.Basic.Properties(
        content_type="application/json",
        headers={"x-retry-count": 1},
        delivery_mode=2,
        message_id="m",
        timestamp=datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC),
    )
    frames = [
        pamqp_frame.marshal(spec.Basic.Deliver("ctag", 5, True, "ex", "rk"), 1),
        pamqp_frame.marshal(ContentHeader(body_size=2, properties=properties), 1),
        pamqp_frame.marshal(ContentBody(b"{}"), 1),
        pamqp_frame.marshal(spec.Basic.Ack(9, True), 1),
    ]
    expected = [values_of(pamqp_frame.unmarshal(f)[2]) for f in frames]

    def walk(data: bytes) -> object:
        raise AssertionError("pamqp's decoder was used")

    monkeypatch.setattr(pamqp_frame, "unmarshal", walk)
    assert [values_of(decode(f)[2]) for f in frames] == expected
