"""``events.publish_many`` on both brokers: every item accounted for — confirmed and received
in order, unroutable (with and without ``mandatory``), nacked by a full queue, not JSON — and a
publisher connection dropped mid-batch losing nothing, read back with a raw client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq.abc
import orjson
import pytest

from eventrabbit import (
    ConnectionEvent,
    ConnectionRole,
    ConnectionState,
    Hooks,
    Outcome,
    Publish,
    PublishError,
    Result,
    UnroutableError,
)
from eventrabbit.connection import open_connection
from tests.conftest import Names, Services
from tests.helpers import collect, named, queue_depth

WAIT = 20.0


async def declared(channel: aiormq.abc.AbstractChannel, names: Names, **arguments: Any) -> str:
    queue = names.queue("bulk")
    await channel.queue_declare(queue, durable=True, arguments=arguments or None)
    return queue


def data_of(message: aiormq.abc.DeliveredMessage) -> Any:
    return orjson.loads(message.body)["data"]


async def test_every_item_is_confirmed_and_arrives_in_order(
    services: Services, names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    events, _ = services.build()
    queue = await declared(amqp_channel, names)
    items = [{"n": n} for n in range(600)]
    result = await events.publish_many("", "BULK", items, key=queue, window=64)
    assert result.ok
    assert [item.index for item in result.items] == list(range(600))
    assert {item.outcome for item in result.items} == {Outcome.CONFIRMED}
    received = await collect(amqp_channel, queue, 600, timeout=WAIT)
    assert [data_of(m) for m in received] == items
    ids = [m.header.properties.message_id for m in received]
    assert ids == [item.message_id for item in result.items]


async def test_unroutable_items_are_reported_and_fail_only_with_mandatory(
    services: Services, names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    events, _ = services.build()
    queue = await declared(amqp_channel, names)
    nobody = f"{queue}-nobody"
    for mandatory in (False, True):
        result = await events.publish_many("", "BULK", [1, 2], nobody, mandatory=mandatory)
        assert [item.outcome for item in result.items] == [Outcome.UNROUTABLE] * 2
        assert all(isinstance(item.error, UnroutableError) for item in result.items)
        assert result.ok is not mandatory
        assert len(result.failed) == (2 if mandatory else 0)
    assert await queue_depth(amqp_channel, queue) == 0


async def test_items_a_full_queue_nacks_fail_and_the_others_are_taken(
    services: Services, names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    events, _ = services.build()
    queue = await declared(
        amqp_channel, names, **{"x-max-length": 5, "x-overflow": "reject-publish"}
    )
    result = await events.publish_many("", "BULK", range(12), key=queue, window=1)
    assert [item.outcome for item in result.items] == [Outcome.CONFIRMED] * 5 + [Outcome.FAILED] * 7
    assert all(isinstance(item.error, PublishError) for item in result.failed)
    assert "nacked" in str(result.failed[0].error)
    received = await collect(amqp_channel, queue, 5, timeout=WAIT)
    assert [data_of(m) for m in received] == [0, 1, 2, 3, 4]


async def test_an_item_that_is_not_json_fails_alone(
    services: Services, names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    events, _ = services.build()
    queue = await declared(amqp_channel, names)
    result = await events.publish_many("", "BULK", [1, {2, 3}, float("nan"), 4], key=queue)
    outcomes = [item.outcome for item in result.items]
    assert outcomes == [Outcome.CONFIRMED, Outcome.FAILED, Outcome.FAILED, Outcome.CONFIRMED]
    assert all(isinstance(item.error, TypeError) for item in result.failed)
    assert [data_of(m) for m in await collect(amqp_channel, queue, 2, timeout=WAIT)] == [1, 4]


async def test_a_window_below_one_is_refused(services: Services) -> None:
    events, _ = services.build()
    with pytest.raises(ValueError, match="window"):
        await events.publish_many("", "BULK", [1], window=0)


class Confirmed(Hooks):
    """Sets ``reached`` once ``count`` publishes were confirmed."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.confirmed = 0
        self.reached = asyncio.Event()

        #: How many were confirmed when the publisher's connection was lost.
        self.confirmed_at_loss: int | None = None

    def publish_finished(self, state: Any, publish: Publish, result: Result) -> None:
        if result.outcome is Outcome.CONFIRMED:
            self.confirmed += 1
            if self.confirmed >= self.count:
                self.reached.set()

    def connection_changed(self, event: ConnectionEvent) -> None:
        if event.role is ConnectionRole.PUBLISHER and event.state is ConnectionState.LOST:
            self.confirmed_at_loss = self.confirmed


async def test_a_connection_dropped_mid_batch_loses_no_item(
    services: Services,
    names: Names,
    broker_url: str,
    broker_kind: str,
    amqp_channel: aiormq.abc.AbstractChannel,
    drop_connections: Callable[[str], Awaitable[None]],
) -> None:
    url, name = named(broker_url, "bulk")
    hook = Confirmed(300)
    events, _ = services.build(url, hooks=[hook], publish_timeout=15)
    queue = await declared(amqp_channel, names)
    # Enough that the batch still runs when the drop lands (rabbitmqctl takes about a second;
    # the in-memory broker drops at once).
    total = 20_000 if broker_kind == "rabbitmq" else 2_000
    batch = asyncio.create_task(events.publish_many("", "BULK", range(total), key=queue))
    await asyncio.wait_for(hook.reached.wait(), WAIT)
    await drop_connections(name)  # mid-batch: some confirmed, some in flight, some not sent
    result = await asyncio.wait_for(batch, WAIT * 2)
    assert result.ok, [str(item.error) for item in result.failed][:3]
    assert hook.confirmed_at_loss is not None  # it was lost ...
    assert hook.confirmed_at_loss < total  # ... mid-batch
    # A connection of its own: the in-memory broker drops every connection, the test's too.
    connection = await open_connection(broker_url)
    try:
        reader = await connection.channel()
        depth = await queue_depth(reader, queue)
        received = await collect(reader, queue, depth, timeout=WAIT)
    finally:
        await connection.close()
    got = [data_of(m) for m in received]
    assert set(got) == set(range(total))  # every item arrived ...
    duplicates = len(got) - total
    assert duplicates <= 256  # ... at most the window in flight at the drop twice
    ids = {m.header.properties.message_id for m in received}
    assert ids == {item.message_id for item in result.items}  # re-sent with the same id
