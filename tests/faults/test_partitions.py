"""Order per key at scale (README: Ordering): a ``PartitionedChannel`` on a private node with
the consistent-hash exchange plugin enabled — never the shared broker.

10,000 events over 100 keys from two producers, consumed by two worker processes
(:mod:`tests.faults.partition_worker`), each the active consumer of half the partitions and
the standby of the other half; one worker is killed (``SIGKILL``) half-way. The workers log
each event as they handle it into one shared append-only file, so the file is the order of
handling across both processes.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventrabbit import build_event_dependencies
from tests.faults.rabbit_node import RabbitCluster, RabbitNode
from tests.helpers import eventually

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "rabbitmq_consistent_hash_exchange"
KEYS = 100
PER_KEY = 100
PARTITIONS = 8
#: Events of one key published one after the other.
RUN = 5
#: Seconds for things that take a while on a busy two-core machine (deadlines, not goals).
LONG = 120.0


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitNode]:
    """This module's private node: the consistent-hash exchange plugin enabled."""
    with RabbitCluster(1, label="hash", plugins=[PLUGIN]) as cluster:
        yield cluster.nodes[0]


class Worker:
    """One consumer process and the lines it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def said(self, word: str) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(LONG):
            line = await self.process.stdout.readline()
        assert line.decode().strip() == word, f"worker said {line!r}, not {word!r}"

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


@pytest.fixture
async def workers(node: RabbitNode, tmp_path: Path) -> AsyncIterator[tuple[list[Worker], Path]]:
    log = tmp_path / "handled.log"
    started: list[Worker] = []
    try:
        for parity in (0, 1):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.faults.partition_worker",
                node.url(),
                "orders",
                str(PARTITIONS),
                str(log),
                str(parity),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            started.append(Worker(process))
        yield started, log
    finally:
        for worker in started:
            await worker.kill()


def read_log(log: Path) -> list[tuple[str, int, int]]:
    if not log.exists():
        return []
    lines = log.read_text().splitlines()
    return [(key, int(seq), int(pid)) for key, seq, pid in (line.split() for line in lines)]


async def produce(url: str, keys: list[str]) -> None:
    """Every key's events, seq 0 up, in runs of :data:`RUN` per key (so that one key's events
    sit next to each other in its queue), interleaved across keys; each publish confirmed."""
    events, handle = build_event_dependencies(url, idle_timeout=None)
    try:
        for start in range(0, PER_KEY, RUN):
            for key in keys:
                for seq in range(start, start + RUN):
                    await events.publish("orders", "STEP", {"key": key, "seq": seq}, key=key)
    finally:
        await handle.close()


@pytest.mark.timeout(400)
async def test_every_keys_order_holds_across_partitions_processes_and_a_kill(
    node: RabbitNode, workers: tuple[list[Worker], Path]
) -> None:
    (first, second), log = workers
    for worker in (first, second):
        await worker.said("PREFERRED")  # each the active consumer of half the partitions
    for worker in (first, second):
        worker.go()
        await worker.said("ALL")  # and the standby of the other half

    keys = [f"key-{n:03d}" for n in range(KEYS)]
    producers = asyncio.gather(produce(node.url(), keys[:50]), produce(node.url(), keys[50:]))
    total = KEYS * PER_KEY
    await eventually(
        lambda: len(read_log(log)) >= total // 2, what="half handled", timeout=LONG, interval=0.2
    )
    await first.kill()
    killed = first.process.pid
    await producers

    def all_handled() -> bool:
        return len({(key, seq) for key, seq, _ in read_log(log)}) == total

    await eventually(all_handled, what=f"all {total} events", timeout=LONG, interval=0.2)
    handled = read_log(log)

    by_key: dict[str, list[tuple[int, int]]] = {key: [] for key in keys}
    for key, seq, pid in handled:
        by_key[key].append((seq, pid))
    for key, seen in by_key.items():
        assert seen[0][0] == 0, f"{key} began with {seen[0]}"
        for (before, by), (after, then) in itertools.pairwise(seen):
            # The next one, or the same one again: handled by the killed worker but never
            # acked, so handled again by the other — never one that overtook it.
            again = after == before and by == killed and then != killed
            assert after == before + 1 or again, f"{key}: {before} (pid {by}) then {after}"
        assert seen[-1][0] == PER_KEY - 1

    pids = {pid for _, _, pid in handled[: total // 4]}
    assert pids == {killed, second.process.pid}, "both processes handled events at once"
    taken_over = {key for key, seen in by_key.items() if {pid for _, pid in seen} == pids}
    assert taken_over, "the other worker took over the killed worker's partitions"
