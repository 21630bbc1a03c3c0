"""@events.function: consume one action, publish the result as another (or the same)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiormq.abc
import orjson
import pytest

from eventrabbit import Events, Handle
from tests.conftest import Names, Services
from tests.helpers import collect, event, publish_raw, queue_depth

Channel = aiormq.abc.AbstractChannel


@dataclass
class Service:
    """One ``events, handle`` pair on the broker under test (``services`` stops it)."""

    services: Services
    events: Events
    handle: Handle

    async def consume(self) -> str:
        """Consume a fresh queue; its name once consuming."""
        target = self.services.target()
        await self.services.consume(self.handle, target)
        return target.queue_name


@pytest.fixture
def service(services: Services) -> Service:
    return Service(services, *services.build())


async def observed_exchange(
    channel: Channel, names: Names, exchange_type: str = "fanout", key: str = ""
) -> tuple[str, str]:
    """An exchange the function publishes to, and a queue that observes it."""
    exchange, observer = names.exchange("out"), names.queue("observer")
    await channel.exchange_declare(exchange, exchange_type=exchange_type, durable=True)
    await channel.queue_declare(observer, durable=True)
    await channel.queue_bind(observer, exchange, routing_key=key)
    return exchange, observer


async def test_result_published_as_action_reply(
    service: Service, names: Names, amqp_channel: Channel
) -> None:
    exchange, observer = await observed_exchange(amqp_channel, names)
    calls: list[dict[str, Any]] = []

    @service.events.function(action="SEND_EMAIL", exchange_name=exchange, action_reply="EMAIL_SENT")
    async def send_email(user_id: int, email: str) -> dict[str, Any]:
        calls.append({"user_id": user_id, "email": email})
        return {"user_id": user_id, "email": email, "status": "sent"}

    queue = await service.consume()
    await publish_raw(amqp_channel, event("SEND_EMAIL", {"user_id": 3, "email": "a@b.c"}), queue)

    [message] = await collect(amqp_channel, observer, 1)
    assert orjson.loads(message.body) == {
        "action": "EMAIL_SENT",
        "data": {"user_id": 3, "email": "a@b.c", "status": "sent"},
    }
    assert message.exchange == exchange
    assert message.header.properties.content_type == "application/json"
    assert message.header.properties.delivery_mode == 2
    assert calls == [{"user_id": 3, "email": "a@b.c"}]
    await service.handle.close()
    assert await queue_depth(amqp_channel, queue) == 0  # the request was acked
    assert await queue_depth(amqp_channel, observer) == 0  # published exactly once


async def test_action_reply_defaults_to_action(
    service: Service, names: Names, amqp_channel: Channel
) -> None:
    exchange, observer = await observed_exchange(amqp_channel, names)

    @service.events.function(action="RECALC", exchange_name=exchange)
    async def recalc(n: int) -> dict[str, int]:
        return {"n": n * 2}

    queue = await service.consume()
    await publish_raw(amqp_channel, event("RECALC", {"n": 21}), queue)

    [message] = await collect(amqp_channel, observer, 1)
    assert orjson.loads(message.body) == {"action": "RECALC", "data": {"n": 42}}


async def test_key_is_the_routing_key(
    service: Service, names: Names, amqp_channel: Channel
) -> None:
    exchange, observer = await observed_exchange(amqp_channel, names, "direct", "emails.sent")

    @service.events.function(
        action="SEND", exchange_name=exchange, action_reply="SENT", key="emails.sent"
    )
    async def send(to: str) -> dict[str, str]:
        return {"to": to}

    queue = await service.consume()
    await publish_raw(amqp_channel, event("SEND", {"to": "x"}), queue)

    [message] = await collect(amqp_channel, observer, 1)
    assert message.routing_key == "emails.sent"
    assert orjson.loads(message.body) == {"action": "SENT", "data": {"to": "x"}}


@pytest.mark.parametrize(
    "value",
    [{"k": {"nested": [1]}}, [1, "two", None], "text", 7, 1.5, True, False, None],
    ids=["dict", "list", "str", "int", "float", "true", "false", "null"],
)
async def test_any_json_result_is_published(
    service: Service, names: Names, amqp_channel: Channel, value: Any
) -> None:
    exchange, observer = await observed_exchange(amqp_channel, names)

    @service.events.function(action="COMPUTE", exchange_name=exchange, action_reply="COMPUTED")
    async def compute() -> Any:
        return value

    queue = await service.consume()
    await publish_raw(amqp_channel, event("COMPUTE", {}), queue)

    [message] = await collect(amqp_channel, observer, 1)
    assert orjson.loads(message.body) == {"action": "COMPUTED", "data": value}
    await service.handle.close()
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, f"{queue}.dlq") == 0


async def test_request_with_reply_to_gets_reply_and_event(
    service: Service, names: Names, amqp_channel: Channel
) -> None:
    exchange, observer = await observed_exchange(amqp_channel, names)

    @service.events.function(action="ADD", exchange_name=exchange, action_reply="ADDED")
    async def add(a: int, b: int) -> int:
        return a + b

    reply_queue = names.queue("reply")
    await amqp_channel.queue_declare(reply_queue, exclusive=True)
    queue = await service.consume()
    await publish_raw(
        amqp_channel,
        event("ADD", {"a": 2, "b": 3}),
        queue,
        reply_to=reply_queue,
        correlation_id="sum-1",
    )

    [reply] = await collect(amqp_channel, reply_queue, 1)
    assert orjson.loads(reply.body) == {"data": 5}
    assert reply.header.properties.correlation_id == "sum-1"
    [published] = await collect(amqp_channel, observer, 1)
    assert orjson.loads(published.body) == {"action": "ADDED", "data": 5}
