"""Bad input goes straight to the dead-letter queue and never stops the consumer.

CONTRACT.md, "Failure handling": a body that is not JSON, not an object, lacks a string
``action`` or an object ``data``, names an action with no handler, or whose ``data`` does
not fit the handler (and, per QueueConfig, a body over ``max_body_size``) is dead-lettered
at once with the reason in ``x-eventrabbit-error`` and is never retried.

One service consumes one queue for the whole module (one per broker), the way a real service
meets a stream of bad messages. It retries forever with a 30 s delay, so a bad body that were
wrongly retried could not reach the dead-letter queue within the tests' 5 s timeouts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiormq.abc
import orjson
import pytest
import pytest_asyncio

from eventrabbit import RetryConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel
from eventrabbit.connection import open_connection
from tests.conftest import Names
from tests.helpers import Calls, collect, publish_raw, queue_depth

pytestmark = pytest.mark.asyncio(loop_scope="module")

Channel = aiormq.abc.AbstractChannel
DEAD_LETTER_TIMEOUT = 5.0  # far below the 30 s retry delay
FIVE_MB = 5 * 1024 * 1024


def padded_event(size: int, token: str) -> bytes:
    """A valid GOOD event of exactly ``size`` bytes (the padding is a JSON string)."""
    head = f'{{"action":"GOOD","data":{{"token":"{token}","amount":1,"note":"'.encode()
    tail = b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def good_event(token: str) -> bytes:
    return orjson.dumps({"action": "GOOD", "data": {"token": token, "amount": 1}})


# (id, body, fragments the reason must contain, case-insensitive). Bodies that would reach
# the GOOD handler carry the token "bad" so a wrong call would be recorded.
BAD_BODIES: list[tuple[str, bytes, tuple[str, ...]]] = [
    ("not-json", b"this is not json {", ("json",)),
    ("empty", b"", ("json",)),
    (
        "invalid-utf8",
        b'{"action": "GOOD", "data": {"token": "bad\xff\xfe", "amount": 1}}',
        ("utf-8",),
    ),
    ("array", b'[{"action": "GOOD", "data": {"token": "bad", "amount": 1}}]', ("array",)),
    ("number", b"42", ("number",)),
    ("string", b'"GOOD"', ("string",)),
    ("null", b"null", ("null",)),
    ("boolean", b"true", ("boolean",)),
    ("missing-action", b'{"data": {"token": "bad", "amount": 1}}', ("action",)),
    (
        "non-string-action",
        b'{"action": ["GOOD"], "data": {"token": "bad", "amount": 1}}',
        ("action",),
    ),
    ("missing-data", b'{"action": "GOOD"}', ("data",)),
    ("array-data", b'{"action": "GOOD", "data": [{"token": "bad", "amount": 1}]}', ("data",)),
    ("null-data", b'{"action": "GOOD", "data": null}', ("data",)),
    (
        "no-handler",
        b'{"action": "NOBODY_HANDLES_THIS", "data": {"token": "bad"}}',
        ("no handler", "NOBODY_HANDLES_THIS"),
    ),
    (
        "unexpected-key",
        b'{"action": "GOOD", "data": {"token": "bad", "amount": 1, "surprise": true}}',
        ("unexpected", "surprise"),
    ),
    (
        "missing-required-key",
        b'{"action": "GOOD", "data": {"token": "bad"}}',
        ("missing", "amount"),
    ),
    ("five-mb", padded_event(FIVE_MB, "bad"), ("max_body_size",)),
]


@dataclass
class Service:
    queue: str
    channel: Channel
    #: Tokens the GOOD handler was called with, in order.
    calls: Calls[str] = field(default_factory=Calls)

    @property
    def dlq(self) -> str:
        return f"{self.queue}.dlq"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(module_broker_url: str) -> AsyncIterator[Service]:
    url = module_broker_url
    names = Names()
    queue = names.queue("bad")
    events, handle = build_event_dependencies(
        url, retry_config=RetryConfig(max_retries=-1, retry_delay_seconds=30)
    )
    connection = await open_connection(url)
    channel = await connection.channel(publisher_confirms=True)
    svc = Service(queue, channel)

    @events.consumer("GOOD")
    async def good(token: str, amount: int, note: str = "") -> dict[str, str]:
        svc.calls.add(token)
        return {"token": token}

    target = ConsumeChannel(url=url, queue_name=queue)
    task = asyncio.create_task(handle.consume(target))
    try:
        await handle.ready(target)
        yield svc
        assert not task.done(), "consume ended during the module"
    finally:
        await handle.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connection.close()
        await names.delete_all(url)


async def dead_letter_of(
    channel: Channel, dlq: str, message_id: str
) -> aiormq.abc.DeliveredMessage:
    """The next dead letter, which must be the message with ``message_id``."""
    [message] = await collect(channel, dlq, 1, timeout=DEAD_LETTER_TIMEOUT)
    assert message.header.properties.message_id == message_id
    return message


async def handled(service: Service, token: str) -> None:
    await service.calls.until(lambda calls: token in calls, f"GOOD with token {token}")


@pytest.mark.parametrize(
    ("body", "fragments"),
    [pytest.param(body, fragments, id=name) for name, body, fragments in BAD_BODIES],
)
async def test_bad_body_is_dead_lettered_at_once_and_the_consumer_goes_on(
    service: Service, body: bytes, fragments: tuple[str, ...]
) -> None:
    channel = service.channel
    await channel.queue_purge(service.dlq)  # what an earlier failed test may have left
    calls_before = len(service.calls)
    message_id = f"bad-{uuid.uuid4().hex}"
    token = f"good-{uuid.uuid4().hex}"

    await publish_raw(
        channel,
        body,
        service.queue,
        message_id=message_id,
        content_type="application/json",
        headers={"tenant": "acme"},
    )
    await publish_raw(channel, good_event(token), service.queue)

    dead = await dead_letter_of(channel, service.dlq, message_id)
    await handled(service, token)  # the good message after the bad one

    assert service.calls.values[calls_before:] == [token], "the handler saw the bad message"
    assert dead.body == body, "the dead letter's body differs from what was published"
    assert dead.header.properties.content_type == "application/json"
    headers = dict(dead.header.properties.headers or {})
    reason = headers.get("x-eventrabbit-error")
    assert isinstance(reason, str), f"x-eventrabbit-error is {reason!r}"
    for fragment in fragments:
        assert fragment.lower() in reason.lower(), f"{fragment!r} not in reason {reason!r}"
    assert headers.get("x-retry-count") == 0
    assert type(headers.get("x-retry-count")) is int
    assert headers.get("x-eventrabbit-queue") == service.queue
    assert headers.get("tenant") == "acme"
    # Not retried: no copy waits in the delay queue.
    assert await queue_depth(channel, f"{service.queue}.delay") == 0


async def test_a_body_of_exactly_max_body_size_is_handled(service: Service) -> None:
    token = f"big-{uuid.uuid4().hex}"
    await publish_raw(service.channel, padded_event(4 * 1024 * 1024, token), service.queue)
    await handled(service, token)


async def test_a_bad_request_gets_an_invalid_message_error_reply(service: Service) -> None:
    channel = service.channel
    await channel.queue_purge(service.dlq)
    reply_queue = (await channel.queue_declare("", exclusive=True)).queue
    assert reply_queue
    message_id = f"bad-{uuid.uuid4().hex}"
    correlation_id = f"corr-{uuid.uuid4().hex}"
    body = b'{"action": "GOOD", "data": "not an object"}'

    await publish_raw(
        channel,
        body,
        service.queue,
        message_id=message_id,
        reply_to=reply_queue,
        correlation_id=correlation_id,
    )
    [reply] = await collect(channel, reply_queue, 1, timeout=DEAD_LETTER_TIMEOUT)
    dead = await dead_letter_of(channel, service.dlq, message_id)

    assert reply.header.properties.correlation_id == correlation_id
    reply_body = orjson.loads(reply.body)
    assert set(reply_body) == {"error"}, reply_body
    assert reply_body["error"]["type"] == "InvalidMessage"
    assert "data" in reply_body["error"]["message"]
    assert dead.body == body
    assert dead.header.properties.reply_to == reply_queue
    assert await queue_depth(channel, reply_queue) == 0, "more than one reply"
    await channel.queue_delete(reply_queue)
