"""``python -m benchmarks [--quick] [--rounds N] [--out DIR] [--uvloop] ...``"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import aiormq
from yarl import URL

from . import clients, loop, report
from .environment import describe
from .settings import ALL_CLIENTS, REFERENCE, Settings, broker_url
from .suite import Results, log, run_memory, run_rounds

#: Where results go unless ``--out`` says otherwise.
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
WORKLOADS = ("consume", "publish", "rpc", "latency", "memory")
#: Who the memory workload measures under ``--quick`` (unless ``--memory-clients`` says).
QUICK_MEMORY_CLIENTS = (REFERENCE, "eventrabbit")


def censored(url: str) -> str:
    """The URL without its password, for messages."""
    parsed = URL(url)
    return str(parsed.with_password("******") if parsed.password else parsed)


def _names(text: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = set(names) - set(allowed)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown: {', '.join(sorted(unknown))}")
    return names


def _memory_default(clients_run: tuple[str, ...], quick: bool) -> tuple[str, ...]:
    """Every client; with ``--quick`` only the reference and eventrabbit, to stay < 1 min."""
    if not quick:
        return clients_run
    return tuple(c for c in clients_run if c in QUICK_MEMORY_CLIENTS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="eventrabbit against a raw aiormq loop, aio-pika and FastStream.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 round (< 1 min)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (if installed)")
    parser.add_argument("--consume-n", type=int, help="events per consume run")
    parser.add_argument("--memory-n", type=int, help="N of the memory workload (consumes 2N)")
    known = clients.names()
    parser.add_argument(
        "--clients",
        type=lambda text: _names(text, known),
        default=ALL_CLIENTS,
        help=f"comma-separated, of {','.join(known)} (raw always runs: it is the reference)",
    )
    parser.add_argument(
        "--memory-clients",
        type=lambda text: _names(text, known),
        help="who the memory workload measures (default: --clients; raw,eventrabbit if --quick)",
    )
    parser.add_argument(
        "--workloads",
        type=lambda text: _names(text, WORKLOADS),
        default=WORKLOADS,
        help=f"comma-separated, of {','.join(WORKLOADS)}",
    )
    return parser


def parse(argv: list[str] | None) -> tuple[Settings, Path]:
    """The settings and output folder the command line asks for."""
    parser = _parser()
    args = parser.parse_args(argv)
    clients_run = tuple(dict.fromkeys((REFERENCE, *args.clients)))
    overrides: dict[str, object] = {
        "clients": clients_run,
        "memory_clients": args.memory_clients or _memory_default(clients_run, args.quick),
        "workloads": args.workloads,
        "uvloop": args.uvloop,
    }
    for key in ("rounds", "consume_n", "memory_n"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    url = broker_url()
    settings = Settings.quick_run(url, **overrides) if args.quick else Settings(url, **overrides)  # type: ignore[arg-type]
    return settings, args.out


async def run(settings: Settings) -> Results:
    """The whole suite."""
    results = Results(meta=await describe(settings))
    await run_rounds(results, settings)
    await run_memory(results, settings)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the table, write the files; 1 if any workload failed."""
    settings, out = parse(argv)
    started = time.perf_counter()
    try:
        results = loop.run(run(settings), settings.uvloop)
    except (OSError, aiormq.exceptions.AMQPError) as exc:
        log(f"cannot use the broker at {censored(settings.url)}: {type(exc).__name__}: {exc}")
        log("start RabbitMQ or set EVENTRABBIT_URL")
        return 2
    results.meta["duration_s"] = round(time.perf_counter() - started, 1)
    text = report.write(results, out)
    sys.stdout.write(text)
    log(f"wrote latest.md, latest.json, latest.png to {out} in {results.meta['duration_s']} s")
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
