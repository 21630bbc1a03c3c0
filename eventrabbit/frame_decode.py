"""The frames every message costs, decoded to the very objects pamqp builds, without pamqp's
generic walk.

Theory of operation
-------------------
pamqp decodes a frame by walking its class's field list and calling a decoder per field by
type name; for the three frames of a delivery (``Basic.Deliver``, its content header, its
body) and a publisher confirm (``Basic.Ack``) that walk costs more than everything eventrabbit
does with the message. :func:`decode` reads those frames field by field in straight-line code
and builds pamqp's own objects with the attributes pamqp's decoder would set — ``Basic.Deliver``
, ``Basic.Ack``, ``ContentHeader`` with ``Basic.Properties``, ``ContentBody`` — so aiormq and
everything above it sees no difference (``tests/unit/test_frame_decode.py`` decodes the same
frames both ways and compares).

Anything else goes to pamqp: every other method; a frame without its end octet; a content
header with a second flag word; a field that would run past the frame's end; text that is not
UTF-8. Tables (``headers``) and timestamps are decoded by pamqp's own field decoders.
The frames arriving here have already been through the wire reader
(:mod:`eventrabbit.wire`), which mends what pamqp could not decode at all.
"""

from __future__ import annotations

import struct

from pamqp import decode as pamqp_decode
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

#: What aiormq's reader loop takes: octets, channel number, frame.
Received = tuple[int, int, pamqp_frame.FrameTypes]

_METHOD, _HEADER, _BODY, _FRAME_END = 1, 2, 3, 0xCE
_DELIVER = b"\x00\x3c\x00\x3c"  # class 60 (basic), method 60 (deliver)
_ACK = b"\x00\x3c\x00\x50"  # class 60, method 80
_U64 = struct.Struct(">Q").unpack_from
_HEADER_HEAD = struct.Struct(">HHQH").unpack_from  # class, weight, body size, flags
_new = object.__new__

# The properties in wire order: flag bit, attribute, kind (s: shortstr, o: octet,
# t: table, T: timestamp).
_PROPERTIES = (
    (0x8000, "content_type", "s"),
    (0x4000, "content_encoding", "s"),
    (0x2000, "headers", "t"),
    (0x1000, "delivery_mode", "o"),
    (0x0800, "priority", "o"),
    (0x0400, "correlation_id", "s"),
    (0x0200, "reply_to", "s"),
    (0x0100, "expiration", "s"),
    (0x0080, "message_id", "s"),
    (0x0040, "timestamp", "T"),
    (0x0020, "message_type", "s"),
    (0x0010, "user_id", "s"),
    (0x0008, "app_id", "s"),
    (0x0004, "cluster_id", "s"),
)
#: What pamqp's ``Basic.Properties()`` holds before it decodes any property.
_ABSENT: dict[str, object] = {name: None for _, name, _ in _PROPERTIES} | {"cluster_id": ""}


def decode(data: bytes) -> Received:
    """One whole frame (type, channel, size, payload, end octet) as pamqp's objects.

    :raises pamqp.exceptions.PAMQPException: what pamqp says of a frame it cannot decode.
    """
    kind = data[0]
    if data[-1] == _FRAME_END and len(data) > 7:
        channel = data[1] << 8 | data[2]
        try:
            if kind == _BODY:
                return len(data), channel, ContentBody(data[7:-1])
            if kind == _HEADER:
                return len(data), channel, _header(data)
            if kind == _METHOD and data[7:11] == _DELIVER:
                return len(data), channel, _deliver(data)
            if kind == _METHOD and data[7:11] == _ACK and len(data) == 21:
                ack = _new(Basic.Ack)
                ack.delivery_tag = _U64(data, 11)[0]
                ack.multiple = bool(data[19] & 1)
                return len(data), channel, ack
        except (IndexError, ValueError, struct.error):
            pass  # pamqp decodes it below, or raises what it finds wrong
    return pamqp_frame.unmarshal(data)


def _text(data: bytes, at: int, end: int) -> tuple[str, int]:
    """The shortstr at ``at`` and the offset after it, not past ``end``."""
    after = at + 1 + data[at]
    if after > end:
        raise ValueError("past the frame's end")
    return data[at + 1 : after].decode("utf-8"), after


def _deliver(data: bytes) -> Basic.Deliver:
    end = len(data) - 1
    consumer_tag, at = _text(data, 11, end)
    if at + 9 > end:
        raise ValueError("past the frame's end")
    delivery_tag = _U64(data, at)[0]
    redelivered = bool(data[at + 8] & 1)
    exchange, at = _text(data, at + 9, end)
    routing_key, at = _text(data, at, end)
    deliver = _new(Basic.Deliver)
    deliver.consumer_tag = consumer_tag
    deliver.delivery_tag = delivery_tag
    deliver.redelivered = redelivered
    deliver.exchange = exchange
    deliver.routing_key = routing_key
    return deliver


def _header(data: bytes) -> ContentHeader:
    end = len(data) - 1
    class_id, weight, body_size, flags = _HEADER_HEAD(data, 7)
    if flags & 1:
        raise ValueError("a second flag word")  # pamqp decodes those
    values: dict[str, object] = dict(_ABSENT)
    at = 21
    for bit, name, kind in _PROPERTIES:
        if not flags & bit:
            continue
        if kind == "s":
            values[name], at = _text(data, at, end)
        elif kind == "o":
            if at >= end:
                raise ValueError("past the frame's end")
            values[name] = data[at]
            at += 1
        elif kind == "T":
            if at + 8 > end:
                raise ValueError("past the frame's end")
            values[name] = pamqp_decode.timestamp(data[at : at + 8])[1]
            at += 8
        else:
            size, values[name] = pamqp_decode.field_table(data[at:end])
            at += size
    properties = _new(Basic.Properties)
    for name, value in values.items():
        setattr(properties, name, value)
    header = _new(ContentHeader)
    header.class_id = class_id
    header.weight = weight
    header.body_size = body_size
    header.properties = properties
    return header
