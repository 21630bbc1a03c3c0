"""Consume throughput of ``eventrabbit run --workers 2`` against one ``eventrabbit run`` process
and a hand-written aiormq consumer in two processes (the ceiling), in alternating rounds.

    python -m benchmarks.workers --rounds 3
    python -m benchmarks.workers --n 2000 --rounds 1        # a smoke test

Each run pre-publishes N events to a fresh durable queue, then starts the consumers as
subprocesses: ``python -m eventrabbit run benchmarks.workers:CHANNEL [--workers 2]`` (this
module is also the service they run), or ``python -m benchmarks.workers --raw-child`` twice.
Every consumer process samples its handler-call count and its CPU time every
:data:`SAMPLE_EVERY` seconds into a file of its own. The rate is taken over the window in which
*every* process of the run was consuming — from the latest first call to the earliest moment a
process had handled its last message — so that processes starting a few hundred milliseconds
apart do not count as a slow start; the CPU per message is the consumer processes' CPU in
that window ÷ the messages handled in it (the supervisor, idle, is not counted). Once all N
are handled the consumers get SIGTERM, must exit 0, and the queue must be empty.

The broker is ``EVENTRABBIT_URL`` (default: the local guest broker).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from eventrabbit import ConsumeChannel, QueueConfig, build_event_dependencies

from . import loop
from .broker import admin, unique_queue
from .clients import raw_aiormq
from .report import number
from .settings import ACTION, PREFETCH, broker_url
from .workloads import WorkloadError, check_all_acked

#: Seconds between two samples of a consumer process.
SAMPLE_EVERY = 0.01
#: Seconds between two looks of the parent at the samples, waiting for all N.
POLL_EVERY = 0.05
#: The runs of a round, in the order they alternate; the first is the reference.
RUNS = ("raw x2", "eventrabbit --workers 2", "eventrabbit x1")
REFERENCE = RUNS[0]
QUEUE_VAR, OUT_VAR = "BENCH_WORKERS_QUEUE", "BENCH_WORKERS_OUT"

# --- inside a consumer process ---------------------------------------------------------------


class Samples:
    """``(wall time, handler calls, process CPU)`` every :data:`SAMPLE_EVERY` s while calls
    come in, written to ``<OUT>/<pid>.json`` (replaced whole, so a reader never sees half)."""

    def __init__(self, out: str | None) -> None:
        self.path = Path(out, f"{os.getpid()}.json") if out else None
        self.count = 0
        self.rows: list[tuple[float, int, float]] = []
        self._written = 0

    def hit(self, i: int = -1) -> None:
        """One handler call (all the handler does)."""
        self.count += 1
        if self.count == 1:
            self.rows.append((time.time(), 1, time.process_time()))
            asyncio.get_running_loop().call_later(SAMPLE_EVERY, self._sample)

    def _sample(self) -> None:
        if self.count != self.rows[-1][1]:
            self.rows.append((time.time(), self.count, time.process_time()))
        if self.path is not None and self._written != len(self.rows):
            self._written = len(self.rows)
            scratch = self.path.with_suffix(".tmp")
            scratch.write_bytes(orjson.dumps(self.rows))
            scratch.replace(self.path)
        asyncio.get_running_loop().call_later(SAMPLE_EVERY, self._sample)


SAMPLES = Samples(os.environ.get(OUT_VAR))
URL = broker_url()
events, handle = build_event_dependencies(URL, idle_timeout=None)


@events.consumer(ACTION)
async def on_bench(i: int, name: str) -> None:
    SAMPLES.hit()


#: What ``eventrabbit run benchmarks.workers:CHANNEL`` consumes.
CHANNEL = ConsumeChannel(
    URL,
    os.environ.get(QUEUE_VAR, "bench.workers.unset"),
    queue_config=QueueConfig(prefetch_count=PREFETCH),
)


async def raw_child() -> None:
    """The reference consumer process: the suite's raw aiormq loop until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with raw_aiormq.consumer(URL, CHANNEL.queue_name, PREFETCH, SAMPLES):  # type: ignore[arg-type]
        await stop.wait()


# --- the parent: one run, one round, the report ----------------------------------------------


def _argv(run: str, uvloop: bool) -> list[list[str]]:
    """The command lines of a run's consumer processes."""
    if run == REFERENCE:
        raw = [sys.executable, "-m", "benchmarks.workers", "--raw-child"]
        return [raw + (["--uvloop"] if uvloop else [])] * 2
    command = [sys.executable, "-m", "eventrabbit", "run", "benchmarks.workers:CHANNEL"]
    command += ["--log-level", "warning", "--loop", "uvloop" if uvloop else "asyncio"]
    return [command + (["--workers", "2"] if "--workers" in run else [])]


def _load(folder: Path) -> list[list[tuple[float, int, float]]]:
    return [orjson.loads(p.read_bytes()) for p in sorted(folder.glob("*.json"))]


def _at(rows: list[tuple[float, int, float]], when: float) -> tuple[float, float]:
    """Calls and CPU of one process at ``when``, interpolated between its samples."""
    if when <= rows[0][0]:
        return float(rows[0][1]), rows[0][2]
    for (t0, n0, c0), (t1, n1, c1) in itertools.pairwise(rows):
        if t0 <= when <= t1:
            share = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
            return n0 + (n1 - n0) * share, c0 + (c1 - c0) * share
    return float(rows[-1][1]), rows[-1][2]


