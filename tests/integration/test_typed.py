"""Typed events on a broker (issue 11): data that does not fit a handler's annotations is bad
input — dead-lettered at once with a reason naming the handler, the field and what was wrong,
never retried — and a function's result that does not fit its return annotation publishes
nothing and fails its delivery like any other exception.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiormq.abc
import pytest

from eventrabbit import RemoteError, RetryConfig
from tests.conftest import Names, Services
from tests.helpers import collect, event, publish_raw, queue_depth

Channel = aiormq.abc.AbstractChannel


@dataclasses.dataclass
class Line:
    sku: str
    price: Decimal


def header(message: aiormq.abc.DeliveredMessage, name: str) -> Any:
    return (message.header.properties.headers or {})[name]


async def test_the_seed_handler_refuses_misfitting_data_at_once_into_the_dlq(
    services: Services, amqp_channel: Channel
) -> None:
    # The default retry config retries failures forever: bad input must not loop.
    events, handle = services.build()
    seen: list[tuple[int, str]] = []
    arrived = asyncio.Event()

    @events.consumer(action="USER_CREATED")
    async def handle_user_created(user_id: int, name: str) -> None:
        seen.append((user_id, name))
        arrived.set()

    target = services.target("typed")
    await services.consume(handle, target)
    queue = target.queue_name
    await publish_raw(amqp_channel, event("USER_CREATED", {"user_id": "abc", "name": 7}), queue)
    await publish_raw(amqp_channel, event("USER_CREATED", {"user_id": 1, "name": "Ann"}), queue)

    [dead] = await collect(amqp_channel, queue + ".dlq", 1)
    assert header(dead, "x-eventrabbit-error") == (
        "data does not fit handler 'USER_CREATED': user_id: expected int, got str"
    )
    assert header(dead, "x-retry-count") == 0
    await arrived.wait()
    assert seen == [(1, "Ann")]
    await handle.close()
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, queue + ".delay") == 0  # never retried


async def test_nested_data_is_checked_converted_and_its_misfits_named_by_path(
    services: Services, amqp_channel: Channel
) -> None:
    events, handle = services.build(retry_config=RetryConfig(max_retries=3))
    got: asyncio.Queue[tuple[datetime, list[Line]]] = asyncio.Queue()

    @events.consumer("ORDER_PLACED")
    async def on_order(placed: datetime, lines: list[Line]) -> None:
        await got.put((placed, lines))

    target = services.target("typed")
    await services.consume(handle, target)
    good = {"placed": "2024-05-01T12:00:00Z", "lines": [{"sku": "a", "price": "9.90"}]}
    lines = [{"sku": "a", "price": "1"}, {"sku": "b", "price": "2"}, {"sku": "c", "price": 3}]
    bad = {"placed": "2024-05-01T12:00:00Z", "lines": lines}
    await publish_raw(amqp_channel, event("ORDER_PLACED", bad), target.queue_name)
    await publish_raw(amqp_channel, event("ORDER_PLACED", good), target.queue_name)

    [dead] = await collect(amqp_channel, target.queue_name + ".dlq", 1)
    assert header(dead, "x-eventrabbit-error") == (
        "data does not fit handler 'ORDER_PLACED': lines[2].price: expected decimal string, got int"
    )
    placed, handled = await got.get()
    assert placed == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert handled == [Line("a", Decimal("9.90"))]


async def test_a_caller_gets_the_reason_as_an_error_reply(services: Services) -> None:
    events, handle = services.build()

    @events.consumer("ADD")
    async def add(a: int, b: int) -> int:
        return a + b

    target = services.target("typed")
    await services.consume(handle, target)
    assert await events.call("ADD", {"a": 1, "b": 2}, key=target.queue_name, timeout=10) == 3
    with pytest.raises(RemoteError) as info:
        await events.call("ADD", {"a": 1, "b": 2.5}, key=target.queue_name, timeout=10)
    assert info.value.type == "InvalidMessage"
    assert info.value.message == "data does not fit handler 'ADD': b: expected int, got float"


async def test_a_function_result_that_does_not_fit_publishes_nothing_and_fails(
    services: Services, names: Names, amqp_channel: Channel
) -> None:
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=1, retry_delay_seconds=0.1)
    )
    results = names.queue("results")
    await amqp_channel.queue_declare(results)
    attempts: list[int] = []

    @events.function("QUOTE", exchange_name="", action_reply="QUOTED", key=results)
    async def quote(qty: int) -> dict[str, int]:
        attempts.append(qty)
        return {"total": qty * 2} if qty > 0 else {"total": "free"}  # type: ignore[dict-item]

    target = services.target("typed")
    await services.consume(handle, target)
    await publish_raw(amqp_channel, event("QUOTE", {"qty": 0}), target.queue_name)
    [dead] = await collect(amqp_channel, target.queue_name + ".dlq", 1)
    assert header(dead, "x-eventrabbit-error") == (
        "InvalidResult: the result of test_a_function_result_that_does_not_fit_publishes_nothing"
        "_and_fails.<locals>.quote() for 'QUOTED' does not fit its return annotation, nothing was"
        " published: ['total']: expected int, got str"
    )
    assert header(dead, "x-retry-count") == 1  # a failure like any other: retried, then dead
    assert attempts == [0, 0]
    await publish_raw(amqp_channel, event("QUOTE", {"qty": 2}), target.queue_name)
    [published] = await collect(amqp_channel, results, 1)
    assert published.body == b'{"action":"QUOTED","data":{"total":4}}'
    await handle.close()
    assert await queue_depth(amqp_channel, results) == 0  # the misfit was never published
