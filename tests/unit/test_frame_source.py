"""eventrabbit.frame_source.FrameSource against aiormq's own FrameReceiver: the same bytes,
fed as a socket would, give the same frames and the same stashes; the stream's end and a
broken frame mean what they meant to aiormq. No broker."""

from __future__ import annotations

import asyncio

import pytest
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError
from pamqp import frame as pamqp_frame
from pamqp.base import Frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from eventrabbit.frame_source import FrameSource
from eventrabbit.wire import WireReader
from tests.unit.test_wire_reader import (
    CHANNEL,
    PLAIN,
    POISON,
    WITH_HEADERS,
    frame,
    message,
    read_all,
)


def _reader() -> WireReader:
    made = WireReader(loop=asyncio.get_running_loop())
    made.watch(CHANNEL)
    return made


async def _from_source(reader: WireReader, data: bytes, piece: int, count: int) -> list[object]:
    source = FrameSource(reader)

    async def feed() -> None:
        for start in range(0, len(data), piece):
            reader.feed_data(data[start : start + piece])
            await asyncio.sleep(0)

    feeding = asyncio.create_task(feed())
    frames = []
    for _ in range(count):
        size, channel, received = await source.__anext__()
        frames.append((channel, received))
        assert size > 0
    await feeding
    assert not reader._buffer
    return frames


def _frames() -> bytes:
    heartbeat = pamqp_frame.marshal(Heartbeat(), 0)
    return message(1, PLAIN) + heartbeat + message(2, POISON) + message(3, WITH_HEADERS)


def _described(received: object) -> tuple[str, object]:
    # pamqp's frames compare by identity: compare what they carry.
    if isinstance(received, ContentHeader):
        return "header", (received.body_size, received.properties.marshal())
    if isinstance(received, ContentBody):
        return "body", received.value
    assert isinstance(received, Frame | Heartbeat)
    return type(received).__name__, received.marshal()


@pytest.mark.parametrize("piece", [1, 5, 7, 8, 13, 64, 100_000])
async def test_the_same_frames_and_stashes_as_aiormqs_receiver(piece: int) -> None:
    data = _frames()
    theirs_reader = _reader()
    theirs = await read_all(theirs_reader, data, piece)
    ours_reader = _reader()
    ours = await _from_source(ours_reader, data, piece, len(theirs))
    assert [_described(f) for _, f in ours] == [_described(f) for f in theirs]
    assert [c for c, _ in ours] == [CHANNEL] * 3 + [0] + [CHANNEL] * 6
    for tag in (1, 2, 3):
        assert ours_reader.take(CHANNEL, tag) == theirs_reader.take(CHANNEL, tag)


async def test_a_body_is_its_payload() -> None:
    reader = _reader()
    reader.feed_data(pamqp_frame.marshal(ContentBody(b'{"a": 1}'), 5))
    size, channel, body = await FrameSource(reader).__anext__()
    assert (size, channel) == (16, 5)
    assert isinstance(body, ContentBody)
    assert body.value == b'{"a": 1}'


async def test_the_end_between_frames_ends_the_iteration() -> None:
    reader = _reader()
    reader.feed_data(message(1, PLAIN))
    reader.feed_eof()
    received = [f async for _, _, f in FrameSource(reader)]
    assert [type(f).__name__ for f in received] == ["Deliver", "ContentHeader", "ContentBody"]


async def test_the_end_inside_a_frame_is_a_connection_error() -> None:
    reader = _reader()
    data = message(1, PLAIN)
    reader.feed_data(data[:-3])
    source = FrameSource(reader)
    await source.__anext__()
    await source.__anext__()
    waiting = asyncio.create_task(source.__anext__())
    await asyncio.sleep(0)
    assert not waiting.done()  # a part of the body: it waits for the rest
    reader.feed_eof()
    with pytest.raises(AMQPConnectionError, match="unexpectedly closed"):
        await waiting


async def test_a_failed_socket_is_a_connection_error() -> None:
    reader = _reader()
    source = FrameSource(reader)
    waiting = asyncio.create_task(source.__anext__())
    await asyncio.sleep(0)
    reader.set_exception(ConnectionResetError("reset by peer"))
    with pytest.raises(AMQPConnectionError, match="reset by peer"):
        await waiting
    with pytest.raises(AMQPConnectionError, match="reset by peer"):
        await source.__anext__()


@pytest.mark.parametrize("kind", [1, 3])  # a header's is mended by the wire reader
async def test_a_frame_without_its_end_octet_is_invalid(kind: int) -> None:
    reader = _reader()
    broken = bytearray(frame(kind, CHANNEL, b"\x00" * 12))
    broken[-1] = 0
    reader.feed_data(bytes(broken))
    with pytest.raises(InvalidFrameError):
        await FrameSource(reader).__anext__()