def figures(processes: list[list[tuple[float, int, float]]]) -> dict[str, float]:
    """Rate and CPU per message over the window in which every process consumed."""
    start = max(rows[0][0] for rows in processes)
    end = min(rows[-1][0] for rows in processes)
    if end <= start:
        raise WorkloadError("the consumer processes never consumed at the same time; raise --n")
    calls = cpu = 0.0
    for rows in processes:
        (n0, c0), (n1, c1) = _at(rows, start), _at(rows, end)
        calls, cpu = calls + n1 - n0, cpu + c1 - c0
    return {"msgs_s": calls / (end - start), "cpu_us": cpu / calls * 1e6, "window_s": end - start}


async def one_run(run: str, n: int, uvloop: bool) -> dict[str, float]:
    """Consume ``n`` pre-published events with ``run``'s processes; its figures."""
    url = broker_url()
    async with admin(url) as adm:
        queue = unique_queue(run.split()[0], "workers")
        await adm.declare(queue)
        try:
            await adm.prefill(queue, n)
            await adm.check_ready(queue, n)
            with tempfile.TemporaryDirectory() as folder:
                env = dict(
                    os.environ, **{QUEUE_VAR: queue, OUT_VAR: folder, "EVENTRABBIT_URL": url}
                )
                await _consume(_argv(run, uvloop), env, Path(folder), n)
                result = figures(_load(Path(folder)))
            await check_all_acked(adm, queue)
        finally:
            await adm.delete(queue)
    return result


async def _consume(commands: list[list[str]], env: dict[str, str], folder: Path, n: int) -> None:
    processes = [await asyncio.create_subprocess_exec(*c, env=env) for c in commands]
    try:
        async with asyncio.timeout(60.0 + n / 100):
            while sum(rows[-1][1] for rows in _load(folder)) < n:
                if any(p.returncode is not None for p in processes):
                    raise WorkloadError(f"a consumer exited early: {commands[0][2:5]}")
                await asyncio.sleep(POLL_EVERY)
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = [await p.wait() for p in processes]
    if any(codes):
        raise WorkloadError(f"consumer exit codes {codes}")
    handled = sum(rows[-1][1] for rows in _load(folder))
    if handled != n:
        raise WorkloadError(f"{handled} handler calls for {n} events")


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f} to {max(values):.2f}x" if len(values) > 1 else "-"


def table(rounds: list[dict[str, dict[str, float]]], meta: dict[str, Any]) -> str:
    """Medians per run, then each ratio's median and its spread (min to max) across rounds."""
    lines = [
        "## eventrabbit run --workers: consume throughput",
        "",
        f"**{meta['date']}** · {meta['cpus']} CPUs, load average at start {meta['load']} · "
        f"loop: {meta['loop']} · N {meta['n']:,} events per run · prefetch {PREFETCH} per "
        f"process · {len(rounds)} round(s)",
        "",
        "| consumer | msgs/s | CPU µs/msg | window s |",
        "|---|---:|---:|---:|",
    ]
    for run in RUNS:
        med = {k: statistics.median(r[run][k] for r in rounds) for k in rounds[0][run]}
        lines.append(
            f"| {run} | {number(med['msgs_s'])} | {number(med['cpu_us'])} | {med['window_s']:.2f} |"
        )
    lines += ["", "| ratio | msgs/s | spread | CPU/msg | spread |", "|---|---:|---:|---:|---:|"]
    pairs = [(RUNS[1], RUNS[0]), (RUNS[2], RUNS[0]), (RUNS[1], RUNS[2])]
    for top, bottom in pairs:
        rate = [r[top]["msgs_s"] / r[bottom]["msgs_s"] for r in rounds]
        cpu = [r[top]["cpu_us"] / r[bottom]["cpu_us"] for r in rounds]
        lines.append(
            f"| {top} ÷ {bottom} | {statistics.median(rate):.2f}x | {_spread(rate)} "
            f"| {statistics.median(cpu):.2f}x | {_spread(cpu)} |"
        )
    return "\n".join(lines) + "\n"


async def main(n: int, rounds: int, uvloop: bool) -> tuple[str, dict[str, Any]]:
    load = [round(x, 2) for x in os.getloadavg()]
    results: list[dict[str, dict[str, float]]] = []
    for number_ in range(1, rounds + 1):
        results.append({})
        for run in RUNS:
            print(f"round {number_}/{rounds}: {run} ...", file=sys.stderr, flush=True)
            results[-1][run] = await one_run(run, n, uvloop)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "load": load,
        "loop": loop.loop_name(),
        "n": n,
    }
    return table(results, meta), {"meta": meta, "rounds": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers")
    parser.add_argument("--n", type=int, default=50_000, help="events per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true", help="every process on uvloop")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--raw-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_child:
        loop.run(raw_child(), args.uvloop)
    else:
        text, figures_ = loop.run(main(args.n, args.rounds, args.uvloop), args.uvloop)
        print(text)
        if args.out is not None:
            args.out.write_bytes(orjson.dumps(figures_, option=orjson.OPT_INDENT_2))
