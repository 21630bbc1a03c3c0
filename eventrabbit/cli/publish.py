"""``eventrabbit publish EXCHANGE ACTION [DATA]``: publish events as a service would.

Theory of operation
-------------------
Each event goes through the library's publisher, so its body and properties are exactly what
a producer publishes (``--header`` adds string headers). ``DATA`` is one JSON object (default
``{}``); ``-`` reads newline-delimited JSON objects from stdin, one event's data per line, all
published as ``ACTION`` (a line is data only: an ``{"action": ..., "data": ...}`` line would be
published as data with those two keys). Blank lines are skipped. The first event goes alone
(a missing exchange fails it, not a window of them); the rest are pipelined
(:mod:`.publish_stream`). Every event is counted only once confirmed.

A line that is not a JSON object stops the intake: what was started before it is confirmed,
the summary says how many, and the command exits 2 naming the line. A failed publish stops it
too (exit 1, or 3 when the broker was lost). Unroutable events are counted; with
``--mandatory`` any makes the exit code 1, without it they are reported only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from eventrabbit import build_event_dependencies
from eventrabbit.confirm import DEFAULT_PUBLISH_TIMEOUT

from . import output
from .exits import CommandError, Exit
from .publish_input import failure_code, header, parse_object, read_lines, seconds
from .publish_stream import Pipeline

#: Seconds between two progress lines on stderr, by default (stdin input only).
PROGRESS_EVERY = 1.0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``publish``."""
    command = commands.add_parser(
        "publish",
        parents=[common],
        help="publish events, confirmed, as a service would",
        description='Publish {"action": ACTION, "data": DATA} to EXCHANGE and wait for the '
        "broker's confirm. DATA is a JSON object (default {}); - reads one JSON object per line "
        "from stdin. EXCHANGE '' is the default exchange (--key is then the queue's name).",
        epilog="exit codes: 0 all published; 1 the broker refused one, or --mandatory and one "
        "reached no queue; 2 bad arguments or a line that is not a JSON object; 3 broker "
        "unreachable, login refused, or no confirm in time",
    )
    command.add_argument("exchange", metavar="EXCHANGE")
    command.add_argument("action", metavar="ACTION")
    command.add_argument("data", metavar="DATA", nargs="?", default="{}")
    command.add_argument("--key", default="", help="the routing key (default: '')")
    command.add_argument(
        "--mandatory", action="store_true", help="fail (exit 1) when an event reaches no queue"
    )
    command.add_argument(
        "--header",
        type=header,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add a header (a string); repeatable",
    )
    command.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_PUBLISH_TIMEOUT,
        metavar="SECONDS",
        help="how long each publish may take, confirm included "
        f"(default {DEFAULT_PUBLISH_TIMEOUT})",
    )
    command.add_argument(
        "--progress",
        type=float,
        default=PROGRESS_EVERY,
        metavar="SECONDS",
        help=f"with -, a progress line on stderr every SECONDS (default {PROGRESS_EVERY})",
    )
    command.set_defaults(command=_run)


def _run(args: argparse.Namespace) -> int:
    single = None if args.data == "-" else parse_object(args.data, "DATA")
    return asyncio.run(_publish(args, single))


async def _publish(args: argparse.Namespace, single: dict[str, Any] | None) -> int:
    events, _ = build_event_dependencies(args.url, idle_timeout=None, publish_timeout=args.timeout)
    headers = dict(args.header) or None
    try:
        # Connect first, so a broker that cannot be reached at all ends the command at once
        # (the publisher would wait --timeout for it, as it does for one that comes back).
        await events.publisher.channel.get()
        pipeline = Pipeline(
            events.publisher,
            args.exchange,
            args.action,
            args.key,
            headers,
            progress_every=None if single is not None else max(args.progress, 0.0),
        )
        stopped = None
        if single is not None:
            await pipeline.submit(single)
        else:
            stopped = await _feed(pipeline)
        await pipeline.drain()
    finally:
        await events.close()
    return _finish(args, pipeline, single is not None, stopped)


async def _feed(pipeline: Pipeline) -> CommandError | None:
    """Publish stdin's lines; the error of the line that stopped it, if one did."""
    first = True
    async with contextlib.aclosing(read_lines(sys.stdin.fileno())) as lines:
        async for number, line in lines:
            if not line.strip():
                continue
            try:
                data = parse_object(line, f"line {number}")
            except CommandError as exc:
                return exc
            if not await pipeline.submit(data):
                break  # an earlier publish failed: the pipeline has its error
            if first:
                # The first goes alone: a missing exchange then fails one publish rather than
                # a window of them, whose re-sends on a closing channel the broker punishes.
                await pipeline.drain()
                first = False
    return None


def _finish(
    args: argparse.Namespace, pipeline: Pipeline, single: bool, stopped: CommandError | None
) -> int:
    published, unroutable = pipeline.published, pipeline.unroutable
    summary: dict[str, Any] = {
        "exchange": args.exchange,
        "action": args.action,
        "key": args.key,
        "published": published,
        "unroutable": unroutable,
    }
    if single and published:
        summary["message_id"] = pipeline.message_id
    error, code = None, Exit.OK
    if stopped is not None:
        error, code = f"{stopped}; stopped there, {published} published before it", stopped.code
    elif pipeline.failure is not None:
        error, code = str(pipeline.failure), failure_code(pipeline.failure)
        if not single:
            error += f"; stopped there, {published} published"
    elif args.mandatory and unroutable:
        error = f"{unroutable} of {published} reached no queue (--mandatory)"
        code = Exit.REMOTE_FAILED
    if error is not None:
        summary["error"] = error
    output.result(args, summary, _text(args, summary))
    if error is not None:
        raise CommandError(error, code)
    return int(Exit.OK)


def _text(args: argparse.Namespace, summary: dict[str, Any]) -> str:
    count = summary["published"]
    where = f"exchange {args.exchange!r}" if args.exchange else "the default exchange"
    text = (
        f"published {count} event{'' if count == 1 else 's'} to {where} with routing key "
        f"{args.key!r} (action {args.action!r})"
    )
    if "message_id" in summary:
        text += f", message id {summary['message_id']}"
    if summary["unroutable"]:
        text += f"; {summary['unroutable']} reached no queue"
    return text
