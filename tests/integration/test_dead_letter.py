"""Dead-lettering after exhausted retries, and the error reply to a failed request.

CONTRACT.md, "Failure handling" and "reply_to", checked on the wire with the raw aiormq
client: the copy in ``<q>.dlq``, the state of ``<q>`` after the service stopped, and the
replies a caller receives (on an exclusive queue and on RabbitMQ's direct reply-to).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import aiormq
import aiormq.abc
import orjson

from eventrabbit import RetryConfig
from tests.conftest import Services
from tests.helpers import Calls, collect, event, publish_raw, queue_depth

Channel = aiormq.abc.AbstractChannel
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
MAX_RETRIES = 2
DELAY = 0.3


# --- local helpers ------------------------------------------------------------------------


class FailingService:
    """A service whose handler for ``CHARGE`` always raises ``RuntimeError``, consuming a
    fresh queue (``start``)."""

    def __init__(self, services: Services, prefix: str, error: str) -> None:
        self.services = services
        self.events, self.handle = services.build(
            retry_config=RetryConfig(max_retries=MAX_RETRIES, retry_delay_seconds=DELAY),
        )
        self.target = services.target(prefix)
        self.queue = self.target.queue_name
        self.calls: list[int] = []

        @self.events.consumer("CHARGE")
        async def charge(amount: int) -> None:
            self.calls.append(amount)
            raise RuntimeError(error)

    async def start(self) -> None:
        await self.services.consume(self.handle, self.target)


def error_reply(message: aiormq.abc.DeliveredMessage) -> dict[str, Any]:
    """The ``error`` object of a reply body, checking the reply's shape on the way."""
    body = orjson.loads(message.body)
    assert set(body) == {"error"}, f"reply is not an error reply: {body!r}"
    assert set(body["error"]) == {"type", "message"}, body
    return body["error"]


# --- tests --------------------------------------------------------------------------------


async def test_exhausted_retries_dead_letter_the_message_unchanged_with_the_reason(
    services: Services, amqp_channel: Channel
) -> None:
    service = FailingService(services, "dead", "card declined #42")
    queue = service.queue
    # Odd spacing and key order: the dead letter must be these bytes, not a re-encoding.
    body = b'{ "data" : {"amount": 250} ,  "action":"CHARGE" }'
    message_id = f"msg-{uuid.uuid4().hex}"
    correlation_id = f"corr-{uuid.uuid4().hex}"
    stamp = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

    await service.start()
    await publish_raw(
        amqp_channel,
        body,
        queue,
        content_type="application/json",
        delivery_mode=2,
        message_id=message_id,
        correlation_id=correlation_id,
        app_id="billing",
        message_type="charge.requested",
        timestamp=stamp,
        headers={"tenant": "acme", "attempt-budget": 9},
    )
    [dead] = await collect(amqp_channel, f"{queue}.dlq", 1)
    await service.handle.close()

    # The handle is closed: an unacked original would be back in the queue by now.
    assert await queue_depth(amqp_channel, queue) == 0, "the original was not acked"
    assert await queue_depth(amqp_channel, f"{queue}.delay") == 0
    assert await queue_depth(amqp_channel, f"{queue}.dlq") == 0, "more than one dead letter"
    assert service.calls == [250] * (MAX_RETRIES + 1)

    assert dead.body == body
    props = dead.header.properties
    assert props.content_type == "application/json"
    assert props.delivery_mode == 2
    assert props.message_id == message_id
    assert props.correlation_id == correlation_id
    assert props.app_id == "billing"
    assert props.message_type == "charge.requested"
    assert props.timestamp == stamp
    headers = dict(props.headers or {})
    assert headers["tenant"] == "acme"
    assert headers["attempt-budget"] == 9
    assert headers["x-eventrabbit-error"] == "RuntimeError: card declined #42"
    assert headers["x-retry-count"] == MAX_RETRIES
    assert type(headers["x-retry-count"]) is int, type(headers["x-retry-count"])
    assert headers["x-eventrabbit-queue"] == queue
    leaked = [h for h in headers if h == "x-death" or h.startswith(("x-first-", "x-last-"))]
    assert not leaked, f"broker headers on the dead letter: {leaked}"


async def test_a_request_that_fails_for_good_gets_exactly_one_error_reply(
    services: Services, amqp_channel: Channel
) -> None:
    service = FailingService(services, "rpc-dead", "ledger unavailable")
    queue = service.queue
    reply_queue = (await amqp_channel.queue_declare("", exclusive=True)).queue
    assert reply_queue
    correlation_id = f"corr-{uuid.uuid4().hex}"

    await service.start()
    await publish_raw(
        amqp_channel,
        event("CHARGE", {"amount": 5}),
        queue,
        reply_to=reply_queue,
        correlation_id=correlation_id,
        message_id="req-1",
    )
    [reply] = await collect(amqp_channel, reply_queue, 1)
    # The failure is final only after the retries: the reply comes with the dead letter.
    [dead] = await collect(amqp_channel, f"{queue}.dlq", 1)
    await service.handle.close()

    # Closed: every reply the service would send has been confirmed by now.
    assert await queue_depth(amqp_channel, reply_queue) == 0, "more than one reply"
    assert service.calls == [5] * (MAX_RETRIES + 1)
    assert reply.header.properties.correlation_id == correlation_id
    error = error_reply(reply)
    assert error["type"] == "RuntimeError"
    assert "ledger unavailable" in error["message"]
    assert dead.header.properties.reply_to == reply_queue
    assert dead.header.properties.correlation_id == correlation_id


async def test_a_failed_request_over_direct_reply_to_gets_exactly_one_error_reply(
    services: Services, amqp_channel: Channel
) -> None:
    service = FailingService(services, "rpc-direct", "fraud check failed")
    queue = service.queue
    replies: Calls[aiormq.abc.DeliveredMessage] = Calls()
    marker_seen = asyncio.Event()

    async def on_reply(message: aiormq.abc.DeliveredMessage) -> None:
        if message.body == b"marker":
            marker_seen.set()
        else:
            replies.add(message)

    # Direct reply-to: consume the pseudo-queue with no_ack and publish the request on the
    # same channel.
    await amqp_channel.basic_consume(DIRECT_REPLY_TO, on_reply, no_ack=True)
    correlation_id = f"corr-{uuid.uuid4().hex}"

    await service.start()
    await publish_raw(
        amqp_channel,
        event("CHARGE", {"amount": 9}),
        queue,
        reply_to=DIRECT_REPLY_TO,
        correlation_id=correlation_id,
    )
    await replies.count(1)
    await collect(amqp_channel, f"{queue}.dlq", 1)
    await service.handle.close()

    # The service is closed. A marker sent to the same reply address after that arrives
    # behind any reply the service still had in transit.
    address = replies.values[0].routing_key
    assert address, "the reply has no routing key"
    assert address.startswith(DIRECT_REPLY_TO + "."), address
    await publish_raw(amqp_channel, b"marker", address)
    await asyncio.wait_for(marker_seen.wait(), timeout=5)

    assert len(replies) == 1, f"{len(replies)} replies: {[r.body for r in replies.values]}"
    assert service.calls == [9] * (MAX_RETRIES + 1)
    [reply] = replies.values
    assert reply.header.properties.correlation_id == correlation_id
    error = error_reply(reply)
    assert error["type"] == "RuntimeError"
    assert "fraud check failed" in error["message"]
