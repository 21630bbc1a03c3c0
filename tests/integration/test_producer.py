"""@events.producer: what reaches the broker, with which properties, and what the caller sees."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import Any

import aiormq
import aiormq.abc
import orjson
import pytest

import eventrabbit
from eventrabbit.events import Events
from eventrabbit.handle import Handle
from tests.conftest import Names, Services
from tests.helpers import assert_absent, collect, queue_depth

Channel = aiormq.abc.AbstractChannel


async def bound_queue(
    channel: Channel, names: Names, exchange_type: str = "direct", key: str = ""
) -> tuple[str, str]:
    """A fresh exchange and a queue bound to it with ``key``, declared by the raw client."""
    exchange, queue = names.exchange(), names.queue()
    await channel.exchange_declare(exchange, exchange_type=exchange_type, durable=True)
    await channel.queue_declare(queue, durable=True)
    await channel.queue_bind(queue, exchange, routing_key=key)
    return exchange, queue


@pytest.fixture
def service(services: Services) -> tuple[Events, Handle]:
    return services.build()


def assert_event_properties(
    message: aiormq.abc.DeliveredMessage, sent: tuple[datetime, datetime]
) -> None:
    """eventrabbit's properties, with a timestamp taken between ``sent``'s two moments."""
    properties = message.header.properties
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == 2
    assert isinstance(properties.message_id, str)
    assert re.fullmatch(r"[0-9a-f]{32}", properties.message_id), properties.message_id
    assert isinstance(properties.timestamp, datetime)
    timestamp = properties.timestamp
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    # AMQP timestamps have a resolution of one second: the first moment, to the second.
    before, after = sent
    assert before.replace(microsecond=0) <= timestamp <= after, (before, timestamp, after)


@pytest.mark.parametrize("key", [None, "user.created"])
async def test_return_value_published_as_event(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel, key: str | None
) -> None:
    events, _ = service
    exchange, queue = await bound_queue(amqp_channel, names, "direct", key or "")

    @events.producer(exchange_name=exchange, action="USER_CREATED", key=key)
    async def create_user(user_id: int, name: str) -> dict[str, Any]:
        return {"user_id": user_id, "name": name}

    before = datetime.now(tz=UTC)
    assert await create_user(1, name="Ann") == {"user_id": 1, "name": "Ann"}
    assert await create_user(2, name="Bob") == {"user_id": 2, "name": "Bob"}
    sent = (before, datetime.now(tz=UTC))

    # The call returned after the confirm: both are in the queue already.
    assert await queue_depth(amqp_channel, queue) == 2
    first, second = await collect(amqp_channel, queue, 2)
    assert orjson.loads(first.body) == {
        "action": "USER_CREATED",
        "data": {"user_id": 1, "name": "Ann"},
    }
    assert orjson.loads(second.body) == {
        "action": "USER_CREATED",
        "data": {"user_id": 2, "name": "Bob"},
    }
    for message in (first, second):
        assert message.exchange == exchange
        assert message.routing_key == (key or "")
        assert_event_properties(message, sent)
    assert first.header.properties.message_id != second.header.properties.message_id


@pytest.mark.parametrize(
    "value", [{"a": [1, 2]}, [1, "two", None], "text", 42, 2.5, True, False, None]
)
async def test_any_json_value_published(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel, value: Any
) -> None:
    events, _ = service
    exchange, queue = await bound_queue(amqp_channel, names, "fanout")

    @events.producer(exchange_name=exchange, action="VALUE")
    async def produce() -> Any:
        return value

    assert await produce() == value
    [message] = await collect(amqp_channel, queue, 1)
    assert orjson.loads(message.body) == {"action": "VALUE", "data": value}


async def test_producer_on_a_method(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel
) -> None:
    events, _ = service
    exchange, queue = await bound_queue(amqp_channel, names, "fanout")

    class Retro:
        def __init__(self, b: str) -> None:
            self.b = b

        @events.producer(exchange_name=exchange, action="TRACKERS_INFO")
        async def abc(self) -> dict[str, str]:
            return {"b": self.b}

    before = datetime.now(tz=UTC)
    assert await Retro("12").abc() == {"b": "12"}
    sent = (before, datetime.now(tz=UTC))
    [message] = await collect(amqp_channel, queue, 1)
    assert orjson.loads(message.body) == {"action": "TRACKERS_INFO", "data": {"b": "12"}}
    assert_event_properties(message, sent)


async def test_business_exception_propagates_and_publishes_nothing(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel
) -> None:
    events, _ = service
    exchange, queue = await bound_queue(amqp_channel, names, "fanout")

    class NotAllowed(Exception):
        pass

    @events.producer(exchange_name=exchange, action="MAYBE")
    async def maybe(ok: bool) -> dict[str, bool]:
        if not ok:
            raise NotAllowed("refused")
        return {"ok": ok}

    with pytest.raises(NotAllowed, match="refused"):
        await maybe(False)
    assert await queue_depth(amqp_channel, queue) == 0

    assert await maybe(True) == {"ok": True}
    [message] = await collect(amqp_channel, queue, 1)
    assert orjson.loads(message.body) == {"action": "MAYBE", "data": {"ok": True}}
    assert await queue_depth(amqp_channel, queue) == 0


async def test_missing_exchange_raises_publish_error_naming_it(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel
) -> None:
    events, _ = service
    missing = names.exchange("missing")
    exchange, queue = await bound_queue(amqp_channel, names, "fanout")

    @events.producer(exchange_name=missing, action="LOST")
    async def lost() -> dict[str, int]:
        return {"n": 1}

    @events.producer(exchange_name=exchange, action="FOUND")
    async def found() -> dict[str, int]:
        return {"n": 2}

    with pytest.raises(eventrabbit.PublishError, match=re.escape(missing)) as info:
        await lost()
    assert not isinstance(info.value, eventrabbit.UnroutableError)
    # The producer never declares the exchange.
    await assert_absent(amqp_channel, exchanges=(missing,))

    # The failed publish closed the publisher's channel broker-side; the next one works.
    assert await found() == {"n": 2}
    [message] = await collect(amqp_channel, queue, 1)
    assert orjson.loads(message.body) == {"action": "FOUND", "data": {"n": 2}}


async def test_missing_exchange_fails_only_its_own_publish(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel
) -> None:
    """A publish to a missing exchange must not fail publishes in flight beside it."""
    events, _ = service
    missing = names.exchange("missing")
    exchange, queue = await bound_queue(amqp_channel, names, "fanout")

    @events.producer(exchange_name=missing, action="LOST")
    async def lost() -> dict[str, int]:
        return {"n": -1}

    @events.producer(exchange_name=exchange, action="FOUND")
    async def found(n: int) -> dict[str, int]:
        return {"n": n}

    await found(-1)  # connected, so the burst below shares one channel
    results = await asyncio.wait_for(
        asyncio.gather(lost(), *(found(n) for n in range(50)), return_exceptions=True),
        timeout=20,
    )
    assert isinstance(results[0], eventrabbit.PublishError)
    assert missing in str(results[0])
    failed = [r for r in results[1:] if isinstance(r, BaseException)]
    assert not failed, (
        f"{len(failed)} of 50 publishes to the existing exchange {exchange!r} failed, e.g. "
        f"{type(failed[0]).__name__}: {failed[0]}"
    )
    assert await queue_depth(amqp_channel, queue) == 51


async def test_an_exchange_deleted_under_a_burst_fails_each_publish_to_it_cleanly(
    service: tuple[Events, Handle],
    names: Names,
    amqp_channel: Channel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every publish in flight to an exchange deleted meanwhile ends confirmed or with the
    PublishError naming it: none loops over new channels, none leaks an aiormq error."""
    events, _ = service
    exchange, _queue = await bound_queue(amqp_channel, names, "fanout")
    await events.publish(exchange, "X", {"n": -1})  # connected: the burst shares one channel

    def wave() -> list[asyncio.Task[str]]:
        return [asyncio.create_task(events.publish(exchange, "X", {"n": n})) for n in range(20)]

    # Publishes go out while the delete does and after it landed (those must fail).
    deleting = asyncio.create_task(amqp_channel.exchange_delete(exchange))
    burst: list[asyncio.Task[str]] = []
    while not deleting.done():
        burst += wave()
        await asyncio.sleep(0)
    await deleting
    burst += wave()
    results = await asyncio.wait_for(asyncio.gather(*burst, return_exceptions=True), 30)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert failed, "the exchange was deleted before the burst ended"
    assert {type(r) for r in failed} == {eventrabbit.PublishError}, {type(r) for r in failed}
    assert all("the exchange does not exist" in str(r) for r in failed)
    # Not sent again over and over, each time closing the next channel.
    resent = [r for r in caplog.records if "sending again" in r.getMessage()]
    assert len(resent) < len(failed)


