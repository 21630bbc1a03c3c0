"""eventrabbit.wire.WireReader under aiormq's own FrameReceiver, fed bytes as a socket would
(whole, or in pieces that split frames anywhere): no broker.
"""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest
from aiormq.connection import FrameReceiver
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from eventrabbit import wire
from eventrabbit.properties import Stashed
from eventrabbit.wire import WireReader
from tests.unit.test_fields import entry, long
from tests.unit.test_properties import shortstr

CHANNEL = 3
POISON = (
    struct.pack(">H", 0x2000 | 0x0080 | 0x0040)
    + long(entry(b"caf\xe9", "d", struct.pack(">d", 0.1)))
    + shortstr(b"id\xff")
    + struct.pack(">Q", 2**64 - 1)
)
WITH_HEADERS = spec.Basic.Properties(headers={"n": 1}, message_id="m").marshal()
PLAIN = spec.Basic.Properties(content_type="application/json", message_id="p").marshal()


def deliver(tag: int, routing_key: bytes = b"q", channel: int = CHANNEL) -> bytes:
    payload = (
        struct.pack(">HH", 60, 60)
        + shortstr(b"ctag")
        + struct.pack(">QB", tag, 0)
        + shortstr(b"")
        + shortstr(routing_key)
    )
    return frame(1, channel, payload)


def header(properties: bytes, body_size: int = 2, channel: int = CHANNEL) -> bytes:
    return frame(2, channel, struct.pack(">HHQ", 60, 0, body_size) + properties)


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def message(tag: int, properties: bytes, channel: int = CHANNEL) -> bytes:
    body = pamqp_frame.marshal(ContentBody(b"{}"), channel)
    return deliver(tag, channel=channel) + header(properties, channel=channel) + body


async def read_all(reader: WireReader, data: bytes, piece: int) -> list[object]:
    """Feed ``data`` in pieces of ``piece`` bytes while aiormq's receiver reads its frames."""
    receiver = FrameReceiver(reader)
    count = 0
    at = 0
    while at < len(data):  # count the frames, to read exactly those
        at += 8 + int.from_bytes(data[at + 3 : at + 7], "big")
        count += 1

    async def feed() -> None:
        for start in range(0, len(data), piece):
            reader.feed_data(data[start : start + piece])
            await asyncio.sleep(0)  # let the receiver take what is there, as a socket would

    feeding = asyncio.create_task(feed())
    frames = [(await receiver.get_frame())[2] for _ in range(count)]
    await feeding
    assert not reader._buffer  # nothing left behind, nothing read ahead of aiormq
    return frames


@pytest.fixture
async def reader() -> WireReader:
    made = WireReader(loop=asyncio.get_running_loop())
    made.watch(CHANNEL)
    return made


@pytest.mark.parametrize("piece", [1, 5, 7, 8, 13, 64, 100_000])
async def test_frames_arrive_whole_and_poison_gets_a_stand_in(
    reader: WireReader, piece: int
) -> None:
    heartbeat = pamqp_frame.marshal(Heartbeat(), 0)
    data = message(1, PLAIN) + heartbeat + message(2, POISON) + message(3, WITH_HEADERS)
    frames = await read_all(reader, data, piece)
    kinds = [type(f).__name__ for f in frames]
    assert (
        kinds
        == ["Deliver", "ContentHeader", "ContentBody", "Heartbeat"]
        + [
            "Deliver",
            "ContentHeader",
            "ContentBody",
        ]
        * 2
    )
    stand_in = frames[5]
    assert isinstance(stand_in, ContentHeader)
    assert stand_in.body_size == 2
    assert stand_in.properties.message_id == "id\\xff"
    assert stand_in.properties.timestamp is None
    assert stand_in.properties.headers == {"caf\\xe9": 0.1}
    assert reader.take(CHANNEL, 1) is None  # pamqp reads it and writes it back as it was
    poison = reader.take(CHANNEL, 2)
    assert poison is not None
    assert poison.properties == POISON
    assert poison.problem is not None
    assert "property message_id 'id\\xff' is not UTF-8" in poison.problem
    assert "header 'caf\\xe9': the key is not UTF-8" in poison.problem
    assert reader.take(CHANNEL, 2) is None  # once
    assert reader.take(CHANNEL, 3) == Stashed(WITH_HEADERS)


