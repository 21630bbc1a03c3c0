"""``eventrabbit dlq``: look into a dead-letter queue eventrabbit made, move its messages back
to their work queues, or delete them.

``QUEUE`` is the work queue or its dead-letter queue (``orders`` and ``orders.dlq`` both mean
``orders.dlq``). The sub-commands are ``stats``, ``peek`` (:mod:`.dlq_read`), ``redrive`` and
``purge`` (:mod:`.dlq_redrive`); how the queue is read without losing or reordering anything
is :mod:`.dlq_walk`, and what is decided about each message :mod:`.dlq_rules`.

Exit codes: 0 done; 1 a re-drive left selected messages behind (they stay, the summary says
why), or the broker closed the channel (a permission, the consumer timeout); 2 a usage error
— also a queue that does not exist, ``purge`` without ``--yes``, a quorum queue too deep for
``--read-ahead``; 3 the broker cannot be reached or the connection to it went.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import aiormq

from eventrabbit.checks import MAX_PREFETCH_COUNT

from .dlq_read import peek, stats
from .dlq_redrive import purge, redrive
from .dlq_walk import WINDOW
from .exits import CommandError, Exit

Run = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``dlq`` and its sub-commands."""
    dlq = commands.add_parser(
        "dlq",
        help="look into, re-drive or purge a dead-letter queue",
        description="Look into a dead-letter queue eventrabbit made (QUEUE or QUEUE.dlq), "
        "move its messages back to their work queues, or delete them. Reading leaves every "
        "message where it was.",
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")

    def sub(name: str, run: Run, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(
            name, parents=[common], help=text, description=text
        )
        parser.add_argument("queue", metavar="QUEUE", help="the work queue or its .dlq")
        parser.add_argument(
            "--read-ahead",
            type=_read_ahead,
            default=WINDOW,
            metavar="N",
            help=f"messages read ahead of the one handled (default {WINDOW})",
        )
        parser.set_defaults(command=_sync(run))
        return parser

    sub("stats", stats, "count the dead letters by action and by error class")
    peek_parser = sub("peek", peek, "show the first dead letters, leaving them in place")
    peek_parser.add_argument("-n", type=_positive, default=10, help="how many (default 10)")
    redrive_parser = sub(
        "redrive", redrive, "move the selected dead letters back to their work queues"
    )
    _selection(redrive_parser)
    redrive_parser.add_argument(
        "--limit", type=_positive, metavar="N", help="move at most N, then stop"
    )
    redrive_parser.add_argument(
        "--rate", type=_positive_float, metavar="N", help="move at most this many a second"
    )
    redrive_parser.add_argument(
        "--dry-run", action="store_true", help="move nothing; say what would move"
    )
    purge_parser = sub("purge", purge, "delete all dead letters, or the selected ones")
    _selection(purge_parser)
    purge_parser.add_argument("--yes", action="store_true", help="really delete them")


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--action", help="only the messages of this action")
    parser.add_argument(
        "--error-contains", metavar="TEXT", help="only those whose x-eventrabbit-error has TEXT"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _read_ahead(text: str) -> int:
    value = _positive(text)
    if value > MAX_PREFETCH_COUNT:  # it is each consumer's prefetch count
        raise argparse.ArgumentTypeError(f"must be at most {MAX_PREFETCH_COUNT}, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _sync(run: Run) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(run(args))
        except aiormq.exceptions.AMQPChannelError as exc:
            # What the broker refused (a permission, the consumer timeout): the channel went,
            # and with it every message held — back in the queue, nothing lost.
            raise CommandError(
                f"the broker closed the channel: {exc}", Exit.REMOTE_FAILED
            ) from None
        except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError) as exc:
            # The connection went (a broker restart, the network): held messages went back.
            raise CommandError(
                f"lost the connection to the broker: {type(exc).__name__}: {exc}", Exit.UNREACHABLE
            ) from None

    return command
