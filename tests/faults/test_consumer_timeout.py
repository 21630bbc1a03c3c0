"""The broker's consumer timeout on a private node that enforces it within a second.

RabbitMQ 3.10 closes a channel whose delivery stays unacked longer than ``consumer_timeout``
(406 PRECONDITION_FAILED), and checks that on every channel tick (``channel_tick_interval``,
60 s by default, only settable in ``advanced.config``). The node here has a 1 s timeout and a
100 ms tick, so a handler that blocks shows in about a second what takes 30 minutes in
production: the close is recognised and logged, the slow message is dead-lettered after
two closes instead of looping, and ``handler_timeout`` below the broker's limit avoids the
close altogether.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import aiormq
import aiormq.abc
import pytest
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from eventrabbit import ConsumeChannel, QueueConfig, RetryConfig, build_event_dependencies
from eventrabbit.failures import ERROR_HEADER, QUEUE_HEADER
from eventrabbit.timeouts import CONSUMER_TIMEOUT_LIMIT
from tests.faults.rabbit_node import RabbitCluster, RabbitNode
from tests.faults.support import FAST_RECONNECT, READY_TIMEOUT, consuming
from tests.helpers import event, eventually, unique

pytestmark = pytest.mark.slow

#: The node's consumer timeout, in milliseconds.
CONSUMER_TIMEOUT_MS = 1000
#: Seconds the test waits for what the broker does within a few consumer timeouts.
DEADLINE = 45.0


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitNode]:
    """A private node with a 1 s consumer timeout, checked every 100 ms."""
    with RabbitCluster(
        1,
        label="acktimeout",
        config=[f"consumer_timeout = {CONSUMER_TIMEOUT_MS}"],
        advanced="[{rabbit, [{channel_tick_interval, 100}]}].\n",
    ) as cluster:
        yield cluster.nodes[0]


async def publish(channel: aiormq.abc.AbstractChannel, queue: str, action: str, mid: str) -> None:
    await channel.basic_publish(
        event(action, {}),
        routing_key=queue,
        properties=spec.Basic.Properties(message_id=mid, delivery_mode=2),
    )


async def dead_letters(
    channel: aiormq.abc.AbstractChannel, queue: str, count: int
) -> list[DeliveredMessage]:
    """The first ``count`` messages of ``queue.dlq`` (waits for them)."""
    got: list[DeliveredMessage] = []
    arrived = asyncio.Event()

    def take(message: DeliveredMessage) -> None:
        got.append(message)
        if len(got) >= count:
            arrived.set()

    await channel.basic_consume(f"{queue}.dlq", take, no_ack=True)
    async with asyncio.timeout(DEADLINE):
        await arrived.wait()
    return got


@pytest.mark.timeout(120)
async def test_a_message_that_outlives_the_consumer_timeout_is_dead_lettered_not_looped(
    node: RabbitNode, raw: aiormq.abc.AbstractChannel, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that never returns holds its delivery past the broker's limit: the broker
    closes the channel (and takes back every unacked message of it). Each close is logged at
    ERROR and counted; the message that caused two is dead-lettered when it comes back, without
    running its handler a third time. A younger message cut off by the same close is handled
    normally when it comes back, never dead-lettered."""
    caplog.set_level(logging.ERROR, logger="eventrabbit.timeouts")
    queue = unique("acktimeout")
    events, handle = build_event_dependencies(
        node.url(), idle_timeout=None, reconnect=FAST_RECONNECT
    )
    calls: dict[str, int] = {"SLOW": 0, "YOUNGER": 0}
    never = asyncio.Event()

    @events.consumer("SLOW")
    async def slow() -> None:
        calls["SLOW"] += 1
        await never.wait()  # cut off by the close, every time

    @events.consumer("YOUNGER")
    async def younger() -> None:
        calls["YOUNGER"] += 1
        if calls["YOUNGER"] == 1:
            await never.wait()  # cut off by the first close; handled when it comes back

    channel = ConsumeChannel(node.url(), queue)
    async with consuming(handle, channel):
        await publish(raw, queue, "SLOW", "slow-1")
        await eventually(lambda: calls["SLOW"] == 1, what="the slow handler started")
        await publish(raw, queue, "YOUNGER", "younger-1")
        [dead] = await dead_letters(raw, queue, 1)
        [status] = handle.status()
        assert status.consumer_timeouts == CONSUMER_TIMEOUT_LIMIT
        assert status.reconnects >= CONSUMER_TIMEOUT_LIMIT
        assert status.consuming
    assert dead.header.properties.message_id == "slow-1"
    headers: dict[str, Any] = dead.header.properties.headers or {}
    reason = str(headers[ERROR_HEADER])
    assert reason.startswith("ConsumerTimeout: "), reason
    assert "handler_timeout" in reason
    assert headers[QUEUE_HEADER] == queue
    assert calls["SLOW"] == CONSUMER_TIMEOUT_LIMIT, "the third delivery never ran the handler"
    assert calls["YOUNGER"] == 2, "cut off once, then handled"
    closes = [r for r in caplog.records if "consumer timeout" in r.getMessage()]
    assert len(closes) == CONSUMER_TIMEOUT_LIMIT
    for record in closes:
        text = record.getMessage()
        assert repr(queue) in text, text
        assert "slow-1" in text, text
        assert "handler_timeout" in text, text
        assert f"({CONSUMER_TIMEOUT_MS / 1000:g} s)" in text, text


@pytest.mark.timeout(120)
async def test_a_handler_timeout_below_the_consumer_timeout_avoids_the_close(
    node: RabbitNode, raw: aiormq.abc.AbstractChannel
) -> None:
    """With ``handler_timeout`` under the broker's limit the slow handler is cancelled first:
    the message is retried and dead-lettered as a ``HandlerTimeout``, and the channel never
    closes."""
    queue = unique("handlertimeout")
    events, handle = build_event_dependencies(
        node.url(),
        idle_timeout=None,
        reconnect=FAST_RECONNECT,
        retry_config=RetryConfig(max_retries=1, retry_delay_seconds=0),
        queue_config=QueueConfig(handler_timeout=0.3),
    )
    started = 0

    @events.consumer("SLOW")
    async def slow() -> None:
        nonlocal started
        started += 1
        await asyncio.Event().wait()

    channel = ConsumeChannel(node.url(), queue)
    async with consuming(handle, channel):
        await handle.ready(channel, timeout=READY_TIMEOUT)
        await publish(raw, queue, "SLOW", "slow-2")
        [dead] = await dead_letters(raw, queue, 1)
        [status] = handle.status()
        assert status.consumer_timeouts == 0
        assert status.reconnects == 0
    headers: dict[str, Any] = dead.header.properties.headers or {}
    assert str(headers[ERROR_HEADER]).startswith(
        "HandlerTimeout: the handler ran longer than QueueConfig.handler_timeout (0.3 s)"
    )
    assert headers["x-retry-count"] == 1
    assert started == 2
