"""Memory: consume 2N events in a fresh process per client, sampling RSS at N and at 2N.

The parent pre-publishes 2N events and starts ``python -m benchmarks.memory`` (this module),
which consumes them and prints its figures as one JSON line. A fresh process per client keeps
one library's allocations out of another's figures. Flat memory shows as a growth N→2N near 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import sys
import time
from pathlib import Path

import orjson

from . import clients, loop
from .broker import admin
from .metrics import Figures
from .settings import PREFETCH, Settings, broker_url
from .tally import Tally
from .workloads import WorkloadError, check_all_acked, prefilled_queue, wait_for_tally

_MB = 1024 * 1024
#: The folder holding the ``benchmarks`` package: the child's working directory.
_PROJECT = Path(__file__).resolve().parent.parent
#: ru_maxrss is in KiB on Linux (bytes on macOS).
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


def _peak_mb() -> float:
    """This process's peak RSS.

    On Linux, VmHWM: ru_maxrss would carry the parent's peak over fork and exec.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / _MB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT / _MB


def _rss_mb() -> float:
    # Imported here: psutil is in the bench extra, and the report's unit tests import this
    # package with the test extra only.
    import psutil  # type: ignore[import-untyped,unused-ignore]

    return float(psutil.Process().memory_info().rss) / _MB


async def measure(client_name: str, url: str, queue: str, n: int) -> Figures:
    """Consume the 2N events waiting in ``queue``; this process's RSS figures."""
    client = clients.get(client_name)
    samples: dict[str, float] = {}

    def sample(at: str) -> None:
        samples[f"peak_{at}"], samples[f"rss_{at}"] = _peak_mb(), _rss_mb()

    tally = Tally(2 * n, marks={n: lambda: sample("n"), 2 * n: lambda: sample("2n")})
    baseline = _rss_mb()
    cpu = time.process_time()
    async with client.consumer(url, queue, PREFETCH, tally):
        await wait_for_tally(tally, 60.0 + n / 50)
    cpu = time.process_time() - cpu
    gc.collect()
    return {
        "memory_baseline_mb": baseline,
        "memory_peak_mb": samples["peak_n"],
        "memory_rss_n_mb": samples["rss_n"],
        "memory_rss_2n_mb": samples["rss_2n"],
        "memory_growth_mb": samples["rss_2n"] - samples["rss_n"],
        "memory_peak_2n_mb": samples["peak_2n"],
        "memory_after_mb": _rss_mb(),
        "memory_cpu_us": cpu / (2 * n) * 1e6,
    }


async def run_in_subprocess(client_name: str, settings: Settings) -> Figures:
    """Pre-publish 2N events, consume them in a child process, clean up; the child's figures."""
    n = settings.memory_n
    async with admin(settings.url) as adm:
        queue = await prefilled_queue(adm, client_name, "memory", 2 * n)
        try:
            figures = await _child(client_name, queue, n, settings)
            await check_all_acked(adm, queue)
        finally:
            await adm.delete(queue)
    return figures


async def _child(client_name: str, queue: str, n: int, settings: Settings) -> Figures:
    args = ["-m", "benchmarks.memory", client_name, queue, str(n)]
    if settings.uvloop:
        args.append("--uvloop")
    # The URL goes by environment, not argv, so its password stays out of process listings.
    env = {**os.environ, "EVENTRABBIT_URL": settings.url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=_PROJECT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        raise WorkloadError(f"memory child for {client_name} failed: " + " | ".join(tail))
    figures: Figures = orjson.loads(out.strip().splitlines()[-1])
    return figures


def main() -> None:
    """The child: ``python -m benchmarks.memory CLIENT QUEUE N [--uvloop]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("client", choices=clients.names())
    parser.add_argument("queue")
    parser.add_argument("n", type=int)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    coroutine = measure(args.client, broker_url(), args.queue, args.n)
    figures = loop.run(coroutine, args.uvloop)
    sys.stdout.write(orjson.dumps(figures).decode() + "\n")


if __name__ == "__main__":
    main()
