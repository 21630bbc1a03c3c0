"""The wire reader on the real broker: frames pamqp cannot decode do not end the connection,
their exact bytes are kept, and copies published from them arrive byte for byte.

Poison is published by an independent plain aiormq client whose properties (and, for a
routing key, whose method frame) marshal to bytes built here by hand; the consumer is an
aiormq connection made by eventrabbit's ``open_connection`` (the wire transport).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import aiormq
import aiormq.abc
import pytest
from aiormq.abc import ChannelFrame, DeliveredMessage
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from eventrabbit import RetryConfig
from eventrabbit.confirm import publish_confirmed
from eventrabbit.connection import open_connection
from eventrabbit.copies import DROPPED_HEADER, HEADER_FRAME_OVERHEAD, RawProperties, fit
from eventrabbit.failures import BROKER_HEADERS, ERROR_HEADER
from eventrabbit.properties import WireProperties, parse_properties
from eventrabbit.wire import WireReader
from eventrabbit.wire_transport import wire_of
from tests.conftest import Names, Services
from tests.helpers import event, queue_depth
from tests.unit.test_fields import entry, long
from tests.unit.test_properties import every_type_table, shortstr

pytestmark = pytest.mark.real_broker  # a plain aiormq publisher writes what pamqp refuses

TIMEOUT = 10.0
MICROSECONDS = 1_700_000_000_000_000
BODY = b'{"action": "X", "data": {}}'


class Verbatim(spec.Basic.Properties):
    """Properties that marshal to the bytes given: what another client may send."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.raw = raw

    def marshal(self) -> bytes:
        return self.raw


