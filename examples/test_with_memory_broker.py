"""Test a service without RabbitMQ: ``pytest examples/test_with_memory_broker.py``.

The first half is a service module as it would be written for production — ``events`` and
``handle`` built at import time with the real broker's URL. The second half tests it on
eventrabbit's in-memory broker, unchanged: ``redirect_amqp`` sends its ``amqp://``
connections to a fresh ``MemoryBroker``, which routes like RabbitMQ and lets the test publish
raw bodies and look into queues.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from eventrabbit import ExchangeType, RetryConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel
from eventrabbit.testing import MemoryBroker, consuming, memory_broker, redirect_amqp

# ---------------------------------------------------------- the service (e.g. shop/orders.py)

URL = os.environ.get("EVENTRABBIT_URL", "amqp://guest:guest@localhost:5672/")

events, handle = build_event_dependencies(
    url=URL, retry_config=RetryConfig(max_retries=2, retry_delay_seconds=60)
)

#: The orders queue takes every "order.*" event published to the "shop" topic exchange.
ORDERS = ConsumeChannel(URL, "orders", "shop", ExchangeType.TOPIC, binding_keys=("order.*",))

STOCK = {"book": 3}


class OutOfStock(Exception):
    """Not enough of an item to fill an order."""


@events.function("ORDER_PLACED", "shop", action_reply="ORDER_CONFIRMED", key="confirmation.order")
async def place_order(order_id: int, item: str, quantity: int) -> dict[str, int | str]:
    if STOCK.get(item, 0) < quantity:
        raise OutOfStock(f"only {STOCK.get(item, 0)} {item} left")
    STOCK[item] -= quantity
    return {"order_id": order_id, "item": item}


@events.consumer("STOCK_LEVEL")
async def stock_level(item: str) -> int:
    return STOCK.get(item, 0)


# ------------------------------------------------------------ its tests (e.g. tests/test_orders.py)

pytestmark = pytest.mark.asyncio  # not needed with asyncio_mode = "auto"


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryBroker]:
    """A fresh in-memory broker that the service's amqp:// connections go to."""
    monkeypatch.setitem(STOCK, "book", 3)
    # Retry at once instead of after 60 s; the in-memory broker runs the same delay queue.
    monkeypatch.setattr(handle, "retry_config", RetryConfig(max_retries=2, retry_delay_seconds=0))
    with memory_broker() as fresh, redirect_amqp(fresh):
        yield fresh


async def test_an_order_is_confirmed(broker: MemoryBroker) -> None:
    async with consuming(handle, ORDERS):
        broker.publish(
            {"order_id": 1, "item": "book", "quantity": 2},
            exchange="shop",
            routing_key="order.placed",
            action="ORDER_PLACED",
        )
        await broker.wait_idle("orders")  # handled and acked

    [confirmation] = [m for m in broker.published if m.json()["action"] == "ORDER_CONFIRMED"]
    assert (confirmation.exchange, confirmation.routing_key) == ("shop", "confirmation.order")
    assert confirmation.json()["data"] == {"order_id": 1, "item": "book"}
    assert STOCK["book"] == 1


async def test_stock_level_over_rpc(broker: MemoryBroker) -> None:
    async with consuming(handle, ORDERS):
        assert await events.call("STOCK_LEVEL", {"item": "book"}, key="orders") == 3


async def test_an_order_that_keeps_failing_is_dead_lettered(broker: MemoryBroker) -> None:
    async with consuming(handle, ORDERS):
        broker.publish(
            {"order_id": 2, "item": "book", "quantity": 10},
            exchange="shop",
            routing_key="order.placed",
            action="ORDER_PLACED",
        )
        [dead] = await broker.wait_for_messages("orders.dlq")

    assert dead.headers["x-eventrabbit-error"] == "OutOfStock: only 3 book left"
    assert dead.headers["x-retry-count"] == 2
    assert broker.queue_depth("orders") == 0


async def test_a_broken_message_is_dead_lettered_at_once(broker: MemoryBroker) -> None:
    async with consuming(handle, ORDERS):
        broker.publish(b"{not json", exchange="shop", routing_key="order.placed")
        [dead] = await broker.wait_for_messages("orders.dlq")

    assert dead.body == b"{not json"
    assert dead.headers["x-eventrabbit-error"].startswith("body is not valid JSON")
    assert dead.headers["x-retry-count"] == 0
