"""``eventrabbit replay MODULE:STREAM``: replay a stream's events through a service's handlers.

Theory of operation
-------------------
``MODULE`` is imported as for ``run`` (:mod:`.target`); ``STREAM`` names a module attribute
holding a :class:`~eventrabbit.StreamChannel`, and the module's ``Handle`` replays it
(``handle.replay``): the same handlers, checks and bad-input reasons as live consumption.
``--from`` and ``--to`` are parsed here (pure: :func:`start_of`, :func:`stop_of`); everything
else — declaring the stream, skipping what precedes the start, checkpoints, holding back side
effects — is the library's. The summary goes to stdout; SIGINT ends a ``--to follow`` (the
checkpoint is saved first).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

from eventrabbit import FileCheckpoints, ReplayFailed, StreamChannel

from . import output
from .exits import CommandError, Exit
from .target import attribute_of, load_module

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def start_of(text: str) -> str | int | datetime | timedelta:
    """``--from``: ``first``, ``last``, ``next``, an offset, an ISO 8601 time with its zone, or
    a duration ago (``90s``, ``15m``, ``2h``, ``7d``).

    :raises CommandError: (``USAGE``) none of these.
    """
    if text in ("first", "last", "next"):
        return text
    return _position(text, "--from")


def stop_of(text: str) -> str | int | datetime | None:
    """``--to``: ``idle`` (caught up), ``follow`` (until interrupted), an offset or a time."""
    if text == "idle":
        return text
    if text == "follow":
        return None
    stop = _position(text, "--to")
    if isinstance(stop, timedelta):
        raise CommandError(f"--to {text!r}: a duration is only a --from", Exit.USAGE)
    return stop


def _position(text: str, option: str) -> int | datetime | timedelta:
    if text.isdigit():
        return int(text)
    duration = _DURATION.fullmatch(text)
    if duration is not None:
        return timedelta(**{_UNITS[duration.group(2)]: float(duration.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"{option} {text!r}: expected an offset, an ISO 8601 time or a duration like 15m",
            Exit.USAGE,
        ) from None
    if moment.tzinfo is None:
        raise CommandError(
            f"{option} {text!r} has no time zone: add one (e.g. +00:00 or Z)", Exit.USAGE
        )
    return moment


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``replay``."""
    command = commands.add_parser(
        "replay",
        parents=[common],
        help="replay a stream's events through a service's handlers",
        description="Import MODULE and replay the StreamChannel STREAM names through the "
        "module's handlers, from --from to --to; print a summary.",
        epilog="exit codes: 0 replayed; 1 an event failed for good (--on-failure stop); "
        "2 usage or configuration error; 3 broker unreachable",
    )
    command.add_argument("target", metavar="MODULE:STREAM")
    command.add_argument("--handle", help="the module's Handle to use, when it has several")
    command.add_argument("--from", dest="start", default="first", type=start_of, metavar="FROM")
    command.add_argument("--to", dest="stop", default="idle", type=stop_of, metavar="TO")
    command.add_argument(
        "--on-failure", choices=["stop", "dead_letter"], default="stop", dest="on_failure"
    )
    command.add_argument(
        "--side-effects", action="store_true", help="send what handlers publish (held back)"
    )
    command.add_argument("--checkpoint", help="resume from and save this named checkpoint")
    command.add_argument(
        "--checkpoint-dir", default=".", help="where checkpoint files are kept (default: .)"
    )
    command.set_defaults(command=_run)


def _run(args: argparse.Namespace) -> int:
    module, handle = load_module(args.target, args.handle, what="STREAM")
    name = args.target.partition(":")[2]
    stream = attribute_of(module, name)
    if not isinstance(stream, StreamChannel):
        raise CommandError(f"{module.__name__}.{name} is not a StreamChannel", Exit.USAGE)
    store = FileCheckpoints(args.checkpoint_dir) if args.checkpoint else None
    try:
        summary = asyncio.run(
            handle.replay(
                stream,
                start=args.start,
                stop=args.stop,
                on_failure=args.on_failure,
                side_effects=args.side_effects,
                checkpoint=args.checkpoint,
                store=store,
            )
        )
    except ReplayFailed as exc:
        raise CommandError(str(exc), Exit.REMOTE_FAILED) from None
    data = {
        "stream": summary.stream,
        "handled": summary.handled,
        "skipped": summary.skipped,
        "dead_lettered": summary.dead_lettered,
        "held_back": summary.held_back,
        "first_offset": summary.first_offset,
        "last_offset": summary.last_offset,
        "duration_s": round(summary.duration, 3),
        "reconnects": summary.reconnects,
    }
    span = (
        "nothing"
        if summary.first_offset is None
        else f"offsets {summary.first_offset}..{summary.last_offset}"
    )
    text = (
        f"replayed {summary.handled} events of stream {summary.stream!r} ({span}) in "
        f"{summary.duration:.1f} s; {summary.skipped} skipped, {summary.dead_lettered} "
        f"dead-lettered, {summary.held_back} publishes held back"
    )
    output.result(args, data, text)
    return int(Exit.OK)