class VerbatimPublish(spec.Basic.Publish):
    """A Basic.Publish whose arguments marshal to the bytes given."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.raw = raw

    def marshal(self) -> bytes:
        return self.raw


def props(flags: int, *parts: bytes) -> bytes:
    return struct.pack(">H", flags) + b"".join(parts)


#: (name, property bytes, a fragment of the problem, or None when pamqp decodes it)
MESSAGES = [
    ("timestamp in µs", props(0x0040, struct.pack(">Q", MICROSECONDS)), "property timestamp"),
    ("timestamp 2**64-1", props(0x0040, struct.pack(">Q", 2**64 - 1)), "property timestamp"),
    (
        "T header in µs",
        props(0x2000, long(entry(b"sent", "T", struct.pack(">Q", MICROSECONDS)))),
        "header 'sent': timestamp",
    ),
    (
        "key not UTF-8",
        props(0x2000, long(entry(b"caf\xe9", "S", long(b"x")))),
        "header 'caf\\xe9': the key is not UTF-8",
    ),
    ("message_id not UTF-8", props(0x0080, shortstr(b"id-\xff")), "property message_id"),
    ("every field type", props(0x2000, long(every_type_table())), None),
    ("S not UTF-8", props(0x2000, long(entry(b"s", "S", long(b"\xff\xfe")))), None),
]


@pytest.fixture
async def publisher(broker_url: str) -> AsyncIterator[aiormq.abc.AbstractChannel]:
    """A confirm channel of a plain aiormq connection: the other client."""
    connection = await aiormq.connect(broker_url)
    try:
        yield await connection.channel(publisher_confirms=True)
    finally:
        await connection.close()


@pytest.fixture
async def consumer_connection(broker_url: str) -> AsyncIterator[aiormq.abc.AbstractConnection]:
    connection = await open_connection(broker_url)
    try:
        yield connection
    finally:
        await connection.close()


class Inbox:
    """Deliveries of one queue on a watched channel, each with what the reader stashed."""

    def __init__(self, channel: aiormq.abc.AbstractChannel, wire: WireReader) -> None:
        self.channel = channel
        self.wire = wire
        self.received: list[tuple[DeliveredMessage, object]] = []
        self._changed = asyncio.Event()

    async def on_message(self, message: DeliveredMessage) -> None:
        tag = message.delivery_tag
        assert tag is not None
        self.received.append((message, self.wire.take(self.channel.number, tag)))
        await self.channel.basic_ack(tag)
        self._changed.set()

    async def until(self, n: int) -> list[tuple[DeliveredMessage, object]]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.received) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.received


def with_aiormqs_id(wire: WireProperties, sent: RawProperties) -> WireProperties:
    """``wire`` with the message_id aiormq gives a publish that has none (to match a return)."""
    if wire.get("message_id") is not None:
        return wire
    assert sent.message_id is not None
    return wire.replace("message_id", sent.message_id.encode())


async def inbox(connection: aiormq.abc.AbstractConnection, queue: str) -> Inbox:
    wire = wire_of(connection)
    assert wire is not None
    channel = await connection.channel()
    wire.watch(channel.number)
    box = Inbox(channel, wire)
    await channel.basic_consume(queue, box.on_message)
    return box


async def test_undecodable_messages_arrive_and_the_connection_stays_up(
    publisher: aiormq.abc.AbstractChannel,
    consumer_connection: aiormq.abc.AbstractConnection,
    names: Names,
) -> None:
    queue = names.queue("wire")
    await publisher.queue_declare(queue)
    for i, (_, raw, _) in enumerate(MESSAGES):
        await publisher.basic_publish(BODY, routing_key=queue, properties=Verbatim(raw))
        await publisher.basic_publish(f"after {i}".encode(), routing_key=queue)
    box = await inbox(consumer_connection, queue)
    received = await box.until(2 * len(MESSAGES))
    assert not consumer_connection.is_closed
    assert [m.redelivered for m, _ in received] == [False] * len(received)  # never redelivered
    for i, (name, raw, problem) in enumerate(MESSAGES):
        (message, stashed), (after, after_stash) = received[2 * i], received[2 * i + 1]
        assert message.body == BODY, name
        assert after.body == f"after {i}".encode(), name
        assert after_stash is None
        assert stashed is not None, name
        assert stashed.properties == raw, name  # exactly what the other client sent
        if problem is None:
            assert stashed.problem is None, name
        else:
            assert stashed.problem is not None, name
            assert problem in stashed.problem, (name, stashed.problem)
    message_id = received[2 * 4][0].header.properties.message_id
    assert message_id == "id-\\xff"  # the stand-in's escaped text


async def test_a_routing_key_that_is_not_utf8_does_not_end_the_connection(
    publisher: aiormq.abc.AbstractChannel,
    consumer_connection: aiormq.abc.AbstractConnection,
    names: Names,
) -> None:
    queue, exchange = names.queue("wire-rk"), names.exchange("wire-rk")
    await publisher.queue_declare(queue)
    await publisher.exchange_declare(exchange, exchange_type="fanout", auto_delete=True)
    await publisher.queue_bind(queue, exchange)
    channel = await publisher.connection.channel(publisher_confirms=False)
    arguments = b"\x00\x00" + shortstr(exchange.encode()) + shortstr(b"key-\xff") + b"\x00"
    frames = [
        VerbatimPublish(arguments),
        ContentHeader(body_size=len(BODY), properties=spec.Basic.Properties()),
        ContentBody(BODY),
    ]
    await channel.write_queue.put(ChannelFrame.marshall(channel.number, frames))
    await channel.basic_publish(b"after", exchange=exchange)  # ordered behind it on the channel
    box = await inbox(consumer_connection, queue)
    (poison, stashed), (after, _) = await box.until(2)
    assert poison.delivery is not None
    assert poison.delivery.routing_key == "key-\\xff"
    assert stashed is not None
    assert stashed.problem == "routing key 'key-\\xff' is not UTF-8"
    assert after.body == b"after"
    assert not consumer_connection.is_closed


async def test_copies_arrive_byte_for_byte_but_for_the_edits(
    publisher: aiormq.abc.AbstractChannel,
    consumer_connection: aiormq.abc.AbstractConnection,
    names: Names,
) -> None:
    source, target = names.queue("wire-src"), names.queue("wire-dst")
    for queue in (source, target):
        await publisher.queue_declare(queue)
    for _, raw, _ in MESSAGES:
        await publisher.basic_publish(BODY, routing_key=source, properties=Verbatim(raw))
    originals = await (await inbox(consumer_connection, source)).until(len(MESSAGES))
    confirm = await consumer_connection.channel(publisher_confirms=True)
    frame_max = consumer_connection.connection_tune.frame_max
    expected = []
    for message, stashed in originals:
        assert stashed is not None
        edited = (
            stashed.parse()
            .with_headers({"x-retry-count": 1, "x-eventrabbit-error": "RuntimeError: no"})
            .replace("app_id", b"copier")
        )
        fitted = fit(edited, frame_max, keep=["x-retry-count", "x-eventrabbit-error"])
        assert fitted.dropped == ()
        properties = RawProperties(fitted.properties)
        routed = await publish_confirmed(
            confirm,
            message.body,
            exchange="",
            routing_key=target,
            properties=properties,
            mandatory=True,
        )
        assert routed
        expected.append(with_aiormqs_id(fitted.properties, properties))
    copies = await (await inbox(consumer_connection, target)).until(len(MESSAGES))
    for (_, stashed), want in zip(copies, expected, strict=True):
        assert stashed is not None
        assert parse_properties(stashed.properties) == want
        assert stashed.properties == want.encode()
    assert not consumer_connection.is_closed


async def test_an_unroutable_copy_is_noticed_whatever_its_message_id(
    consumer_connection: aiormq.abc.AbstractConnection, names: Names
) -> None:
    """aiormq matches a returned message to its publish by message_id: the stand-in of one
    that is not UTF-8 must match, and one without gets aiormq's own id on the wire."""
    confirm = await consumer_connection.channel(publisher_confirms=True)
    nowhere = names.queue("wire-none")  # never declared
    for raw in (props(0x0080, shortstr(b"id-\xff")), props(0x2000, long(b""))):
        routed = await publish_confirmed(
            confirm,
            BODY,
            exchange="",
            routing_key=nowhere,
            properties=RawProperties(parse_properties(raw)),
            mandatory=True,
        )
        assert routed is False
    assert not consumer_connection.is_closed


