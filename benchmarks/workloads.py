"""The timed workloads. Each takes one client and the run's settings and returns its figures.

Set-up (fresh queue, pre-published events, connections, warm-up) is outside the timed part;
every queue is deleted afterwards, with eventrabbit's ``.delay`` / ``.dlq`` companions.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from .broker import Admin, admin, unique_queue
from .clients.base import BulkFn, Client, PublishFn, reply_data
from .latency import latency
from .metrics import Figures
from .settings import BATCH, PREFETCH, Settings
from .tally import Tally

#: Publishes / calls made before timing starts (opens lazy connections, warms caches).
WARMUP = 20


class WorkloadError(RuntimeError):
    """A workload did not do what it should (lost acks, missing messages, wrong replies)."""


Workload = Callable[[Client, Settings], Awaitable[Figures]]


def _timeout(n: int) -> float:
    """Generous: a client slower than 100 msgs/s is broken, not slow."""
    return 30.0 + n / 100


async def wait_for_tally(tally: Tally, within: float) -> None:
    """Wait until ``tally`` reached its target; raise if the consumer died or stalled."""
    try:
        async with asyncio.timeout(within):
            await tally.done.wait()
    except TimeoutError:
        raise WorkloadError(f"only {tally.count} of {tally.target} events handled") from None
    if tally.error is not None:
        raise WorkloadError(f"the consumer stopped: {tally.error!r}") from tally.error


async def prefilled_queue(adm: Admin, client: str, workload: str, n: int) -> str:
    """A fresh durable queue holding ``n`` events."""
    queue = unique_queue(client, workload)
    await adm.declare(queue)
    await adm.prefill(queue, n)
    await adm.check_ready(queue, n)
    return queue


async def check_all_acked(adm: Admin, queue: str) -> None:
    """After the consumer's graceful stop, an unacked delivery would be back in the queue."""
    left = await adm.ready_count(queue)
    if left:
        raise WorkloadError(f"{left} messages were left unacked in {queue}")


async def consume(client: Client, settings: Settings) -> Figures:
    """Consume N pre-published events: rate and CPU between the first and last handler call."""
    n = settings.consume_n
    async with admin(settings.url) as adm:
        queue = await prefilled_queue(adm, client.name, "consume", n)
        try:
            tally = Tally(n)
            started = time.perf_counter()
            async with client.consumer(settings.url, queue, PREFETCH, tally):
                await wait_for_tally(tally, _timeout(n))
            await check_all_acked(adm, queue)
        finally:
            await adm.delete(queue)
    return {
        "consume_msgs_s": tally.rate,
        "consume_cpu_us": tally.cpu_per_message * 1e6,
        "consume_startup_ms": (tally.first - started) * 1e3,
    }


async def _publish_all(publish: PublishFn, n: int, concurrent: bool) -> None:
    if not concurrent:
        for i in range(n):
            await publish(i)
        return
    for start in range(0, n, BATCH):
        await asyncio.gather(*(publish(i) for i in range(start, min(start + BATCH, n))))


async def _publish(client: Client, settings: Settings, concurrent: bool) -> Figures:
    prefix = "publish_conc" if concurrent else "publish_seq"

    async def send(publish: PublishFn, n: int, warmup: bool) -> None:
        await _publish_all(publish, n, concurrent and not warmup)

    return await _timed_publish(
        client, settings, prefix, settings.publish_n, client.publisher, send
    )


async def _timed_publish(
    client: Client,
    settings: Settings,
    prefix: str,
    n: int,
    opened: Callable[[str, str], AbstractAsyncContextManager[Any]],
    send: Callable[[Any, int, bool], Awaitable[None]],
) -> Figures:
    """Publish ``n`` timed messages (after :data:`WARMUP` untimed) to a fresh queue through
    what ``opened`` gives, then check that every one landed."""
    async with admin(settings.url) as adm:
        queue = unique_queue(client.name, prefix)
        await adm.declare(queue)
        try:
            async with opened(settings.url, queue) as publisher:
                await send(publisher, WARMUP, True)
                started, cpu = time.perf_counter(), time.process_time()
                await send(publisher, n, False)
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            landed = await adm.ready_count(queue)
        finally:
            await adm.delete(queue)
    if landed != n + WARMUP:
        raise WorkloadError(f"{landed} of {n + WARMUP} published messages reached the queue")
    return {f"{prefix}_msgs_s": n / elapsed, f"{prefix}_cpu_us": cpu / n * 1e6}


async def publish_sequential(client: Client, settings: Settings) -> Figures:
    """Publish with confirms, one at a time."""
    return await _publish(client, settings, concurrent=False)


async def publish_concurrent(client: Client, settings: Settings) -> Figures:
    """Publish with confirms, batches of :data:`BATCH` under ``asyncio.gather``."""
    return await _publish(client, settings, concurrent=True)


async def publish_bulk(client: Client, settings: Settings) -> Figures:
    """Pipelined confirmed publishing (``publish_many``; the raw loop's window of tasks)."""
    if client.bulk_publisher is None:
        return {}

    async def send(publish_all: BulkFn, n: int, warmup: bool) -> None:
        await publish_all(n)

    # 4N: long enough that the window's fill and drain do not dominate.
    n = settings.publish_n * 4
    return await _timed_publish(client, settings, "publish_bulk", n, client.bulk_publisher, send)


async def rpc(client: Client, settings: Settings) -> Figures:
    """Sequential request/reply over direct reply-to: latency percentiles and CPU per call."""
    n = settings.rpc_n
    latencies: list[float] = []
    async with admin(settings.url) as adm:
        queue = unique_queue(client.name, "rpc")
        await adm.declare(queue)
        try:
            async with (
                client.rpc_server(settings.url, queue, PREFETCH),
                client.rpc_client(settings.url, queue) as call,
            ):
                for i in range(WARMUP):
                    await _checked(call, i)
                cpu = time.process_time()
                for i in range(n):
                    started = time.perf_counter()
                    await _checked(call, i)
                    latencies.append(time.perf_counter() - started)
                cpu = time.process_time() - cpu
        finally:
            await adm.delete(queue)
    percentiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "rpc_p50_ms": statistics.median(latencies) * 1e3,
        "rpc_p99_ms": percentiles[98] * 1e3,
        "rpc_cpu_us": cpu / n * 1e6,
    }


async def _checked(call: Callable[[int], Awaitable[object]], i: int) -> None:
    reply = await call(i)
    if reply != reply_data(i):
        raise WorkloadError(f"request {i} got the reply {reply!r}")


#: The workloads run in rounds, by the name ``--workloads`` uses.
ROUND_WORKLOADS: dict[str, tuple[Workload, ...]] = {
    "consume": (consume,),
    "publish": (publish_sequential, publish_concurrent, publish_bulk),
    "rpc": (rpc,),
    "latency": (latency,),
}
