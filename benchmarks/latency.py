"""Latency under load: events published at a fixed rate, publish → handler start, per client.

One producer, the same for every client (a raw aiormq channel in this process, without
confirms so that it costs little and paces well), publishes event ``i`` at ``t0 + i / rate``
(a batch of the events due each time it wakes) and notes when it sent it; the client's handler
notes when it started (``Tally.hit(i)``). The latency of an event is the difference, on one
clock. Reported per rate: p50, p99 and p99.9 of ``latency_s`` seconds' worth of events after a
warm-up, and the rate achieved (events handled ÷ first send to last handler start). A client
that cannot keep up shows it as a growing latency and an achieved rate below the offered one.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiormq
from pamqp import commands as spec

from .broker import admin, event_body
from .clients.base import Client
from .metrics import Figures
from .settings import LATENCY_RATES, PREFETCH, Settings
from .tally import Tally

#: Seconds of events sent before the measured ones, at the same rate.
WARMUP_S = 0.5
_TRANSIENT = spec.Basic.Properties(content_type="application/json", delivery_mode=1)


async def produce(url: str, queue: str, rate: int, n: int, sent: dict[int, float]) -> None:
    """Publish events ``0..n-1`` at ``rate`` per second, noting each one's send time."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=False)
        loop = asyncio.get_running_loop()
        start = loop.time()
        i = 0
        while i < n:
            due = min(n, int((loop.time() - start) * rate) + 1)
            while i < due:
                sent[i] = time.perf_counter()
                await channel.basic_publish(event_body(i), routing_key=queue, properties=_TRANSIENT)
                i += 1
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
    finally:
        await connection.close()


async def at_rate(client: Client, settings: Settings, rate: int) -> Figures:
    """The figures of one client at one offered rate."""
    warmup, n = int(rate * WARMUP_S), int(rate * settings.latency_s)
    total = warmup + n
    sent: dict[int, float] = {}
    arrivals: dict[int, float] = {}
    async with admin(settings.url) as adm:
        queue = f"bench.latency.{client.name}.{rate}.{time.monotonic_ns()}"
        await adm.declare(queue)
        try:
            tally = Tally(total, arrivals=arrivals)
            async with client.consumer(settings.url, queue, PREFETCH, tally):
                # The consumer is up once the first event comes back; the rest is timed.
                await produce(settings.url, queue, rate, total, sent)
                async with asyncio.timeout(30 + total / 100):
                    await tally.done.wait()
        finally:
            await adm.delete(queue)
    measured = range(warmup, total)
    latencies = sorted(arrivals[i] - sent[i] for i in measured)
    cuts = statistics.quantiles(latencies, n=1000, method="inclusive")
    achieved = n / (max(arrivals[i] for i in measured) - sent[warmup])
    return {
        f"lat{rate}_p50_ms": statistics.median(latencies) * 1e3,
        f"lat{rate}_p99_ms": cuts[989] * 1e3,
        f"lat{rate}_p999_ms": cuts[998] * 1e3,
        f"lat{rate}_rate": achieved,
    }


async def latency(client: Client, settings: Settings) -> Figures:
    """Every offered rate, lowest first."""
    figures: Figures = {}
    for rate in LATENCY_RATES:
        figures |= await at_rate(client, settings, rate)
    return figures
