"""A consumer process of tests/faults/test_partitions.py: consumes every partition of a
``PartitionedChannel`` and appends what it handles to a log shared with the other process.

Usage: ``python -m tests.faults.partition_worker URL EXCHANGE PARTITIONS LOG PARITY``.

It subscribes first to the partitions whose number has parity ``PARITY`` (so that, of two
workers, each is the active consumer of half of them), prints ``PREFERRED`` once those are
consumed, waits for a line on stdin, subscribes to the others (as a standby) and prints
``ALL``. Each handled event is one ``O_APPEND`` write of ``<key> <seq> <pid>\\n`` made before
the handler returns — before the ack — so the log's line order is the order of handling across
both processes, and a message handled by a process killed before its ack shows up twice.
"""

from __future__ import annotations

import asyncio
import os
import sys

from eventrabbit import PartitionedChannel, build_event_dependencies


async def main(url: str, exchange: str, partitions: int, log_path: str, parity: int) -> None:
    events, handle = build_event_dependencies(url)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()

    @events.consumer("STEP")
    async def step(key: str, seq: int) -> None:
        for _ in range(seq % 4):  # uneven handlers: run at once, later ones would finish first
            await asyncio.sleep(0)
        os.write(log, f"{key} {seq} {pid}\n".encode())

    channels = PartitionedChannel(url, exchange, partitions).channels()
    preferred = [c for i, c in enumerate(channels) if i % 2 == parity]
    others = [c for i, c in enumerate(channels) if i % 2 != parity]
    tasks = [asyncio.create_task(handle.consume(c)) for c in preferred]
    await handle.ready(*preferred)
    print("PREFERRED", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    tasks += [asyncio.create_task(handle.consume(c)) for c in others]
    await handle.ready(*others)
    print("ALL", flush=True)
    await asyncio.gather(*tasks)  # until killed or terminated


if __name__ == "__main__":
    url, exchange, partitions, log_path, parity = sys.argv[1:6]
    asyncio.run(main(url, exchange, int(partitions), log_path, int(parity)))
