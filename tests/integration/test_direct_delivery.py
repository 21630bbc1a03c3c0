"""Deliveries handed straight to their consumer (eventrabbit.direct_delivery), on a real
connection: when it may, when it must leave them to aiormq's channel reader, and that the
consumer sees every message whole and in order either way.

Real broker only: the in-memory broker's connections have no frame source.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import aiormq
import aiormq.abc
import pytest
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

import eventrabbit.frame_source
from eventrabbit.connection import open_connection
from eventrabbit.direct_delivery import deliver, queued_before
from eventrabbit.frame_decode import Received
from eventrabbit.wire import WireReader
from tests.helpers import DEFAULT_TIMEOUT as WAIT
from tests.helpers import unique

pytestmark = pytest.mark.real_broker


class Consumer:
    """A consumer callback that keeps what it is given."""

    def __init__(self, expect: int) -> None:
        self.messages: list[aiormq.abc.DeliveredMessage] = []
        self.expect = expect
        self.done = asyncio.Event()

    async def __call__(self, message: aiormq.abc.DeliveredMessage) -> None:
        self.messages.append(message)
        if len(self.messages) >= self.expect:
            self.done.set()


@pytest.fixture
async def consuming(
    broker_url: str,
) -> AsyncIterator[tuple[aiormq.abc.AbstractConnection, aiormq.abc.AbstractChannel, str]]:
    """An eventrabbit connection, a channel on it, and the consumer tag of a consumer there."""
    connection = await open_connection(broker_url)
    try:
        channel = await connection.channel()
        queue = unique("direct")
        await channel.queue_declare(queue, auto_delete=True)
        ok = await channel.basic_consume(queue, Consumer(1), no_ack=True)
        assert ok.consumer_tag is not None
        yield connection, channel, ok.consumer_tag
    finally:
        await connection.close()


def content(channel: int, body: bytes, pieces: int = 1) -> list[bytes]:
    """The content header and body frames of ``body`` on ``channel``, as the broker sends them."""
    header = ContentHeader(body_size=len(body), properties=spec.Basic.Properties(message_id="m"))
    step = max(1, -(-len(body) // pieces))
    bodies = [ContentBody(body[i : i + step]) for i in range(0, len(body), step)]
    return [pamqp_frame.marshal(f, channel) for f in (header, *bodies)]


def a_deliver(channel: int, tag: str, delivery_tag: int = 1) -> Received:
    frame = spec.Basic.Deliver(consumer_tag=tag, delivery_tag=delivery_tag, routing_key="k")
    return 40, channel, frame


async def test_a_whole_delivery_goes_straight_to_its_consumer(
    consuming: tuple[aiormq.abc.AbstractConnection, aiormq.abc.AbstractChannel, str],
) -> None:
    connection, channel, tag = consuming
    consumer = Consumer(1)
    channel.consumers[tag] = consumer  # type: ignore[attr-defined]
    reader = WireReader(loop=asyncio.get_running_loop())
    for data in content(channel.number, b"0123456789", pieces=3):
        reader.feed_data(data)
    pending: deque[Received] = deque()
    assert deliver(connection, reader, a_deliver(channel.number, tag), pending)
    assert not pending
    assert not reader._buffer
    await asyncio.wait_for(consumer.done.wait(), WAIT)
    [message] = consumer.messages
    assert message.body == b"0123456789"
    assert message.header.properties.message_id == "m"
    assert message.channel is channel


async def test_what_is_not_whole_or_not_first_goes_aiormqs_way_in_order(
    consuming: tuple[aiormq.abc.AbstractConnection, aiormq.abc.AbstractChannel, str],
) -> None:
    connection, channel, tag = consuming
    number = channel.number
    loop = asyncio.get_running_loop()
    header, *bodies = content(number, b"abcdef", pieces=2)

    # A frame of the channel is queued before it: nothing is taken from the buffer.
    reader = WireReader(loop=loop)
    reader.feed_data(header + b"".join(bodies))
    channel.frames.put_nowait((1, spec.Basic.Cancel(consumer_tag="other")))  # type: ignore[attr-defined]
    assert queued_before(connection, a_deliver(number, tag))
    assert not queued_before(connection, (1, number, spec.Basic.Cancel(consumer_tag="x")))
    pending: deque[Received] = deque()
    assert not deliver(connection, reader, a_deliver(number, tag), pending)
    assert not pending
    assert len(reader._buffer) == len(header) + sum(map(len, bodies))
    channel.frames.get_nowait()  # type: ignore[attr-defined]
    assert not queued_before(connection, a_deliver(number, tag))

    # A read ended inside the message: not yet (None), holding what it took; whole, it goes.
    consumer = Consumer(1)
    channel.consumers[tag] = consumer  # type: ignore[attr-defined]
    reader = WireReader(loop=loop)
    reader.feed_data(header + bodies[0])
    assert deliver(connection, reader, a_deliver(number, tag), pending) is None
    assert [type(f[2]) for f in pending] == [ContentHeader, ContentBody]
    assert not reader._buffer
    reader.feed_data(bodies[1])
    assert deliver(connection, reader, a_deliver(number, tag), pending) is True
    assert not pending
    await asyncio.wait_for(consumer.done.wait(), WAIT)
    assert consumer.messages[0].body == b"abcdef"

    # Something else of the channel came between: aiormq's way, the frames taken in order.
    reader = WireReader(loop=loop)
    reader.feed_data(header + pamqp_frame.marshal(spec.Basic.Cancel(consumer_tag="x"), number))
    assert deliver(connection, reader, a_deliver(number, tag), pending) is False
    assert [type(f[2]) for f in pending] == [ContentHeader, spec.Basic.Cancel]
    pending.clear()
    reader = WireReader(loop=loop)
    reader.feed_data(bodies[0])  # a body frame where the header should be
    assert deliver(connection, reader, a_deliver(number, tag), pending) is False
    assert [type(f[2]) for f in pending] == [ContentBody]

    # No consumer of that tag, or another channel's number: aiormq's way, nothing taken.
    for received in (a_deliver(number, "nobody"), a_deliver(number + 100, tag)):
        channel.consumers[tag] = Consumer(1)  # type: ignore[attr-defined]
        pending.clear()
        reader = WireReader(loop=loop)
        reader.feed_data(header)
        assert not deliver(connection, reader, received, pending)
        assert not pending


async def test_a_consumer_gets_every_message_whole_and_in_order(
    broker_url: str,
    amqp_channel: aiormq.abc.AbstractChannel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Thousands of messages, small and larger than a frame, through a consumer on an
    eventrabbit connection: most go straight to it, all arrive whole, in order."""
    direct = 0

    def counted(*args: object) -> bool | None:
        nonlocal direct
        handed = deliver(*args)  # type: ignore[arg-type]
        direct += handed is True
        return handed

    monkeypatch.setattr(eventrabbit.frame_source, "deliver", counted)
    queue = unique("direct")
    await amqp_channel.queue_declare(queue, auto_delete=False)
    n = 2000
    bodies = [b"%d:" % i + (b"x" * 200_000 if i % 250 == 0 else b"y" * (i % 50)) for i in range(n)]
    try:
        await asyncio.gather(*(amqp_channel.basic_publish(b, routing_key=queue) for b in bodies))
        connection = await open_connection(broker_url)
        try:
            channel = await connection.channel()
            await channel.basic_qos(prefetch_count=100)
            consumer = Consumer(n)

            async def acked(message: aiormq.abc.DeliveredMessage) -> None:
                await consumer(message)
                await channel.basic_ack(message.delivery.delivery_tag)  # type: ignore[union-attr]

            await channel.basic_consume(queue, acked)
            await asyncio.wait_for(consumer.done.wait(), WAIT * 4)
        finally:
            await connection.close()
    finally:
        await amqp_channel.queue_delete(queue)
    assert [m.body for m in consumer.messages] == bodies
    # All but the first few (sent before aiormq registered the consumer) go straight to it,
    # also after a read that ended inside a message left frames queued for aiormq's reader.
    assert direct >= n - 100