async def test_a_copy_too_big_for_a_frame_is_fitted_and_says_so(
    publisher: aiormq.abc.AbstractChannel,
    consumer_connection: aiormq.abc.AbstractConnection,
    names: Names,
) -> None:
    source, target = names.queue("wire-big"), names.queue("wire-big-dst")
    for queue in (source, target):
        await publisher.queue_declare(queue)
    frame_max = consumer_connection.connection_tune.frame_max
    half = (frame_max - 1000) // 2
    table = entry(b"a", "S", long(b"a" * half)) + entry(b"b", "x", long(b"b" * (half - 100)))
    await publisher.basic_publish(
        BODY, routing_key=source, properties=Verbatim(props(0x2000, long(table)))
    )
    ((message, stashed),) = await (await inbox(consumer_connection, source)).until(1)
    assert stashed is not None
    edited = stashed.parse().with_headers({"x-eventrabbit-error": "e" * 2000})
    assert HEADER_FRAME_OVERHEAD + len(edited.encode()) > frame_max
    fitted = fit(edited, frame_max, keep=["x-eventrabbit-error"], note="x-dropped-headers")
    assert fitted.dropped == ("a",)
    confirm = await consumer_connection.channel(publisher_confirms=True)
    properties = RawProperties(fitted.properties)
    assert await publish_confirmed(
        confirm, message.body, exchange="", routing_key=target, properties=properties
    )
    ((copy, copied),) = await (await inbox(consumer_connection, target)).until(1)
    assert copied is not None
    assert copied.properties == with_aiormqs_id(fitted.properties, properties).encode()
    headers = copy.header.properties.headers or {}
    assert headers["x-dropped-headers"] == "a"
    assert sorted(headers) == ["b", "x-dropped-headers", "x-eventrabbit-error"]
    assert headers["b"] == bytearray(b"b" * (half - 100))
    assert not consumer_connection.is_closed


async def test_only_eventrabbit_amqp_connections_have_a_reader(broker_url: str) -> None:
    plain = await aiormq.connect(broker_url)
    try:
        assert wire_of(plain) is None
    finally:
        await plain.close()
    ours = await open_connection(broker_url)
    try:
        assert isinstance(wire_of(ours), WireReader)
    finally:
        await ours.close()


async def test_a_consumer_dead_letters_what_cannot_be_decoded_and_copies_faithfully(
    publisher: aiormq.abc.AbstractChannel,
    consumer_connection: aiormq.abc.AbstractConnection,
    services: Services,
) -> None:
    """Through eventrabbit's own consumer: a message pamqp cannot decode is dead-lettered
    (its handler would get a stand-in), one whose handler fails is too; either way the dead
    letter carries every property and header of the original as it arrived, byte for byte,
    but the broker's headers, plus eventrabbit's own."""
    events, handle = services.build(retry_config=RetryConfig(max_retries=0))
    handled: list[int] = []

    @events.consumer("X")
    async def x(i: int) -> None:
        handled.append(i)

    @events.consumer("FAIL")
    async def fail(i: int) -> None:
        raise ValueError(f"no {i}")

    target = services.target("wire-e2e")
    await services.consume(handle, target)
    bodies = {}
    for i, (_, raw, problem) in enumerate(MESSAGES):
        # A message pamqp decodes goes to a failing handler, one it cannot to a good one.
        bodies[i] = event("FAIL" if problem is None else "X", {"i": i})
        await publisher.basic_publish(
            bodies[i], routing_key=target.queue_name, properties=Verbatim(raw)
        )
    await publisher.basic_publish(event("X", {"i": -1}), routing_key=target.queue_name)
    dead = await (await inbox(consumer_connection, target.queue_name + ".dlq")).until(len(MESSAGES))
    by_body = {message.body: (message, stashed) for message, stashed in dead}
    for i, (name, raw, problem) in enumerate(MESSAGES):
        message, stashed = by_body[bodies[i]]
        assert stashed is not None, name
        copy = parse_properties(stashed.properties)  # type: ignore[attr-defined]
        original = parse_properties(raw)
        reason = message.header.properties.headers[ERROR_HEADER]
        if problem is None:
            assert reason == f"ValueError: no {i}", name
        else:
            assert reason.startswith("the message could not be decoded: "), (name, reason)
            assert problem in reason, (name, reason)
        if original.get("message_id") is None:  # aiormq gives a publish without one its own
            copy = copy.replace("message_id", None)
        assert copy.values == original.values, name  # message_id, timestamp: as they came
        kept = [e for e in copy.headers or () if not e.key.startswith(b"x-eventrabbit-")]
        kept = [e for e in kept if e.key != b"x-retry-count"]
        wanted = [e for e in original.headers or () if e.name not in BROKER_HEADERS]
        assert kept == wanted, name
        assert DROPPED_HEADER not in message.header.properties.headers
    await handle.ready(target, timeout=TIMEOUT)
    assert handled == [-1]  # the stand-ins never reached a handler
    [status] = handle.status()
    assert status.reconnects == 0
    assert not consumer_connection.is_closed
    await handle.close()
    assert await queue_depth(publisher, target.queue_name) == 0  # nothing was left unacked
