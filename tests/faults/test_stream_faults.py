"""A stream's node restarted under a follower: the follower reconnects and resumes at exactly
the offset after the last event it handled — nothing skipped, nothing handled twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from eventrabbit import (
    ExchangeType,
    FileCheckpoints,
    ReconnectConfig,
    StreamChannel,
    build_event_dependencies,
    capture,
    replay_offset,
)
from tests.faults.rabbit_node import RabbitNode
from tests.faults.support import FaultResult, report, seconds
from tests.helpers import Calls, unique

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
async def test_a_follower_resumes_exactly_after_the_streams_node_restarts(
    node: RabbitNode, tmp_path: Path
) -> None:
    """The node stops while the handler of event 500 runs (thousands more to read) and starts
    again; the follower reconnects and goes on at 501. It reads to a stop offset rather than
    forever, so that its summary can be checked too.
    """
    total = 5000
    url = node.url()
    events, handle = build_event_dependencies(
        url, reconnect=ReconnectConfig(initial_delay=0.2, max_delay=1.0)
    )
    calls: Calls[tuple[int, int]] = Calls()
    stopped = asyncio.Event()

    @events.consumer("tick")
    async def tick(n: int) -> None:
        if n == 500:
            await stopped.wait()
        calls.add((n, replay_offset() or 0))

    exchange = unique("ticks")
    stream = StreamChannel(url, unique("stream"), exchange, ExchangeType.FANOUT, prefetch_count=50)
    await capture(stream)
    store = FileCheckpoints(tmp_path)
    assert (await events.publish_many(exchange, "tick", [{"n": n} for n in range(total)])).ok
    await events.close()
    follower = asyncio.create_task(
        handle.replay(stream, stop=total - 1, checkpoint="ticks", store=store, checkpoint_every=250)
    )
    try:
        await calls.count(500, timeout=60)
        await node.stop_async()
        down = time.monotonic()
        stopped.set()
        await node.start_async()
        up = time.monotonic()
        async with asyncio.timeout(120):
            summary = await follower
        caught_up = time.monotonic()
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await handle.close()
    offsets = [offset for _, offset in calls.values]
    report(
        FaultResult(
            "stream-node-restart",
            published=total,
            handled=len(offsets),
            duplicates=len(offsets) - len(set(offsets)),
            recovery_s=seconds(caught_up - up),
            extra={"restart_s": seconds(up - down), "reconnects": summary.reconnects},
        )
    )
    assert offsets == list(range(total))  # none twice, none lost, in order
    assert [n for n, _ in calls.values] == list(range(total))
    assert summary.reconnects == 1  # one loss; the failed attempts while down do not count
    assert (summary.handled, summary.last_offset) == (total, total - 1)
    assert await store.load("ticks") == total - 1
