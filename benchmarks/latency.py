"""Latency under load: events published at a fixed rate, publish → handler start, per client.

One producer, the same for every client, runs in a process of its own
(:mod:`benchmarks.producer`: a raw aiormq channel without confirms) and publishes event ``i`` at
``t0 + i / rate``, noting when it sent it; the client's handler notes when it started
(``Tally.hit(i)``). The latency of an event is the difference, on one clock
(``perf_counter``, ``CLOCK_MONOTONIC`` on Linux, shared by the processes). Reported per rate:
p50, p99 and p99.9 of ``latency_s`` seconds' worth of events after a warm-up, and the rate
achieved (events handled ÷ first measured send to last handler start). A client that cannot keep
up shows it as a growing latency and an achieved rate below the offered one.

The offered rates are :data:`~benchmarks.settings.LATENCY_RATES` (figures ``lat<rate>_*``) and
:data:`~benchmarks.settings.LATENCY_SHARE` of the raw loop's :func:`saturation` rate, measured
once per run (figures ``lat70_*``, the offered rate itself as ``lat70_offered``), the same for
every client and every round.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import sys
import time
from array import array

from .broker import admin
from .clients.base import Client
from .metrics import Figures
from .settings import LATENCY_RATES, LATENCY_SHARE_KEY, PREFETCH, Settings
from .tally import Tally

#: Seconds of events sent before the measured ones, at the same rate.
WARMUP_S = 0.5


class ProducerError(RuntimeError):
    """The producer's process failed or sent back the wrong number of send times."""


async def produce(url: str, queue: str, rate: float, n: int) -> array[float]:
    """Run :mod:`benchmarks.producer` in its own process; each event's send time."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.producer",
        url,
        queue,
        repr(rate),
        str(n),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0 or len(out) != 8 * n:
        raise ProducerError(
            f"the producer exited with {process.returncode} and {len(out)} bytes: "
            + err.decode(errors="replace")[-500:]
        )
    sent = array("d")
    sent.frombytes(out)
    return sent


def offered_rates(settings: Settings) -> dict[str, float]:
    """The key prefix of each rate's figures → the rate offered, lowest fixed rate first."""
    rates: dict[str, float] = {f"lat{rate}": float(rate) for rate in LATENCY_RATES}
    if settings.raw_max_rate:
        rates[LATENCY_SHARE_KEY] = settings.latency_share_rate
    return rates


async def _run(
    client: Client, settings: Settings, name: str, rate: float, total: int
) -> tuple[array[float], dict[int, float]]:
    """Events ``0..total-1`` offered at ``rate`` to ``client``: send times and handler starts."""
    arrivals: dict[int, float] = {}
    async with admin(settings.url) as adm:
        queue = f"bench.latency.{client.name}.{name}.{time.monotonic_ns()}"
        await adm.declare(queue)
        try:
            tally = Tally(total, arrivals=arrivals)
            async with client.consumer(settings.url, queue, PREFETCH, tally):
                sent = await produce(settings.url, queue, rate, total)
                async with asyncio.timeout(30 + total / 100):
                    await tally.done.wait()
        finally:
            await adm.delete(queue)
    if tally.error is not None:
        raise tally.error
    return sent, arrivals


async def at_rate(client: Client, settings: Settings, prefix: str, rate: float) -> Figures:
    """The figures of one client at one offered rate."""
    warmup, n = int(rate * WARMUP_S), int(rate * settings.latency_s)
    total = warmup + n
    sent, arrivals = await _run(client, settings, prefix, rate, total)
    measured = range(warmup, total)
    latencies = sorted(arrivals[i] - sent[i] for i in measured)
    cuts = statistics.quantiles(latencies, n=1000, method="inclusive")
    achieved = n / (max(arrivals[i] for i in measured) - sent[warmup])
    return {
        f"{prefix}_p50_ms": statistics.median(latencies) * 1e3,
        f"{prefix}_p99_ms": cuts[989] * 1e3,
        f"{prefix}_p999_ms": cuts[998] * 1e3,
        f"{prefix}_rate": achieved,
    }


async def saturation(client: Client, settings: Settings) -> float:
    """The most events per second ``client`` handles while the producer sends them.

    ``consume_n`` events sent as fast as the producer's channel takes them: events handled ÷
    first send to last handler start. Below the consume workload's rate (a pre-filled queue) on
    a small machine, where the producer, the broker and the consumer share the cores; the
    ``lat70`` rate is a share of this one, so that the reference can carry it.
    """
    n = settings.consume_n
    sent, arrivals = await _run(client, settings, "saturation", math.inf, n)
    return n / (max(arrivals.values()) - sent[0])


async def latency(client: Client, settings: Settings) -> Figures:
    """Every offered rate, in :func:`offered_rates`' order."""
    figures: Figures = {}
    for prefix, rate in offered_rates(settings).items():
        figures |= await at_rate(client, settings, prefix, rate)
    if settings.raw_max_rate:
        figures[f"{LATENCY_SHARE_KEY}_offered"] = settings.latency_share_rate
    return figures
