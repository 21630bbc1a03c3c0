"""reply_to (RPC): the handler's result goes back to the caller's reply address."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiormq
import aiormq.abc
import orjson
import pytest

from eventrabbit import RetryConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel
from eventrabbit.registry import Events
from eventrabbit.service import Handle
from tests.conftest import Names
from tests.helpers import get_one, publish_raw, queue_depth, wait_for

Channel = aiormq.abc.AbstractChannel
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"

JSON_VALUES = [
    {"user": {"id": 1, "tags": ["a"]}},
    [1, "two", None, {"three": 3}],
    "text",
    42,
    2.5,
    True,
    False,
    None,
]
JSON_IDS = ["dict", "list", "str", "int", "float", "true", "false", "null"]


def event(action: str, data: Any) -> bytes:
    return orjson.dumps({"action": action, "data": data})


async def consumer_count(channel: Channel, queue: str) -> int:
    probe = await channel.connection.channel(publisher_confirms=False)
    try:
        ok = await probe.queue_declare(queue, passive=True)
    except aiormq.ChannelNotFoundEntity:
        return 0
    finally:
        if not probe.is_closed:
            await probe.close()
    assert ok.consumer_count is not None
    return ok.consumer_count


@pytest.fixture
async def service(broker_url: str, names: Names) -> AsyncIterator[tuple[Events, Handle]]:
    # No retries: a failing request fails for good at once.
    events, handle = build_event_dependencies(broker_url, retry_config=RetryConfig(max_retries=0))
    try:
        yield events, handle
    finally:
        async with asyncio.timeout(30):
            await handle.close()


async def consume(handle: Handle, probe: Channel, url: str, queue: str) -> asyncio.Task[None]:
    task = asyncio.create_task(handle.consume(ConsumeChannel(url=url, queue_name=queue)))

    async def ready() -> bool:
        return task.done() or await consumer_count(probe, queue) >= 1

    await wait_for(ready, timeout=10, message=f"a consumer on {queue}")
    if task.done():
        task.result()
        raise AssertionError("consume returned")
    return task


@pytest.mark.parametrize("value", JSON_VALUES, ids=JSON_IDS)
async def test_reply_carries_result_and_correlation_id(
    service: tuple[Events, Handle],
    names: Names,
    amqp_channel: Channel,
    broker_url: str,
    value: Any,
) -> None:
    events, handle = service

    @events.consumer(action="GET_VALUE")
    async def get_value(request_id: str) -> Any:
        return value

    queue, reply_queue = names.queue(), names.queue("reply")
    await amqp_channel.queue_declare(reply_queue, exclusive=True)
    await consume(handle, amqp_channel, broker_url, queue)

    correlation_id = uuid.uuid4().hex
    await publish_raw(
        amqp_channel,
        event("GET_VALUE", {"request_id": "r1"}),
        queue,
        reply_to=reply_queue,
        correlation_id=correlation_id,
    )

    reply = await get_one(amqp_channel, reply_queue, timeout=5)
    assert orjson.loads(reply.body) == {"data": value}
    assert reply.header.properties.correlation_id == correlation_id
    assert reply.exchange == ""
    assert reply.routing_key == reply_queue
    assert reply.header.properties.content_type == "application/json"
    await handle.close()
    assert await queue_depth(amqp_channel, queue) == 0  # the request was acked
    assert await queue_depth(amqp_channel, reply_queue) == 0  # exactly one reply


async def test_concurrent_requests_get_their_own_replies(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    events, handle = service

    @events.consumer(action="SQUARE")
    async def square(n: int) -> int:
        return n * n

    queue, reply_queue = names.queue(), names.queue("reply")
    await amqp_channel.queue_declare(reply_queue, exclusive=True)
    await consume(handle, amqp_channel, broker_url, queue)
    for n in range(10):
        await publish_raw(
            amqp_channel,
            event("SQUARE", {"n": n}),
            queue,
            reply_to=reply_queue,
            correlation_id=f"c{n}",
        )

    replies = {}
    for _ in range(10):
        reply = await get_one(amqp_channel, reply_queue, timeout=5)
        replies[reply.header.properties.correlation_id] = orjson.loads(reply.body)
    assert replies == {f"c{n}": {"data": n * n} for n in range(10)}


@pytest.mark.parametrize(
    ("action", "data", "error_type", "text"),
    [
        ("FAIL", {"n": 1}, "ValueError", "no value for 1"),
        ("FAIL", {"unexpected": 1}, None, "unexpected"),
        ("NO_SUCH_ACTION", {}, None, "NO_SUCH_ACTION"),
    ],
    ids=["handler-raises", "data-misfit", "unknown-action"],
)
async def test_failed_request_gets_one_error_reply(
    service: tuple[Events, Handle],
    names: Names,
    amqp_channel: Channel,
    broker_url: str,
    action: str,
    data: dict[str, Any],
    error_type: str | None,
    text: str,
) -> None:
    events, handle = service

    @events.consumer(action="FAIL")
    async def fail(n: int) -> None:
        raise ValueError(f"no value for {n}")

    queue, reply_queue = names.queue(), names.queue("reply")
    await amqp_channel.queue_declare(reply_queue, exclusive=True)
    await consume(handle, amqp_channel, broker_url, queue)

    correlation_id = uuid.uuid4().hex
    await publish_raw(
        amqp_channel,
        event(action, data),
        queue,
        reply_to=reply_queue,
        correlation_id=correlation_id,
    )

    reply = await get_one(amqp_channel, reply_queue, timeout=5)
    assert reply.header.properties.correlation_id == correlation_id
    body = orjson.loads(reply.body)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message"}
    if error_type is not None:
        assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["type"], str)
    assert body["error"]["type"]
    assert text in body["error"]["message"]
    # The request went to the dead-letter queue, and the caller got exactly one reply.
    assert await queue_depth(amqp_channel, f"{queue}.dlq") == 1
    await handle.close()
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, reply_queue) == 0


@pytest.mark.parametrize("value", [{"ok": True}, None], ids=["dict", "null"])
async def test_direct_reply_to(
    service: tuple[Events, Handle],
    names: Names,
    amqp_channel: Channel,
    broker_url: str,
    value: Any,
) -> None:
    events, handle = service

    @events.consumer(action="PING")
    async def ping() -> Any:
        return value

    queue = names.queue()
    await consume(handle, amqp_channel, broker_url, queue)

    replies: asyncio.Queue[aiormq.abc.DeliveredMessage] = asyncio.Queue()

    async def on_reply(message: aiormq.abc.DeliveredMessage) -> None:
        await replies.put(message)

    # Direct reply-to: consume the pseudo-queue no-ack, then publish on the same channel.
    await amqp_channel.basic_consume(DIRECT_REPLY_TO, on_reply, no_ack=True)
    correlation_id = uuid.uuid4().hex
    await publish_raw(
        amqp_channel,
        event("PING", {}),
        queue,
        reply_to=DIRECT_REPLY_TO,
        correlation_id=correlation_id,
    )

    async with asyncio.timeout(5):
        reply = await replies.get()
    assert orjson.loads(reply.body) == {"data": value}
    assert reply.header.properties.correlation_id == correlation_id
    await handle.close()
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, f"{queue}.dlq") == 0
    assert replies.empty()
