"""The handle's lifecycle: readiness (``ready``), ``status``, and the consumer connections it
opens and closes (the pool counts its users).

Observed through the public API and a second, raw client: the queue's consumers, and the
broker's own list of connections (``rabbitmqctl`` on RabbitMQ, ``connection_count`` on the
in-memory broker).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiormq.abc
import pytest

from eventrabbit import (
    ConsumeChannel,
    Handle,
    ReconnectConfig,
    TopologyError,
    build_event_dependencies,
)
from eventrabbit.connection import open_connection
from eventrabbit.testing import get_broker
from tests.conftest import MEMORY, Services
from tests.helpers import (
    Calls,
    censor_url,
    consumer_count,
    event,
    eventually,
    named,
    named_connections,
    publish_raw,
    unique,
)

Channel = aiormq.abc.AbstractChannel
# Nothing listens on port 1.
CLOSED_PORT_URL = "amqp://guest:handle-secret@127.0.0.1:1/"
#: Reconnect at once, so a test waits for the broker, not for the backoff.
FAST = ReconnectConfig(initial_delay=0.05, max_delay=0.2)


def pings(services: Services, **options: object) -> tuple[Handle, Calls[int]]:
    """A service whose PING handler records ``n``."""
    events, handle = services.build(**options)  # type: ignore[arg-type]
    got: Calls[int] = Calls()

    @events.consumer(action="PING")
    async def ping(n: int) -> None:
        got.add(n)

    return handle, got


async def ping(url: str, queue: str, n: int) -> None:
    """Publish PING ``n`` to ``queue`` on a raw connection of its own (opened now)."""
    connection = await open_connection(url)
    try:
        await publish_raw(await connection.channel(), event("PING", {"n": n}), queue)
    finally:
        await connection.close()


@pytest.fixture
def broker_connections(broker_kind: str, broker_url: str) -> Callable[[str], Awaitable[list[str]]]:
    """The broker's open connections of this test.

    RabbitMQ: the pids of the connections named ``name`` (``rabbitmqctl list_connections``).
    The in-memory broker has no names: one entry per connection it has (``connection_count``),
    so a test that uses this opens no other connection before it looks.
    """

    async def open_ones(name: str) -> list[str]:
        if broker_kind == MEMORY:
            return ["connection"] * get_broker(broker_url).connection_count
        return [pid for pid, _ in await named_connections(name)]

    return open_ones


# ------------------------------------------------------------------ connections of a handle


async def test_cancelling_every_consume_closes_the_connection_and_the_next_opens_one(
    services: Services,
    broker_url: str,
    broker_connections: Callable[[str], Awaitable[list[str]]],
) -> None:
    """Without ``handle.close()``: when the last ``consume`` on a URL ends, its connection
    closes on the broker too; the next ``consume`` opens a new one, and it works."""
    url, name = named(broker_url, "pool")
    handle, got = pings(services)
    first, second = services.target(url=url), services.target(url=url)
    tasks = [services.start(handle, first), services.start(handle, second)]
    await handle.ready(first, second)
    assert handle.connection_count == 1
    [opened] = await broker_connections(name)  # one connection, shared by the two

    tasks[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert handle.connection_count == 1  # the second still uses it
    assert await broker_connections(name) == [opened]
    tasks[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]

    assert handle.connection_count == 0
    assert handle.status() == []

    async def none_open() -> bool:
        return not await broker_connections(name)

    await eventually(none_open, what=f"the broker closed the connection {name!r}")

    await services.consume(handle, first)
    assert handle.connection_count == 1
    [reopened] = await broker_connections(name)
    if opened != "connection":  # RabbitMQ: a new connection, not the old one kept
        assert reopened != opened
    await ping(broker_url, first.queue_name, 1)
    assert await got.count(1) == [1]


# ------------------------------------------------------------------ readiness and status


async def test_ready_returns_once_the_queue_has_a_consumer(
    services: Services, amqp_channel: Channel, broker_url: str
) -> None:
    handle, got = pings(services)
    target = services.target()
    queue = target.queue_name
    before = datetime.now(UTC)
    task = services.start(handle, target)  # registered now: ready() waits for it
    await handle.ready(target)
    after = datetime.now(UTC)

    assert await consumer_count(amqp_channel, queue) == 1  # seen by the second client
    await handle.ready(queue)  # by queue name, and ...
    await handle.ready()  # ... every consume of the handle: both consume already
    [status] = handle.status()
    assert status.queue == queue
    assert status.broker == censor_url(broker_url)  # the password, if any, censored
    assert status.consuming
    assert status.since is not None
    assert before <= status.since <= after
    assert (status.reconnects, status.last_error, status.ended) == (0, None, False)
    await publish_raw(amqp_channel, event("PING", {"n": 1}), queue)
    assert await got.count(1) == [1]
    assert not task.done()


async def test_ready_raises_the_topology_error_that_ended_consume(
    services: Services, amqp_channel: Channel
) -> None:
    target = services.target("clash")
    queue = target.queue_name
    await amqp_channel.queue_declare(queue, durable=True, arguments={"x-max-length": 5})
    handle, _ = pings(services)
    task = services.start(handle, target)

    with pytest.raises(TopologyError) as info:
        await handle.ready(target, timeout=10)
    assert info.value.queue == queue
    with pytest.raises(TopologyError):
        await task  # what ended consume itself
    [status] = handle.status()
    assert status.ended
    assert not status.consuming
    assert status.last_error is not None
    assert status.last_error.startswith("TopologyError: ")
    assert queue in status.last_error
    assert await consumer_count(amqp_channel, queue) == 0


async def test_ready_times_out_naming_the_queue_when_the_broker_is_unreachable() -> None:
    _, handle = build_event_dependencies(CLOSED_PORT_URL, reconnect=FAST)
    target = ConsumeChannel(CLOSED_PORT_URL, unique("unreachable"))
    task = asyncio.create_task(handle.consume(target))
    try:
        with pytest.raises(TimeoutError) as info:
            await handle.ready(target, timeout=0.5)
        assert target.queue_name in str(info.value)
        assert not task.done()  # it keeps trying

        # The attempts' failure is reported, password censored.
        await eventually(lambda: handle.status()[0].last_error, what="a failed attempt")
        [status] = handle.status()
        assert not status.consuming
        assert (status.since, status.reconnects, status.ended) == (None, 0, False)
        assert status.last_error is not None
        assert "cannot connect" in status.last_error
        assert "handle-secret" not in repr(status)
        assert "******" in status.broker
    finally:
        await handle.close()
    assert task.cancelled()


async def test_status_counts_a_reconnect_after_the_broker_closed_the_connection(
    services: Services,
    broker_url: str,
    drop_connections: Callable[[str], Awaitable[None]],
) -> None:
    url, name = named(broker_url, "status")
    handle, got = pings(services, reconnect=FAST)
    target = services.target(url=url)
    task = await services.consume(handle, target)
    [before] = handle.status()
    assert before.since is not None

    await drop_connections(name)
    await eventually(lambda: handle.status()[0].reconnects == 1, what="a reconnect")
    await handle.ready(target)

    [after] = handle.status()
    assert after.consuming
    assert after.reconnects == 1
    assert not after.ended
    assert after.last_error  # why it reconnected
    assert after.since is not None
    assert after.since >= before.since
    await ping(broker_url, target.queue_name, 2)  # the new consumer works
    assert await got.count(1) == [2]
    assert not task.done()
