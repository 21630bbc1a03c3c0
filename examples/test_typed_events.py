"""Typed events, runnable without RabbitMQ: ``pytest examples/test_typed_events.py``.

A handler's annotations are checked on every delivery: data that fits is converted (a
``Decimal`` from ``"9.90"``, dataclasses built), data that does not goes to the dead-letter
queue with a reason naming the field. A producer's result is checked before it is published.
The same annotations give each action a JSON Schema and the service an AsyncAPI document.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from eventrabbit import InvalidResult, RetryConfig, asyncapi, build_event_dependencies
from eventrabbit.common import ConsumeChannel
from eventrabbit.testing import MemoryBroker, consuming, memory_broker

pytestmark = pytest.mark.asyncio  # not needed with asyncio_mode = "auto"


@dataclass
class Line:
    sku: str
    price: Decimal


@pytest.fixture
def broker() -> Iterator[MemoryBroker]:
    with memory_broker() as fresh:
        yield fresh


async def test_typed_events(broker: MemoryBroker) -> None:
    events, handle = build_event_dependencies(broker.url, retry_config=RetryConfig())
    orders = ConsumeChannel(broker.url, "orders")
    totals: list[Decimal] = []

    @events.consumer("ORDER_PLACED")
    async def on_order(order_id: int, lines: list[Line]) -> None:
        totals.append(sum((line.price for line in lines), Decimal(0)))

    @events.producer(exchange_name="", action="ORDER_PLACED", key="orders")
    async def place_order(order_id: object, lines: list[Line]) -> dict[str, int | list[Line]]:
        return {"order_id": order_id, "lines": lines}  # type: ignore[dict-item]

    async with consuming(handle, orders):
        # Fits: the handler gets Line objects with Decimal prices.
        await place_order(1, [Line("book", Decimal("9.90")), Line("pen", Decimal("1.10"))])
        await broker.wait_idle("orders")
        assert totals == [Decimal("11.00")]

        # Does not fit: dead-lettered at once (never retried), the reason names the field.
        broker.publish(
            {"order_id": 2, "lines": [{"sku": "book", "price": 9.9}]},
            routing_key="orders",
            action="ORDER_PLACED",
        )
        [dead] = await broker.wait_for_messages("orders.dlq", 1)
        assert dead.headers["x-eventrabbit-error"] == (
            "data does not fit handler 'ORDER_PLACED': lines[0].price: "
            "expected decimal string, got float"
        )

        # A result that does not fit its annotation is refused before anything is published.
        with pytest.raises(InvalidResult):
            await place_order("three", [])
        assert totals == [Decimal("11.00")]

    # The same annotations, as JSON Schema and as an AsyncAPI 3.0 document.
    data = events.schemas()["ORDER_PLACED"]["data"]
    assert data["properties"]["order_id"] == {"type": "integer"}
    document = asyncapi(events, orders, title="orders", version="1.0.0")
    assert document["asyncapi"] == "3.0.0"
