"""What checking a handler's annotations costs: the same handler, annotated and not.

    python -m benchmarks.typed_consume                 # dispatch alone, then through RabbitMQ
    python -m benchmarks.typed_consume --n 50000 --rounds 5

The handler takes five scalar parameters and one ``list[int]`` (ten items). *dispatch* times
eventrabbit's dispatch step alone (decode, check, call) in process, without a broker: the check's
cost per message, undiluted. *consume* runs the whole consume path against the broker
(``EVENTRABBIT_URL``) on pre-published queues, in alternating rounds; medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import orjson
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from eventrabbit import Events, QueueConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel
from eventrabbit.dispatch import dispatch
from eventrabbit.registry import Handler

from .broker import PREFILL_BATCH, admin, unique_queue
from .settings import PREFETCH, broker_url
from .tally import Tally
from .workloads import check_all_acked, wait_for_tally

ACTION = "TYPED"
DATA = {"a": 1, "b": 2.5, "c": "x", "d": True, "e": 7, "items": list(range(10))}
BODY = orjson.dumps({"action": ACTION, "data": DATA})
_PROPERTIES = spec.Basic.Properties(content_type="application/json", delivery_mode=1)


def handlers(hit: Callable[[int], None]) -> dict[str, Callable[..., Awaitable[None]]]:
    """The two handlers under comparison: the same body, annotated or not."""

    async def typed(a: int, b: float, c: str, d: bool, e: int, items: list[int]) -> None:
        hit(e)

    async def untyped(a, b, c, d, e, items):  # type: ignore[no-untyped-def]
        hit(e)

    return {"typed": typed, "untyped": untyped}


async def time_dispatch(func: Callable[..., Awaitable[None]], n: int) -> float:
    """CPU microseconds per ``dispatch`` of one message to ``func``."""
    table = {ACTION: Handler.of(ACTION, func)}
    header = SimpleNamespace(properties=SimpleNamespace(content_encoding=None))
    message = cast(DeliveredMessage, SimpleNamespace(body=BODY, header=header))
    started = time.process_time()
    for _ in range(n):
        await dispatch(table, message, 1 << 22)
    return (time.process_time() - started) / n * 1e6


async def time_consume(url: str, kind: str, n: int) -> Tally:
    """Consume ``n`` pre-published events through eventrabbit with the ``kind`` handler."""
    queue = unique_queue(kind, "typed")
    tally = Tally(n)
    async with admin(url) as adm:
        await adm.declare(queue)
        channel = await adm.channel()
        for start in range(0, n, PREFILL_BATCH):
            batch = range(start, min(start + PREFILL_BATCH, n))
            await asyncio.gather(
                *(
                    channel.basic_publish(BODY, routing_key=queue, properties=_PROPERTIES)
                    for _ in batch
                )
            )
        await adm.check_ready(queue, n)
    events, handle = build_event_dependencies(url, idle_timeout=None)
    cast(Events, events).consumer(ACTION)(handlers(tally.hit)[kind])
    target = ConsumeChannel(url, queue, queue_config=QueueConfig(prefetch_count=PREFETCH))
    task = asyncio.create_task(handle.consume(target))
    task.add_done_callback(tally.fail_on_error)
    try:
        await wait_for_tally(tally, 60.0 + n / 100)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await handle.close()
        async with admin(url) as adm:
            await check_all_acked(adm, queue)
            await adm.delete(queue)
    return tally


async def main(n: int, rounds: int, broker: bool) -> None:
    cpu: dict[str, list[float]] = {"untyped": [], "typed": []}
    for _ in range(rounds):
        for kind in cpu:
            cpu[kind].append(await time_dispatch(handlers(lambda: None)[kind], n))
    for kind, figures in cpu.items():
        print(f"dispatch {kind:8} {statistics.median(figures):6.2f} µs CPU/msg")
    if not broker:
        return
    rates: dict[str, list[Any]] = {"untyped": [], "typed": []}
    for _ in range(rounds):
        for kind in rates:
            rates[kind].append(await time_consume(broker_url(), kind, n))
    for kind, tallies in rates.items():
        rate = statistics.median(t.rate for t in tallies)
        per = statistics.median(t.cpu_per_message for t in tallies) * 1e6
        print(f"consume  {kind:8} {rate:9,.0f} msgs/s {per:6.1f} µs CPU/msg")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.typed_consume")
    parser.add_argument("--n", type=int, default=20_000, help="messages per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-broker", action="store_true", help="dispatch alone")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds, not args.no_broker))
