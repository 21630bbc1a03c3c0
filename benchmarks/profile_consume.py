"""Only one client's consume workload, for a profiler to watch.

    py-spy record -o profile.svg -- python -m benchmarks.profile_consume
    pyinstrument -m benchmarks.profile_consume --client raw

The events are pre-published by a child process, so the profile shows consuming only.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from . import clients, loop
from .broker import admin, unique_queue
from .settings import PREFETCH, broker_url
from .tally import Tally
from .workloads import check_all_acked, wait_for_tally


async def _prefill(url: str, queue: str, n: int) -> None:
    async with admin(url) as adm:
        await adm.declare(queue)
        await adm.prefill(queue, n)
        await adm.check_ready(queue, n)


async def _consume(client_name: str, url: str, queue: str, n: int) -> Tally:
    client = clients.get(client_name)
    tally = Tally(n)
    try:
        async with client.consumer(url, queue, PREFETCH, tally):
            await wait_for_tally(tally, 60.0 + n / 100)
        async with admin(url) as adm:
            await check_all_acked(adm, queue)
    finally:
        async with admin(url) as adm:
            await adm.delete(queue)
    return tally


def main() -> None:
    """Pre-publish in a child, consume here, print the rate and CPU per message."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_consume")
    parser.add_argument("--client", choices=clients.names(), default="eventrabbit")
    parser.add_argument("--n", type=int, default=20_000, help="events to consume")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--prefill", metavar="QUEUE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = broker_url()
    if args.prefill:
        asyncio.run(_prefill(url, args.prefill, args.n))
        return
    queue = unique_queue(args.client, "profile")
    command = [sys.executable, "-m", __spec__.name, "--prefill", queue, "--n", str(args.n)]
    subprocess.run(command, check=True)
    started = time.process_time()
    tally = loop.run(_consume(args.client, url, queue, args.n), args.uvloop)
    print(
        f"{args.client}: {tally.rate:,.0f} msgs/s, {tally.cpu_per_message * 1e6:.1f} µs CPU/msg "
        f"({time.process_time() - started:.2f} s CPU in all)"
    )


if __name__ == "__main__":
    main()