async def test_unroutable_event_warns_and_counts(
    service: tuple[Events, Handle],
    names: Names,
    amqp_channel: Channel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    events, _ = service
    exchange = names.exchange()
    await amqp_channel.exchange_declare(exchange, exchange_type="fanout", durable=True)

    @events.producer(exchange_name=exchange, action="NOBODY_LISTENS")
    async def shout() -> dict[str, int]:
        return {"n": 1}

    before = events.publisher.unroutable_count
    with caplog.at_level(logging.WARNING, logger="eventrabbit"):
        assert await shout() == {"n": 1}
    assert events.publisher.unroutable_count == before + 1
    warnings = [
        r
        for r in caplog.records
        if r.name.startswith("eventrabbit") and r.levelno == logging.WARNING
    ]
    assert warnings, caplog.records
    assert any(exchange in r.getMessage() for r in warnings)


async def test_unroutable_event_raises_when_mandatory(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel
) -> None:
    events, _ = service
    exchange = names.exchange()
    await amqp_channel.exchange_declare(exchange, exchange_type="fanout", durable=True)

    @events.producer(exchange_name=exchange, action="MUST_ARRIVE", mandatory=True)
    async def must_arrive() -> dict[str, int]:
        return {"n": 1}

    with pytest.raises(eventrabbit.UnroutableError, match=re.escape(exchange)):
        await must_arrive()

    # Once a queue is bound, the same producer publishes normally.
    queue = names.queue()
    await amqp_channel.queue_declare(queue, durable=True)
    await amqp_channel.queue_bind(queue, exchange, routing_key="")
    assert await must_arrive() == {"n": 1}
    [message] = await collect(amqp_channel, queue, 1)
    assert orjson.loads(message.body) == {"action": "MUST_ARRIVE", "data": {"n": 1}}


async def test_concurrent_publishes_all_confirmed(
    service: tuple[Events, Handle], names: Names, amqp_channel: Channel
) -> None:
    events, _ = service
    exchange, queue = await bound_queue(amqp_channel, names, "direct", "bulk")

    @events.producer(exchange_name=exchange, action="BULK", key="bulk")
    async def bulk(n: int) -> dict[str, int]:
        return {"n": n}

    results = await asyncio.wait_for(asyncio.gather(*(bulk(n) for n in range(100))), timeout=20)
    assert results == [{"n": n} for n in range(100)]
    # Every call returned after its confirm, so every message is in the queue now.
    assert await queue_depth(amqp_channel, queue) == 100
    messages = await collect(amqp_channel, queue, 100)
    assert sorted(orjson.loads(m.body)["data"]["n"] for m in messages) == list(range(100))
    assert len({m.header.properties.message_id for m in messages}) == 100
