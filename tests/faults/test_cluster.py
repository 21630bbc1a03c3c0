"""Cluster failover: three private nodes (joined with ``join_cluster``), a quorum queue, and
the node the consumer is connected to stopped mid-stream while publishing goes on through
the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from yarl import URL

from eventrabbit import Handle, QueueConfig
from tests.faults.rabbit_node import RabbitCluster, RabbitNode
from tests.faults.support import (
    assert_fails_loudly,
    figures,
    publish_stream,
    recovery,
    report,
    scenario,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    """Three private nodes in one cluster; stopped and removed afterwards."""
    with RabbitCluster(3, label="cluster") as nodes:
        yield nodes


def consumer_node(handle: Handle, cluster: RabbitCluster) -> RabbitNode | None:
    """The node the handle's consumer connection is open to (found by its port).

    Reads the handle's connection pool (an internal); ``None`` if that cannot be read.
    """
    shared = getattr(getattr(handle, "_pool", None), "_shared", None)
    if shared is None:
        return None
    for one in shared.values():
        connection = one.connection
        if connection is not None and not connection.is_closed:
            port = URL(str(connection.url)).port
            return next((node for node in cluster.nodes if node.amqp_port == port), None)
    return None


@pytest.mark.timeout(240)
async def test_quorum_queue_consumer_node_stopped(cluster: RabbitCluster) -> None:
    """Stop the consumer's node: it moves to the next URL, the quorum queue elects a new
    leader, publishing goes on through the other nodes, and every event is handled."""
    total = 3000
    urls = cluster.urls
    config = QueueConfig(prefetch_count=50, queue_type="quorum")
    # The producer prefers the second node, then the third: never the consumer's.
    async with scenario(
        "quorum",
        urls,
        producer_url=[urls[1], urls[2], urls[0]],
        probe_url=urls[1],
        queue_config=config,
    ) as s:
        # Endpoints are tried in order: the first URL answers, unless the pool says else.
        victim = consumer_node(s.handle, cluster) or cluster.nodes[0]
        listing = await victim.actl(
            "list_queues", "name", "type", "leader", "members", "--no-table-headers", "-q"
        )
        placement = next(
            (line for line in listing.splitlines() if line.startswith(s.queue + "\t")), listing
        )
        stream = asyncio.create_task(publish_stream(s.send, range(total), rate=300))
        await s.recorder.wait_count(total // 3, timeout=60)
        s.watch.arm()
        await victim.stop_async()
        lost = await s.watch.lost(timeout=30)
        back = await s.watch.back(timeout=60)
        moved_to = consumer_node(s.handle, cluster)
        async with asyncio.timeout(120):
            result = await stream
        await s.recorder.wait_for(result.confirmed, timeout=90, what="confirmed events")
    recorder = s.recorder
    first = recorder.first_after(back)
    report(
        figures(
            "cluster-quorum-failover",
            recorder,
            published=len(result.confirmed),
            recovery_s=recovery(first, since=lost),
            extra={
                "nodes": len(cluster.nodes),
                "stopped": victim.name.rsplit("-", 1)[1],
                "moved_to": moved_to.name.rsplit("-", 1)[1] if moved_to else "n/a",
                "leader_stopped": victim.node in placement.split("\t")[2:3],
                "reconnect_s": back - lost,
                "publish_failed": len(result.failed),
            },
        )
    )
    assert "quorum" in placement, placement
    assert all(node.node in placement for node in cluster.nodes), placement
    assert moved_to is not victim
    assert_fails_loudly(result)
    assert not result.failed, result.failures()
    assert result.confirmed_between(back), "nothing was published after the failover"
