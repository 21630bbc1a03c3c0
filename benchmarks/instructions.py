"""CPU per consumed message counted in instructions (callgrind), not in seconds.

    python -m benchmarks.instructions                          # raw and eventrabbit
    python -m benchmarks.instructions --clients eventrabbit+prometheus --repeat 2
    python -m benchmarks.instructions --out instructions.json

Each client's consume workload (``python -m benchmarks.profile_consume``) runs under
``valgrind --tool=callgrind`` at two sizes, and valgrind's "Collected" line gives the
instructions the process executed. The difference between the two sizes divided by the
difference in messages removes what both runs share (interpreter start-up, imports, connect,
declare) and leaves the instructions per consumed message. The events are pre-published by a
child of the traced process, which valgrind does not follow, so publishing is not counted.

Why instructions: on a shared machine ``time.process_time()`` per message swings ±20-30 %
between rounds (other processes evict caches, steal cores, change the clock), while the
instructions a process executes barely depend on what else runs. So this figure can show a
change of a few per cent that the suite's CPU column cannot.

What it does not show: time spent waiting (for the broker, the socket, the scheduler), the
kernel's share of system calls (only user-space instructions are counted), and what an
instruction costs — cache misses, branch mispredictions and memory bandwidth weigh nothing
here. Two versions with the same count can differ in seconds.

Under valgrind the client runs about 50x slower than natively, so the broker always has the
prefetch window full and every read brings many deliveries: the count is that of a saturated
consumer, the cheapest case per message (no idle wake-ups, frames batched per read). A consumer
that keeps up with a slow producer pays more per message than this.

``raw`` (the hand-written aiormq loop) always runs, as the reference for the ratios. Clients
alternate within each repeat, as in the suite's rounds. Exit status: 2 without ``valgrind``,
1 if a measured run failed (its stderr's tail is printed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from . import clients
from .settings import PREFETCH, REFERENCE

#: valgrind's summary line, ``==<pid>== Collected : <instructions>``, on the traced process's
#: stderr (interleaved with the program's own output, hence the multiline search).
_COLLECTED = re.compile(r"^==\d+==\s+Collected\s*:\s*(\d+)\s*$", re.MULTILINE)
#: Lines of a failed run's stderr shown: enough for two tracebacks (the pre-publishing child's,
#: which holds the cause, then the parent's) and valgrind's summary.
STDERR_TAIL = 80
DEFAULT_CLIENTS = (REFERENCE, "eventrabbit")
#: Where ``-m benchmarks.profile_consume`` resolves, whatever folder this was started from.
_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (1000, 4000)
INSTALL_HINT = "valgrind is not installed (Debian/Ubuntu: apt-get install valgrind)"


class RunFailed(Exception):
    """A traced run exited non-zero or printed no instruction count."""

    def __init__(self, command: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(command)} exited {returncode}")
        self.returncode = returncode
        self.stderr = stderr


def parse_collected(text: str) -> int:
    """The instruction count of valgrind's "Collected" line in ``text`` (callgrind's stderr).

    Exactly one line must be there: none means valgrind did not finish the run, several mean
    it traced more than one process and the figure would mix them.
    """
    found = _COLLECTED.findall(text)
    if len(found) != 1:
        raise ValueError(f"expected one 'Collected' line from callgrind, found {len(found)}")
    return int(found[0])


def per_message(first: tuple[int, int], second: tuple[int, int]) -> float:
    """Instructions per message from two ``(messages, instructions)`` runs, in either order.

    The slope between the two runs: what both runs execute once (start-up, connect) cancels.
    A larger run counting fewer instructions than a smaller one means the one-off part varied
    more than the messages cost, so the slope would be meaningless: that raises.
    """
    (small_n, small_i), (large_n, large_i) = sorted((first, second))
    if small_n < 0 or small_n == large_n:
        raise ValueError(f"need two different, non-negative sizes, got {small_n} and {large_n}")
    if large_i < small_i:
        raise ValueError(
            f"{large_n} messages counted fewer instructions ({large_i:,}) than {small_n} "
            f"({small_i:,})"
        )
    return (large_i - small_i) / (large_n - small_n)


@dataclass(slots=True, frozen=True)
class Row:
    """One client's instructions per consumed message over the repeats."""

    client: str
    median: float
    low: float
    high: float
    repeats: int
    #: ``median`` ÷ the reference's median; ``None`` for the reference itself.
    ratio: float | None


def summarise(per_client: Mapping[str, Sequence[float]], reference: str = REFERENCE) -> list[Row]:
    """One row per client (the reference first), each with its ratio to the reference.

    ``per_client`` maps a client to its instructions per message, one figure per repeat.
    """
    if reference not in per_client or not per_client[reference]:
        raise ValueError(f"no figures for the reference client {reference!r}")
    base = statistics.median(per_client[reference])
    order = [reference, *(c for c in per_client if c != reference)]
    rows = []
    for client in order:
        figures = per_client[client]
        if not figures:
            raise ValueError(f"no figures for {client!r}")
        middle = statistics.median(figures)
        rows.append(
            Row(
                client=client,
                median=middle,
                low=min(figures),
                high=max(figures),
                repeats=len(figures),
                ratio=None if client == reference else middle / base,
            )
        )
    return rows


