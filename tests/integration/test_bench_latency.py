"""The latency workload's producer process and one rate end to end, on the real broker."""

from __future__ import annotations

import itertools
import math

import aiormq
import pytest

from benchmarks import clients
from benchmarks.broker import admin, event_body
from benchmarks.latency import at_rate, offered_rates, produce, saturation
from benchmarks.settings import LATENCY_SHARE_KEY, Settings
from tests.helpers import unique

# The benchmarks measure RabbitMQ; the producer is a raw aiormq client of its own.
pytestmark = pytest.mark.real_broker


async def drain(url: str, queue: str, n: int) -> list[bytes]:
    """The bodies of the ``n`` messages in ``queue``, in queue order."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        bodies = []
        for _ in range(n):
            got = await channel.basic_get(queue, no_ack=True)
            bodies.append(got.body)
        return bodies
    finally:
        await connection.close()


async def test_the_producer_sends_every_event_in_order_at_the_rate(broker_url: str) -> None:
    queue, n, rate = unique("bench.producer"), 200, 2000.0
    async with admin(broker_url) as adm:
        await adm.declare(queue)
        try:
            sent = await produce(broker_url, queue, rate, n)
            await adm.check_ready(queue, n)
            assert await drain(broker_url, queue, n) == [event_body(i) for i in range(n)]
        finally:
            await adm.delete(queue)
    assert len(sent) == n
    assert all(a <= b for a, b in itertools.pairwise(sent))
    # Paced: event i is not sent before t0 + i / rate (a 1 ms allowance for the loop's clock).
    assert sent[-1] - sent[0] >= (n - 1) / rate - 1e-3


async def test_flat_out_the_producer_sends_without_pacing(broker_url: str) -> None:
    queue = unique("bench.producer")
    async with admin(broker_url) as adm:
        await adm.declare(queue)
        try:
            sent = await produce(broker_url, queue, math.inf, 50)
            await adm.check_ready(queue, 50)
        finally:
            await adm.delete(queue)
    assert len(sent) == 50


async def test_one_rate_end_to_end_reports_every_figure(broker_url: str) -> None:
    settings = Settings(broker_url, latency_s=0.2, consume_n=300)
    raw_max = await saturation(clients.get("raw"), settings)
    assert raw_max > 0
    settings = Settings(broker_url, latency_s=0.2, raw_max_rate=raw_max)
    assert LATENCY_SHARE_KEY in offered_rates(settings)
    figures = await at_rate(clients.get("eventrabbit"), settings, "lat500", 500.0)
    assert set(figures) == {"lat500_p50_ms", "lat500_p99_ms", "lat500_p999_ms", "lat500_rate"}
    assert 0 < figures["lat500_p50_ms"] <= figures["lat500_p99_ms"] <= figures["lat500_p999_ms"]
    # Paced at 500/s, nobody can handle the 100 measured events faster than that.
    assert 0 < figures["lat500_rate"] < 1000
