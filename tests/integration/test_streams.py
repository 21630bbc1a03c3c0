"""Streams as the broker serves them over AMQP 0.9.1, seen by a raw aiormq client, and
capture through ``StreamChannel``: the contract the in-memory broker's streams keep too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiormq
import aiormq.abc
import pytest

from eventrabbit import (
    ConfigurationError,
    ExchangeType,
    StreamChannel,
    TopologyError,
    capture,
)
from eventrabbit.connection import open_connection
from tests.conftest import Names, Services
from tests.helpers import DEFAULT_TIMEOUT, event, publish_raw

STREAM = {"x-queue-type": "stream"}


@pytest.fixture
async def streams(broker_url: str) -> AsyncIterator[Names]:
    """Unique stream names, deleted after the test."""
    made = Names()
    yield made
    await made.delete_all(broker_url)


async def read(
    channel: aiormq.abc.AbstractChannel, stream: str, count: int, offset: Any = None
) -> list[int]:
    """The ``x-stream-offset`` headers of the first ``count`` deliveries from ``offset``."""
    offsets: list[int] = []
    done = asyncio.Event()

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        offsets.append((message.header.properties.headers or {})["x-stream-offset"])
        await channel.basic_ack(message.delivery.delivery_tag)  # type: ignore[union-attr,arg-type]
        if len(offsets) >= count:
            done.set()

    await channel.basic_qos(prefetch_count=3)  # fewer than count: acks give credit
    arguments = None if offset is None else {"x-stream-offset": offset}
    ok = await channel.basic_consume(stream, on_message, arguments=arguments)
    async with asyncio.timeout(DEFAULT_TIMEOUT):
        await done.wait()
    await channel.basic_cancel(ok.consumer_tag)  # type: ignore[arg-type]
    return offsets


async def test_a_stream_delivers_every_message_with_its_offset_from_where_asked(
    amqp_channel: aiormq.abc.AbstractChannel, streams: Names
) -> None:
    stream = streams.queue("stream")
    await amqp_channel.queue_declare(stream, durable=True, arguments=STREAM)
    for n in range(20):
        await publish_raw(amqp_channel, event("n", n), stream)
    assert await read(amqp_channel, stream, 20, "first") == list(range(20))
    from_13 = await read(amqp_channel, stream, 20 - 13, 13)
    # The broker starts at the chunk holding offset 13: perhaps earlier, never later.
    assert from_13[0] <= 13
    assert from_13 == list(range(from_13[0], from_13[0] + len(from_13)))
    later = asyncio.ensure_future(read(amqp_channel, stream, 1, "next"))
    await asyncio.sleep(0)
    while not later.done():  # "next": only what is published after the consumer started
        await publish_raw(amqp_channel, event("n", 20), stream)
        await asyncio.wait([later], timeout=0.2)
    assert (await later)[0] >= 20


async def test_a_stream_consumer_needs_a_prefetch_count(
    broker_url: str, amqp_channel: aiormq.abc.AbstractChannel, streams: Names
) -> None:
    stream = streams.queue("stream")
    await amqp_channel.queue_declare(stream, durable=True, arguments=STREAM)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="prefetch count"):
        await amqp_channel.basic_consume(stream, lambda _: None)
    connection = await open_connection(broker_url)
    try:
        channel = await connection.channel()
        await channel.basic_qos(prefetch_count=1)
        with pytest.raises(aiormq.exceptions.ConnectionNotImplemented, match="acknowledgement"):
            await channel.basic_consume(stream, lambda _: None, no_ack=True)
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("options", "refused"),
    [
        ({"durable": False}, "non-durable"),
        ({"durable": True, "exclusive": True}, "exclusive-owner"),
        ({"durable": True, "auto_delete": True}, "auto-delete"),
    ],
)
async def test_a_stream_is_durable_and_never_exclusive_or_auto_delete(
    amqp_channel: aiormq.abc.AbstractChannel,
    streams: Names,
    options: dict[str, Any],
    refused: str,
) -> None:
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match=refused):
        await amqp_channel.queue_declare(streams.queue("stream"), arguments=STREAM, **options)


async def test_capture_binds_a_stream_that_records_what_producers_publish(
    broker_url: str, services: Services, streams: Names
) -> None:
    events, handle = services.build()
    exchange = streams.exchange("orders")
    stream = StreamChannel(
        broker_url,
        streams.queue("stream"),
        exchange,
        ExchangeType.TOPIC,
        binding_keys=("order.*",),
        max_age="7D",
        max_length_bytes=10**8,
    )
    await capture(stream)
    await capture(stream)  # idempotent
    await events.publish(exchange, "placed", {"id": 1}, key="order.placed")
    await events.publish(exchange, "ignored", {"id": 2}, key="invoice.sent")
    await events.publish(exchange, "shipped", {"id": 1}, key="order.shipped")
    seen: list[str] = []

    @events.consumer("placed")
    async def placed(id: int) -> None:
        seen.append("placed")

    @events.consumer("shipped")
    async def shipped(id: int) -> None:
        seen.append("shipped")

    summary = await handle.replay(stream)
    assert seen == ["placed", "shipped"]
    assert (summary.first_offset, summary.last_offset) == (0, 1)


async def test_capture_refuses_other_retention_than_the_stream_has(
    broker_url: str, streams: Names
) -> None:
    name = streams.queue("stream")
    await capture(StreamChannel(broker_url, name, max_age="7D"))
    with pytest.raises(TopologyError, match="x-max-age"):
        await capture(StreamChannel(broker_url, name, max_age="1D"))


async def test_a_naive_datetime_is_refused_before_anything_is_read(
    broker_url: str, services: Services, streams: Names
) -> None:
    _, handle = services.build()
    stream = StreamChannel(broker_url, streams.queue("stream"))
    naive = datetime(2026, 1, 1)
    with pytest.raises(ConfigurationError, match="naive datetime"):
        await handle.replay(stream, start=naive)
    with pytest.raises(ConfigurationError, match="naive"):
        await handle.replay(stream, stop=naive)