def markdown(rows: Sequence[Row]) -> str:
    """The rows as a markdown table; the min-max range only where a figure was repeated."""
    lines = [
        "| client | instructions per consumed message | ratio to raw |",
        "|---|---:|---:|",
    ]
    for row in rows:
        figure = f"{row.median:,.0f}"
        if row.repeats > 1:
            figure += f" ({row.low:,.0f}\N{EN DASH}{row.high:,.0f})"
        ratio = "\N{EM DASH}" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(f"| {row.client} | {figure} | {ratio} |")
    return "\n".join(lines) + "\n"


@dataclass(slots=True, frozen=True)
class Measurement:
    """One client's two traced runs of one repeat."""

    #: ``(messages consumed, instructions)`` of the smaller and of the larger run.
    counts: tuple[tuple[int, int], tuple[int, int]]
    per_message: float


def _log(text: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    print(text, file=sys.stderr, flush=True)


def _names(text: str) -> tuple[str, ...]:
    known = clients.names()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = set(names) - set(known)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown: {', '.join(sorted(unknown))} (known: {', '.join(known)})"
        )
    return names


def _sizes(text: str) -> tuple[int, int]:
    try:
        sizes = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not integers: {text!r}") from None
    if len(sizes) != 2 or sizes[0] == sizes[1] or min(sizes) < 1:
        raise argparse.ArgumentTypeError("two different positive sizes, e.g. 1000,4000")
    small, large = sorted(sizes)
    return small, large


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions",
        description="Instructions per consumed message under callgrind, against the raw loop.",
    )
    parser.add_argument(
        "--clients",
        type=_names,
        default=DEFAULT_CLIENTS,
        help=f"comma-separated, of {','.join(clients.names())} (raw always runs)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=DEFAULT_SIZES,
        help="the two numbers of events consumed (default 1000,4000)",
    )
    parser.add_argument(
        "--repeat", type=_positive, default=1, help="measurements per client (default 1)"
    )
    parser.add_argument("--out", type=Path, help="also write every count to this JSON file")
    return parser


def _count(valgrind: str, out_file: Path, client: str, n: int, env: Mapping[str, str]) -> int:
    """Instructions of one traced ``profile_consume`` run consuming ``n`` events."""
    command = [
        valgrind,
        "--tool=callgrind",
        f"--callgrind-out-file={out_file}",
        sys.executable,
        "-m",
        "benchmarks.profile_consume",
        "--client",
        client,
        "--n",
        str(n),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=_ROOT, check=False)
    if done.returncode != 0:
        raise RunFailed(command, done.returncode, done.stderr)
    try:
        return parse_collected(done.stderr)
    except ValueError as exc:
        raise RunFailed(command, done.returncode, f"{done.stderr}\n{exc}") from exc


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # String hashes are randomised per process by default, which changes dict probe sequences
    # and so the count a little from run to run; a fixed seed takes that out of the comparison.
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _valgrind_version(valgrind: str) -> str:
    done = subprocess.run([valgrind, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def measure(
    valgrind: str, names: Sequence[str], sizes: tuple[int, int], repeat: int, workdir: Path
) -> dict[str, list[Measurement]]:
    """Every client's counts at both sizes, ``repeat`` times, clients alternating."""
    env = _child_env()
    runs: dict[str, list[Measurement]] = {name: [] for name in names}
    for index in range(repeat):
        for name in names:
            counts: list[tuple[int, int]] = []
            for n in sizes:
                started = time.perf_counter()
                out_file = workdir / f"callgrind.{name}.{n}.{index}.out"
                counts.append((n, _count(valgrind, out_file, name, n, env)))
                # Only the count is needed: drop each profile now rather than let them pile up.
                out_file.unlink(missing_ok=True)
                _log(
                    f"repeat {index + 1}/{repeat} {name} n={n}: {counts[-1][1]:,} instructions "
                    f"({time.perf_counter() - started:.0f} s)"
                )
            figure = per_message(counts[0], counts[1])
            _log(f"repeat {index + 1}/{repeat} {name}: {figure:,.0f} instructions/message")
            runs[name].append(Measurement((counts[0], counts[1]), figure))
    return runs


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write the JSON if asked; 2 without valgrind, 1 on a failure."""
    args = _parser().parse_args(argv)
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        _log(INSTALL_HINT)
        return 2
    names = tuple(dict.fromkeys((REFERENCE, *args.clients)))
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        with tempfile.TemporaryDirectory(prefix="eventrabbit-callgrind-") as workdir:
            runs = measure(valgrind, names, args.sizes, args.repeat, Path(workdir))
    except RunFailed as exc:
        tail = "\n".join(exc.stderr.splitlines()[-STDERR_TAIL:])
        _log(f"{exc}; the end of its stderr:\n{tail}")
        return 1
    except ValueError as exc:
        # From per_message: the two sizes' counts cannot give a figure per message.
        _log(f"no figure per message: {exc}")
        return 1
    rows = summarise({name: [m.per_message for m in runs[name]] for name in names})
    table = markdown(rows)
    sys.stdout.write(table)
    if args.out is not None:
        document = {
            "meta": {
                "date": date,
                "python": f"{platform.python_implementation()} {platform.python_version()}",
                "valgrind": _valgrind_version(valgrind),
                "platform": platform.platform(),
                "sizes": list(args.sizes),
                "repeat": args.repeat,
                "prefetch": PREFETCH,
                "clients": list(names),
            },
            "runs": {name: [asdict(m) for m in measured] for name, measured in runs.items()},
            "rows": [asdict(row) for row in rows],
        }
        args.out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        _log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
