"""Publishes written straight to the socket (eventrabbit.publish_frames), on the wire.

Real broker only: the in-memory broker's channels always take ``basic_publish``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiormq
import aiormq.abc
import pytest
from pamqp import commands as spec

from eventrabbit.confirm import event_properties, reply_properties
from eventrabbit.connection import open_connection
from eventrabbit.publish_frames import send
from tests.helpers import unique

pytestmark = pytest.mark.real_broker


@pytest.fixture
async def confirm_channel(broker_url: str) -> AsyncIterator[aiormq.abc.AbstractChannel]:
    """A confirm channel on a connection eventrabbit opened (its transport)."""
    connection = await open_connection(broker_url)
    try:
        yield await connection.channel(publisher_confirms=True)
    finally:
        await connection.close()


@pytest.fixture
async def queue(amqp_channel: aiormq.abc.AbstractChannel) -> AsyncIterator[str]:
    name = unique("frames")
    await amqp_channel.queue_declare(name)
    yield name
    await amqp_channel.queue_delete(name)


def direct(
    channel: aiormq.abc.AbstractChannel, key: str, body: bytes, mandatory: bool = False
) -> asyncio.Future[object]:
    confirmation = send(
        channel,
        exchange="",
        routing_key=key,
        properties=event_properties(headers={"n": len(body)}),
        body=body,
        mandatory=mandatory,
    )
    assert confirmation is not None, "the direct path was not taken"
    return confirmation


async def test_a_direct_publish_arrives_whole_and_is_confirmed(
    confirm_channel: aiormq.abc.AbstractChannel,
    amqp_channel: aiormq.abc.AbstractChannel,
    queue: str,
) -> None:
    # Larger than the broker's frame_max (128 KiB): split into body frames as aiormq splits.
    big = bytes(range(256)) * 1200
    for body in (b'{"a": 1}', b"", big):
        assert isinstance(await direct(confirm_channel, queue, body), spec.Basic.Ack)
        got = await amqp_channel.basic_get(queue, no_ack=True)
        assert got.body == body
        assert got.header.properties.headers == {"n": len(body)}
        assert got.header.properties.content_type == "application/json"


async def test_an_unroutable_mandatory_publish_is_returned_and_forgotten(
    confirm_channel: aiormq.abc.AbstractChannel,
) -> None:
    with pytest.raises(aiormq.exceptions.PublishError):
        await direct(confirm_channel, unique("nowhere"), b"{}", mandatory=True)
    # Without a message_id (a reply's properties) it gets one, as basic_publish gives it: the
    # broker's Basic.Return is matched to its publish by that id.
    properties = reply_properties("c-1")
    confirmation = send(
        confirm_channel,
        exchange="",
        routing_key=unique("nowhere"),
        properties=properties,
        body=b"{}",
        mandatory=True,
    )
    assert confirmation is not None
    assert properties.message_id
    with pytest.raises(aiormq.exceptions.PublishError):
        await confirmation
    assert confirm_channel.message_id_delivery_tag == {}  # type: ignore[attr-defined]


async def test_direct_queued_and_aiormq_publishes_mix_with_every_outcome_right(
    confirm_channel: aiormq.abc.AbstractChannel,
    amqp_channel: aiormq.abc.AbstractChannel,
    queue: str,
) -> None:
    """Hundreds in flight on one channel, some through aiormq's ``basic_publish`` (its lock,
    its queue), every third unroutable: each publish gets its own outcome, none waits."""
    nowhere = unique("nowhere")

    async def one(i: int) -> str:
        key = nowhere if i % 3 == 0 else queue
        body = b'{"i": %d}' % i
        try:
            if i % 7 == 0:
                await confirm_channel.basic_publish(
                    body,
                    routing_key=key,
                    mandatory=True,
                    properties=event_properties(),
                )
            else:
                confirmation = send(
                    confirm_channel,
                    exchange="",
                    routing_key=key,
                    properties=event_properties(),
                    body=body,
                    mandatory=True,
                )
                if confirmation is None:  # the lock was held or the queue full: aiormq's way
                    await confirm_channel.basic_publish(
                        body, routing_key=key, mandatory=True, properties=event_properties()
                    )
                else:
                    await confirmation
        except aiormq.exceptions.PublishError:
            return "returned"
        return "confirmed"

    n = 600
    outcomes = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 30)
    assert outcomes == ["returned" if i % 3 == 0 else "confirmed" for i in range(n)]
    depth = (await amqp_channel.queue_declare(queue, passive=True)).message_count
    assert depth == n - len(range(0, n, 3))


async def test_a_closed_connection_fails_the_publish_at_once(broker_url: str) -> None:
    connection = await open_connection(broker_url)
    channel = await connection.channel(publisher_confirms=True)
    await connection.close()
    with pytest.raises(aiormq.exceptions.ChannelInvalidStateError):
        send(
            channel,
            exchange="",
            routing_key="any",
            properties=event_properties(),
            body=b"{}",
            mandatory=False,
        )


async def test_other_channels_take_aiormqs_way(broker_url: str) -> None:
    """A plain aiormq connection (no transport of eventrabbit's); a channel without confirms."""
    properties = event_properties()
    for connect, confirms in ((aiormq.connect, True), (open_connection, False)):
        connection = await connect(broker_url)
        try:
            channel = await connection.channel(publisher_confirms=confirms)
            sent = send(
                channel,
                exchange="",
                routing_key="k",
                properties=properties,
                body=b"",
                mandatory=False,
            )
            assert sent is None
        finally:
            await connection.close()
