"""``eventrabbit run MODULE:CHANNELS``: run a service — consume its channels with its handle until
SIGTERM or SIGINT, then drain gracefully — in this process, or in ``--workers N`` supervised
processes.

Theory of operation
-------------------
The channels name their brokers themselves, so ``run`` connects where they say. ``--url`` (and
``$EVENTRABBIT_URL``) rewrite no channel: a ``--url`` given on the command line is exported as
``$EVENTRABBIT_URL`` before the module is imported, for modules that read their broker from it.
The module is imported once here, in any case: a wrong ``MODULE:CHANNELS`` or a module that
fails on import ends the command with exit 2 before any worker starts.
"""

from __future__ import annotations

import argparse
import os
import traceback
from typing import Any

from .exits import CommandError, Exit
from .run_logging import configure
from .run_options import DEFAULT_CONNECT_TIMEOUT, LOG_FORMATS, LOG_LEVELS, LOOPS, Options
from .target import Target, load


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``run``."""
    command = commands.add_parser(
        "run",
        parents=[common],
        help="run a service: consume its channels until SIGTERM/SIGINT",
        description="Import MODULE and consume the channels CHANNELS names with the module's "
        "Handle until SIGTERM or SIGINT, then stop gracefully: no new deliveries, in-flight "
        "handlers finish (within --grace) and are acked. A line 'ready: ...' on stderr says "
        "when every queue consumes. The channels carry their broker URLs; --url only sets "
        "$EVENTRABBIT_URL for the module. --json is --log-format json.",
        epilog="exit codes: 0 stopped by a signal; 1 a worker failed (--workers) or the service "
        "failed; 2 bad MODULE:CHANNELS, import error, configuration or topology error; "
        "3 the broker was not reached within --connect-timeout",
    )
    command.add_argument("target", metavar="MODULE:CHANNELS")
    command.add_argument("--handle", help="the module's Handle to use, when it has several")
    command.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="run N worker processes, restarting any that dies (default: this process only)",
    )
    command.add_argument(
        "--grace",
        type=_seconds,
        metavar="SECONDS",
        help="time in-flight handlers get on stop (default: each queue's grace_timeout)",
    )
    command.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help="on start, give up (exit 3) if the queues do not consume within this time; "
        f"0 waits forever (default: {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    command.add_argument(
        "--loop", choices=LOOPS, default="auto", help="default: auto (uvloop when installed)"
    )
    command.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    command.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    # Set by the supervisor on the command line of each worker it starts.
    command.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    command.add_argument("--supervisor-fd", type=int, help=argparse.SUPPRESS)
    # What --url is when not given, to tell a --url given on the command line.
    command.set_defaults(command=_run, default_url=common.get_default("url"))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, not {text}")
    return value


def _run(args: argparse.Namespace) -> int:
    options = Options.of(args)
    configure(options.log_level, options.log_format, options.worker)
    if args.url != args.default_url:
        os.environ["EVENTRABBIT_URL"] = args.url  # given on the command line: for the module
    target = _load(options)
    if options.workers is None:
        from .run_service import run

        return run(target, options)
    from .workers import supervise

    return supervise(target, options)


def _load(options: Options) -> Target:
    try:
        return load(options.target, options.handle)
    except CommandError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported, with its traceback, as exit 2
        # The module's own code failed on import: its traceback is what helps.
        traceback.print_exc()
        module = options.target.partition(":")[0]
        raise CommandError(
            f"importing {module!r} failed: {type(exc).__name__}: {exc}", Exit.USAGE
        ) from None
