"""The in-memory transport behaves as aiormq on RabbitMQ does, seen through the raw API.

Each test states a RabbitMQ/aiormq behaviour eventrabbit relies on (or a user's test would
notice) and checks it on the aiormq-shaped connection and channels of ``memory://``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import aiormq
import aiormq.abc
import pytest
from aiormq import spec

from eventrabbit.testing import MemoryBroker, get_broker, memory_broker
from eventrabbit.testing.transport import connect_memory

Channel = aiormq.abc.AbstractChannel
Delivered = aiormq.abc.DeliveredMessage


async def fresh(channel: Channel) -> Channel:
    """Another channel on the same connection (after an error closed one)."""
    return await channel.connection.channel()


async def close_reason(closing: asyncio.Future[object]) -> BaseException | None:
    """What a ``closing`` observer completes with (its callbacks run on the loop)."""
    await asyncio.wait([closing], timeout=1)
    return closing.exception()


class Inbox:
    """A consumer callback that keeps what it gets."""

    def __init__(self) -> None:
        self.messages: list[Delivered] = []
        self.arrived = asyncio.Event()

    async def __call__(self, message: Delivered) -> None:
        self.messages.append(message)
        self.arrived.set()

    async def wait(self, count: int = 1) -> list[Delivered]:
        async with asyncio.timeout(5):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.messages


# ----------------------------------------------------------------------------- brokers


def test_same_name_same_broker_and_names_ignore_case() -> None:
    with memory_broker("Shared-Name") as broker:
        assert get_broker("memory://shared-name") is broker
        assert broker.url == "memory://shared-name"
        assert get_broker("memory://other") is not broker


def test_memory_broker_is_fresh_and_forgotten() -> None:
    with memory_broker() as first, memory_broker() as second:
        assert first is not second
        assert first.url != second.url
    assert get_broker(first.url) is not first


async def test_connections_to_one_url_share_the_broker(broker: MemoryBroker) -> None:
    one = await connect_memory(broker.url)
    two = await connect_memory(broker.url)
    assert broker.connection_count == 2
    await (await one.channel()).queue_declare("shared")
    assert (await (await two.channel()).queue_declare("shared", passive=True)).queue == "shared"
    await one.close()
    await two.close()
    assert broker.connection_count == 0


async def test_a_closed_connection_refuses_channels(broker: MemoryBroker) -> None:
    connection = await connect_memory(broker.url)
    await connection.close()
    assert connection.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        await connection.channel()


# ----------------------------------------------------------------------------- publishing


async def test_publish_returns_a_confirm(channel: Channel) -> None:
    await channel.queue_declare("q")
    confirm = await channel.basic_publish(b"x", routing_key="q")
    assert isinstance(confirm, spec.Basic.Ack)


async def test_mandatory_unroutable_raises_publish_error(channel: Channel) -> None:
    with pytest.raises(aiormq.exceptions.PublishError) as info:
        await channel.basic_publish(b"x", routing_key="nowhere", mandatory=True)
    returned = info.value.message
    assert returned is not None
    assert isinstance(returned.delivery, spec.Basic.Return)
    assert returned.delivery.reply_text == "NO_ROUTE"
    assert not channel.is_closed
    assert isinstance(await channel.basic_publish(b"x", routing_key="nowhere"), spec.Basic.Ack)


async def test_missing_exchange_closes_the_channel(channel: Channel) -> None:
    closing = channel.closing
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="no exchange 'ghost'"):
        await channel.basic_publish(b"x", exchange="ghost")
    assert channel.is_closed
    assert isinstance(await close_reason(closing), aiormq.exceptions.ChannelNotFoundEntity)
    with pytest.raises(aiormq.exceptions.ChannelInvalidStateError):
        await channel.basic_publish(b"x", routing_key="q")


async def test_a_header_amqp_cannot_carry_fails_the_publish(channel: Channel) -> None:
    headers: dict[str, Any] = {"s": {1}}  # a set: AMQP tables have none
    with pytest.raises(TypeError):
        await channel.basic_publish(b"x", properties=spec.Basic.Properties(headers=headers))


# ------------------------------------------------------------------------------- declaring


async def test_queue_argument_clash_is_406_and_closes_the_channel(channel: Channel) -> None:
    await channel.queue_declare("q", durable=True)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="x-message-ttl"):
        await channel.queue_declare("q", durable=True, arguments={"x-message-ttl": 5})
    assert channel.is_closed
    channel = await fresh(channel)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="durable"):
        await channel.queue_declare("q", durable=False)


async def test_redeclaring_an_equal_queue_is_fine(channel: Channel) -> None:
    await channel.queue_declare("q", durable=True)
    await channel.queue_declare("q", durable=True, arguments={"x-queue-type": "classic"})
    await channel.queue_declare("q", durable=True, arguments={"not-checked": 1})
    assert not channel.is_closed


async def test_passive_declare_of_a_missing_queue_is_404(channel: Channel) -> None:
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="no queue 'ghost'"):
        await channel.queue_declare("ghost", passive=True)


async def test_passive_declare_counts_messages_and_consumers(channel: Channel) -> None:
    await channel.queue_declare("q")
    await channel.basic_publish(b"1", routing_key="q")
    await channel.basic_publish(b"2", routing_key="q")
    ok = await channel.queue_declare("q", passive=True)
    assert (ok.message_count, ok.consumer_count) == (2, 0)


async def test_server_named_queue(channel: Channel) -> None:
    ok = await channel.queue_declare("", exclusive=True)
    assert ok.queue is not None
    assert ok.queue.startswith("amq.gen-")


async def test_exchange_rules(channel: Channel) -> None:
    await channel.exchange_declare("ex", exchange_type="topic", durable=True)
    await channel.exchange_declare("ex", exchange_type="topic", durable=True)
    for predeclared in ("amq.direct", "amq.fanout", "amq.topic", "amq.headers"):
        await channel.exchange_declare(predeclared, passive=True)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="'type'"):
        await channel.exchange_declare("ex", exchange_type="direct", durable=True)
    channel = await fresh(channel)
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await channel.exchange_declare("ghost", passive=True)
    channel = await fresh(channel)
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        await channel.exchange_declare("amq.mine", exchange_type="direct")


async def test_binding_needs_both_ends(channel: Channel) -> None:
    await channel.queue_declare("q")
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="exchange"):
        await channel.queue_bind("q", "ghost")
    channel = await fresh(channel)
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="queue"):
        await channel.queue_bind("ghost", "amq.direct")


async def test_invalid_x_match_is_406(channel: Channel) -> None:
    await channel.queue_declare("q")
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="x-match"):
        await channel.queue_bind("q", "amq.headers", arguments={"x-match": "bogus"})


async def test_unknown_exchange_type_closes_the_connection(channel: Channel) -> None:
    with pytest.raises(aiormq.exceptions.ConnectionCommandInvalid):
        await channel.exchange_declare("ex", exchange_type="x-delayed-message")
    assert channel.connection.is_closed


async def test_exclusive_queue_belongs_to_its_connection(
    broker: MemoryBroker, channel: Channel
) -> None:
    await channel.queue_declare("mine", exclusive=True)
    other = await connect_memory(broker.url)
    with pytest.raises(aiormq.exceptions.ChannelLockedResource):
        await (await other.channel()).queue_declare("mine", passive=True)
    await channel.connection.close()
    assert "mine" not in broker.queues_declared
    await other.close()


# ------------------------------------------------------------------------------- consuming


async def test_each_delivery_runs_in_its_own_task(channel: Channel) -> None:
    await channel.queue_declare("q")
    started: list[asyncio.Task[object] | None] = []
    both = asyncio.Event()

    async def slow(message: Delivered) -> None:
        started.append(asyncio.current_task())
        if len(started) == 2:
            both.set()
        await both.wait()  # deadlocks unless the two deliveries run side by side

    await channel.basic_consume("q", slow)
    await channel.basic_publish(b"1", routing_key="q")
    await channel.basic_publish(b"2", routing_key="q")
    async with asyncio.timeout(5):
        await both.wait()
    assert started[0] is not started[1]


async def test_prefetch_bounds_unacked_deliveries(broker: MemoryBroker, channel: Channel) -> None:
    await channel.queue_declare("q")
    inbox = Inbox()
    await channel.basic_qos(prefetch_count=2)
    await channel.basic_consume("q", inbox)
    for n in range(5):
        await channel.basic_publish(str(n).encode(), routing_key="q")
    # Delivery is synchronous: two went out, and no more do until one is acked.
    assert (broker.queue_depth("q"), broker.unacked_count("q")) == (3, 2)
    await inbox.wait(2)
    assert len(inbox.messages) == 2
    await channel.basic_ack(inbox.messages[1].delivery_tag or 0, multiple=True)
    await inbox.wait(4)
    assert [m.body for m in inbox.messages] == [b"0", b"1", b"2", b"3"]


async def test_unacked_messages_come_back_redelivered_when_the_channel_closes(
    broker: MemoryBroker, channel: Channel
) -> None:
    await channel.queue_declare("q")
    inbox = Inbox()
    consumer_channel = await fresh(channel)
    await consumer_channel.basic_consume("q", inbox)
    await channel.basic_publish(b"1", routing_key="q")
    await channel.basic_publish(b"2", routing_key="q")
    await inbox.wait(2)
    await consumer_channel.close()
    assert [m.body for m in broker.messages("q")] == [b"1", b"2"]
    assert all(m.redelivered for m in broker.messages("q"))
    got = await channel.basic_get("q", no_ack=True)
    assert got.body == b"1"
    assert got.redelivered is True


async def test_closing_a_channel_cancels_its_callback_tasks(channel: Channel) -> None:
    await channel.queue_declare("q")
    cancelled = asyncio.Event()
    entered = asyncio.Event()

    async def forever(message: Delivered) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            cancelled.set()
            raise

    consumer_channel = await fresh(channel)
    await consumer_channel.basic_consume("q", forever)
    await channel.basic_publish(b"x", routing_key="q")
    await entered.wait()
    await consumer_channel.close()
    assert cancelled.is_set()


async def test_nack_requeues_or_dead_letters(broker: MemoryBroker, channel: Channel) -> None:
    await channel.queue_declare("dead")
    arguments: dict[str, Any] = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"}
    await channel.queue_declare("q", arguments=arguments)
    await channel.basic_publish(b"x", routing_key="q")
    first = await channel.basic_get("q")
    await channel.basic_nack(first.delivery_tag or 0, requeue=True)
    again = await channel.basic_get("q")
    assert again.redelivered is True
    await channel.basic_reject(again.delivery_tag or 0, requeue=False)
    [dead] = broker.messages("dead")
    assert dead.headers["x-death"][0]["reason"] == "rejected"
    assert dead.headers["x-first-death-reason"] == "rejected"
    assert broker.queue_depth("q") == 0


async def test_an_unknown_delivery_tag_closes_the_channel(channel: Channel) -> None:
    await channel.basic_ack(42)
    assert channel.is_closed
    reason = await close_reason(channel.closing)
    assert isinstance(reason, aiormq.exceptions.ChannelPreconditionFailed)


async def test_deleting_a_queue_cancels_its_consumers(channel: Channel) -> None:
    await channel.queue_declare("q")
    cancels: list[spec.Basic.Cancel] = []
    consumer_channel = await fresh(channel)
    consumer_channel.on_consumer_cancel_callbacks.add(cancels.append)
    ok = await consumer_channel.basic_consume("q", Inbox())
    await channel.queue_delete("q")
    assert [c.consumer_tag for c in cancels] == [ok.consumer_tag]
    assert not consumer_channel.is_closed


async def test_closing_observer_can_be_cancelled_without_closing(channel: Channel) -> None:
    observer = channel.closing
    observer.cancel()
    await asyncio.sleep(0)  # one turn of the loop: the cancelled observer's callbacks run
    assert not channel.is_closed
    later = channel.closing
    await channel.close()
    assert isinstance(await close_reason(later), aiormq.exceptions.ChannelClosed)


async def test_quorum_delivery_limit_dead_letters(broker: MemoryBroker, channel: Channel) -> None:
    await channel.queue_declare("dlq", durable=True)
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-delivery-limit": 1,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "dlq",
    }
    await channel.queue_declare("q", durable=True, arguments=arguments)
    await channel.basic_publish(b"x", routing_key="q")
    first = await channel.basic_get("q")
    await channel.basic_nack(first.delivery_tag or 0)
    second = await channel.basic_get("q")
    assert second.header.properties.headers == {"x-delivery-count": 1}
    await channel.basic_nack(second.delivery_tag or 0)
    [dead] = broker.messages("dlq")
    assert dead.headers["x-death"][0]["reason"] == "delivery_limit"


# --------------------------------------------------------------------------- TTL, deaths


async def test_expired_messages_are_dead_lettered_with_x_death(
    broker: MemoryBroker, channel: Channel
) -> None:
    await channel.queue_declare("target")
    arguments: dict[str, Any] = {
        "x-message-ttl": 20,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "target",
    }
    await channel.queue_declare("wait", arguments=arguments)
    properties = spec.Basic.Properties(headers={"mine": 1}, message_id="m1")
    await channel.basic_publish(b"x", routing_key="wait", properties=properties)
    assert broker.queue_depth("wait") == 1
    [arrived] = await broker.wait_for_messages("target")
    headers = arrived.headers
    assert headers["mine"] == 1
    [death] = headers["x-death"]
    assert death["count"] == 1
    assert death["reason"] == "expired"
    assert death["queue"] == "wait"
    assert death["exchange"] == ""
    assert death["routing-keys"] == ["wait"]
    assert isinstance(death["time"], datetime)
    assert headers["x-first-death-reason"] == "expired"
    assert headers["x-first-death-queue"] == "wait"
    assert headers["x-first-death-exchange"] == ""
    assert "x-last-death-reason" not in headers  # from RabbitMQ 3.13 on only
    assert arrived.routing_key == "target"


async def test_dying_twice_in_one_queue_counts(broker: MemoryBroker, channel: Channel) -> None:
    await channel.queue_declare("target")
    arguments: dict[str, Any] = {
        "x-message-ttl": 0,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "target",
    }
    await channel.queue_declare("wait", arguments=arguments)
    await channel.basic_publish(b"x", routing_key="wait")
    [once] = await broker.wait_for_messages("target")
    await channel.basic_get("target", no_ack=True)
    await channel.basic_publish(b"x", routing_key="wait", properties=once.properties)
    [twice] = await broker.wait_for_messages("target")
    assert [d["count"] for d in twice.headers["x-death"]] == [2]


async def test_per_message_expiration(broker: MemoryBroker, channel: Channel) -> None:
    await channel.queue_declare("target")
    arguments: dict[str, Any] = {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "target",
    }
    await channel.queue_declare("q", arguments=arguments)
    await channel.basic_publish(
        b"x", routing_key="q", properties=spec.Basic.Properties(expiration="10")
    )
    [arrived] = await broker.wait_for_messages("target")
    assert arrived.properties.expiration is None
    assert arrived.headers["x-death"][0]["original-expiration"] == "10"


async def test_ttl_zero_expires_at_once_unless_a_consumer_is_ready(
    broker: MemoryBroker, channel: Channel
) -> None:
    await channel.queue_declare("target")
    arguments: dict[str, Any] = {
        "x-message-ttl": 0,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "target",
    }
    await channel.queue_declare("zero", arguments=arguments)
    await channel.basic_publish(b"gone", routing_key="zero")
    await broker.wait_for_messages("target")
    inbox = Inbox()
    await channel.basic_consume("zero", inbox, no_ack=True)
    await channel.basic_publish(b"taken", routing_key="zero")
    assert [m.body for m in await inbox.wait()] == [b"taken"]


async def test_an_expiry_cycle_is_dropped(broker: MemoryBroker, channel: Channel) -> None:
    arguments: dict[str, Any] = {
        "x-message-ttl": 0,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "loop",
    }
    await channel.queue_declare("loop", arguments=arguments)
    await channel.basic_publish(b"x", routing_key="loop")
    # Expired, it would go back into "loop" and expire again forever: it is dropped instead.
    await broker.wait_idle("loop")
    assert broker.queue_depth("loop") == 0


# ------------------------------------------------------------------------ direct reply-to


async def test_direct_reply_to(broker: MemoryBroker, channel: Channel) -> None:
    await channel.queue_declare("requests")
    replies = Inbox()
    await channel.basic_consume("amq.rabbitmq.reply-to", replies, no_ack=True)
    request = spec.Basic.Properties(reply_to="amq.rabbitmq.reply-to", correlation_id="c1")
    await channel.basic_publish(b"ping", routing_key="requests", properties=request)
    assert request.reply_to == "amq.rabbitmq.reply-to"  # the caller's object is untouched
    server = await fresh(channel)
    received = await server.basic_get("requests", no_ack=True)
    address = received.header.properties.reply_to
    assert address is not None
    assert address.startswith("amq.rabbitmq.reply-to.")
    reply = spec.Basic.Properties(correlation_id="c1")
    await server.basic_publish(b"pong", routing_key=address, properties=reply, mandatory=True)
    [answer] = await replies.wait()
    assert (answer.body, answer.header.properties.correlation_id) == (b"pong", "c1")
    assert answer.routing_key == address
    assert broker.published[-1].queues == (address,)


async def test_direct_reply_to_rules(channel: Channel) -> None:
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="fast reply consumer"):
        await channel.basic_publish(
            b"x", properties=spec.Basic.Properties(reply_to="amq.rabbitmq.reply-to")
        )
    channel = await fresh(channel)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="cannot acknowledge"):
        await channel.basic_consume("amq.rabbitmq.reply-to", Inbox())
    channel = await fresh(channel)
    with pytest.raises(aiormq.exceptions.PublishError):
        await channel.basic_publish(
            b"x", routing_key="amq.rabbitmq.reply-to.nobody", mandatory=True
        )
