"""reply_to (RPC): the handler's result goes back to the caller's reply address."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiormq.abc
import orjson
import pytest

from eventrabbit import Events, Handle, RetryConfig
from tests.conftest import Names, Services
from tests.helpers import collect, event, publish_raw, queue_depth

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


@pytest.fixture
def service(services: Services) -> tuple[Events, Handle]:
    # No retries: a failing request fails for good at once.
    return services.build(retry_config=RetryConfig(max_retries=0))


async def consumed_queue(services: Services, handle: Handle) -> str:
    """A fresh queue that ``handle`` consumes; its name once consuming."""
    target = services.target()
    await services.consume(handle, target)
    return target.queue_name


async def reply_queue_of(names: Names, channel: Channel) -> str:
    """An exclusive queue of the raw client's for replies (deleted with its connection)."""
    queue = names.queue("reply")
    await channel.queue_declare(queue, exclusive=True)
    return queue


@pytest.mark.parametrize("value", JSON_VALUES, ids=JSON_IDS)
async def test_reply_carries_result_and_correlation_id(
    service: tuple[Events, Handle],
    services: Services,
    names: Names,
    amqp_channel: Channel,
    value: Any,
) -> None:
    events, handle = service

    @events.consumer(action="GET_VALUE")
    async def get_value(request_id: str) -> Any:
        return value

    reply_queue = await reply_queue_of(names, amqp_channel)
    queue = await consumed_queue(services, handle)

    correlation_id = uuid.uuid4().hex
    await publish_raw(
        amqp_channel,
        event("GET_VALUE", {"request_id": "r1"}),
        queue,
        reply_to=reply_queue,
        correlation_id=correlation_id,
    )

    [reply] = await collect(amqp_channel, reply_queue, 1)
    assert orjson.loads(reply.body) == {"data": value}
    assert reply.header.properties.correlation_id == correlation_id
    assert reply.exchange == ""
    assert reply.routing_key == reply_queue
    assert reply.header.properties.content_type == "application/json"
    await handle.close()
    assert await queue_depth(amqp_channel, queue) == 0  # the request was acked
    assert await queue_depth(amqp_channel, reply_queue) == 0  # exactly one reply


async def test_concurrent_requests_get_their_own_replies(
    service: tuple[Events, Handle], services: Services, names: Names, amqp_channel: Channel
) -> None:
    events, handle = service

    @events.consumer(action="SQUARE")
    async def square(n: int) -> int:
        return n * n

    reply_queue = await reply_queue_of(names, amqp_channel)
    queue = await consumed_queue(services, handle)
    for n in range(10):
        await publish_raw(
            amqp_channel,
            event("SQUARE", {"n": n}),
            queue,
            reply_to=reply_queue,
            correlation_id=f"c{n}",
        )

    replies = {
        reply.header.properties.correlation_id: orjson.loads(reply.body)
        for reply in await collect(amqp_channel, reply_queue, 10)
    }
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
    services: Services,
    names: Names,
    amqp_channel: Channel,
    action: str,
    data: dict[str, Any],
    error_type: str | None,
    text: str,
) -> None:
    events, handle = service

    @events.consumer(action="FAIL")
    async def fail(n: int) -> None:
        raise ValueError(f"no value for {n}")

    reply_queue = await reply_queue_of(names, amqp_channel)
    queue = await consumed_queue(services, handle)

    correlation_id = uuid.uuid4().hex
    await publish_raw(
        amqp_channel,
        event(action, data),
        queue,
        reply_to=reply_queue,
        correlation_id=correlation_id,
    )

    [reply] = await collect(amqp_channel, reply_queue, 1)
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
    services: Services,
    amqp_channel: Channel,
    value: Any,
) -> None:
    events, handle = service

    @events.consumer(action="PING")
    async def ping() -> Any:
        return value

    queue = await consumed_queue(services, handle)

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