async def test_a_routing_key_that_is_not_utf8_is_escaped_and_reported(
    reader: WireReader,
) -> None:
    body = pamqp_frame.marshal(ContentBody(b"{}"), CHANNEL)
    data = deliver(9, routing_key=b"key\xff") + header(PLAIN) + body
    frames = await read_all(reader, data, 100_000)
    delivered = frames[0]
    assert isinstance(delivered, spec.Basic.Deliver)
    assert delivered.routing_key == "key\\xff"
    assert delivered.delivery_tag == 9
    assert reader.take(CHANNEL, 9) == Stashed(PLAIN, "routing key 'key\\xff' is not UTF-8")


async def test_unwatched_channels_stash_nothing_but_still_get_stand_ins(
    reader: WireReader, caplog: pytest.LogCaptureFixture
) -> None:
    other = CHANNEL + 1
    with caplog.at_level(logging.WARNING, logger="eventrabbit.wire"):
        frames = await read_all(reader, message(1, POISON, channel=other), 100_000)
    assert isinstance(frames[1], ContentHeader)
    assert reader.take(other, 1) is None
    assert "channel 4: a message's undecodable properties" in caplog.text


async def test_a_channel_opened_again_starts_afresh(reader: WireReader) -> None:
    open_ok = pamqp_frame.marshal(spec.Channel.OpenOk(), CHANNEL)
    await read_all(reader, message(1, WITH_HEADERS) + open_ok + message(2, WITH_HEADERS), 64)
    assert reader.take(CHANNEL, 1) is None
    assert reader.take(CHANNEL, 2) is None  # no longer watched
    reader.watch(CHANNEL)
    await read_all(reader, message(1, WITH_HEADERS), 64)
    assert reader.take(CHANNEL, 1) == Stashed(WITH_HEADERS)


async def test_forget_channel_drops_the_stash(reader: WireReader) -> None:
    await read_all(reader, message(1, WITH_HEADERS), 64)
    reader.forget_channel(CHANNEL)
    assert reader.take(CHANNEL, 1) is None


async def test_the_stash_is_bounded(reader: WireReader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "MAX_STASHED", 2)
    data = b"".join(message(tag, WITH_HEADERS) for tag in (1, 2, 3))
    await read_all(reader, data, 100_000)
    assert reader.take(CHANNEL, 1) is None  # the oldest went
    assert reader.take(CHANNEL, 2) is not None
    assert reader.take(CHANNEL, 3) is not None


async def test_a_protocol_header_from_the_server_passes_through(reader: WireReader) -> None:
    receiver = FrameReceiver(reader)
    reader.feed_data(b"AMQP\x00\x00\x09\x01")
    reader.feed_eof()
    with pytest.raises(Exception, match="Unexpected AMQP protocol header"):
        await receiver.get_frame()


async def test_watch_hands_out_the_live_stash() -> None:
    reader = WireReader(loop=asyncio.get_running_loop())
    stash = reader.watch(CHANNEL)
    assert reader.watch(CHANNEL) is stash
    await read_all(reader, message(1, WITH_HEADERS) + message(2, PLAIN), 100_000)
    assert stash == {1: Stashed(WITH_HEADERS)}  # a clean delivery needs no stash
    assert stash.pop(1) == Stashed(WITH_HEADERS)
    await read_all(reader, message(3, WITH_HEADERS), 100_000)
    reader.forget_channel(CHANNEL)
    assert stash == {}  # emptied for whoever holds it
