"""An ordered queue's in-place retries against the broker's consumer timeout (README:
Ordering), on a private node that enforces a 1 s ``consumer_timeout`` every 100 ms.

A message retried in place stays unacked through its retries, so the broker's consumer
timeout counts all of them: retried for longer, the channel is closed and the message taken
back. It comes back first — nothing behind it overtakes it — and once the consumer timeout has
taken it back :data:`~eventrabbit.timeouts.CONSUMER_TIMEOUT_LIMIT` times it is dead-lettered;
then the queue goes on in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiormq
import aiormq.abc
import pytest
from pamqp import commands as spec

from eventrabbit import ConsumeChannel, QueueConfig, RetryConfig, build_event_dependencies
from eventrabbit.failures import ERROR_HEADER
from eventrabbit.timeouts import CONSUMER_TIMEOUT_LIMIT
from tests.faults.rabbit_node import RabbitCluster, RabbitNode
from tests.faults.support import FAST_RECONNECT, consuming
from tests.helpers import Calls, collect, event, unique

pytestmark = pytest.mark.slow

#: Seconds the test waits for what the broker does within a few consumer timeouts.
DEADLINE = 45.0


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitNode]:
    """A private node with a 1 s consumer timeout, checked every 100 ms."""
    with RabbitCluster(
        1,
        label="orderedtimeout",
        config=["consumer_timeout = 1000"],
        advanced="[{rabbit, [{channel_tick_interval, 100}]}].\n",
    ) as cluster:
        yield cluster.nodes[0]


@pytest.mark.timeout(120)
async def test_retries_in_place_past_the_consumer_timeout_keep_the_order(
    node: RabbitNode, raw: aiormq.abc.AbstractChannel
) -> None:
    queue = unique("orderedtimeout")
    events, handle = build_event_dependencies(
        node.url(),
        idle_timeout=None,
        reconnect=FAST_RECONNECT,
        # Forever, 0.2 s apart: only the broker's consumer timeout ends it.
        retry_config=RetryConfig(max_retries=-1, retry_delay_seconds=0.2),
        queue_config=QueueConfig(ordered=True),
    )
    calls: Calls[str] = Calls()

    @events.consumer("STEP")
    async def step(name: str) -> None:
        calls.add(name)
        if name == "stuck":
            raise RuntimeError("cannot apply")

    channel = ConsumeChannel(node.url(), queue)
    async with consuming(handle, channel):
        for name in ("stuck", "next", "last"):
            await raw.basic_publish(
                event("STEP", {"name": name}),
                routing_key=queue,
                properties=spec.Basic.Properties(message_id=name, delivery_mode=2),
            )
        seen = await calls.until(lambda v: v[-2:] == ["next", "last"], "the rest", DEADLINE)
        [dead] = await collect(raw, f"{queue}.dlq", 1, DEADLINE)
        [status] = handle.status()
        assert status.consumer_timeouts == CONSUMER_TIMEOUT_LIMIT
    # Tried again and again, closed twice by the broker, never overtaken, then dead-lettered.
    assert seen[-2:] == ["next", "last"]
    assert set(seen[:-2]) == {"stuck"}
    assert len(seen) - 2 > CONSUMER_TIMEOUT_LIMIT * 2  # several tries in place per delivery
    assert dead.header.properties.message_id == "stuck"
    headers: dict[str, Any] = dead.header.properties.headers or {}
    assert str(headers[ERROR_HEADER]).startswith("ConsumerTimeout: "), headers[ERROR_HEADER]
