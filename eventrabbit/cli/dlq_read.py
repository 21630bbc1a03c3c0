"""``eventrabbit dlq stats`` and ``dlq peek``: read dead letters and say what they are, leaving
each where it was (see :mod:`.dlq_walk`: read with manual acks, returned in order).

``stats`` reads the whole queue, as deep as it was when it began, keeping counts only: its
memory does not grow with the queue. ``peek`` reads the first ``-n``.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .dlq_rules import NO_ACTION, Letter, dead_letter_queue, error_class, preview
from .dlq_walk import Walk
from .output import progress, result

#: Seconds between two progress lines.
PROGRESS_EVERY = 1.0
#: Characters of the body ``peek`` shows.
PREVIEW = 60
#: Characters of a header value ``peek`` shows as text (``--json`` has them whole).
TEXT_MAX = 300


class Ticker:
    """Prints a progress line on stderr at most every :data:`PROGRESS_EVERY` seconds."""

    def __init__(self) -> None:
        self._next = time.monotonic() + PROGRESS_EVERY

    def tick(self, line: Callable[[], str]) -> None:
        """Print ``line()`` if the last line is old enough."""
        now = time.monotonic()
        if now >= self._next:
            self._next = now + PROGRESS_EVERY
            progress(f"eventrabbit: {line()}")


async def stats(args: argparse.Namespace) -> int:
    """Count the dead letters by action and by error class."""
    queue = dead_letter_queue(args.queue)
    by_action: Counter[str] = Counter()
    by_error: Counter[str] = Counter()
    ticker = Ticker()
    async with Walk(args.url, queue, window=args.read_ahead) as walk:
        async for delivery in walk.deliveries():
            by_action[delivery.letter.action or NO_ACTION] += 1
            by_error[error_class(delivery.letter.error)] += 1
            ticker.tick(lambda: f"read {by_action.total()} of {walk.depth}")
    read = by_action.total()
    data = {
        "queue": queue,
        "depth": walk.depth,
        "read": read,
        "by_action": dict(by_action.most_common()),
        "by_error": dict(by_error.most_common()),
    }
    lines = [f"{queue}: {_count(walk.depth, 'dead letter')}"]
    if read != walk.depth:
        lines.append(f"(read {read}: the others were taken while reading)")
    lines += _table("by action", by_action) + _table("by error", by_error)
    result(args, data, "\n".join(lines))
    return 0


async def peek(args: argparse.Namespace) -> int:
    """Show the first ``-n`` dead letters."""
    queue = dead_letter_queue(args.queue)
    shown: list[dict[str, Any]] = []
    async with Walk(args.url, queue, window=args.read_ahead) as walk:
        async for delivery in walk.deliveries(args.n):
            shown.append(_entry(len(shown) + 1, delivery.letter))
    data = {"queue": queue, "depth": walk.depth, "messages": shown}
    head = f"{queue}: {_count(walk.depth, 'dead letter')}"
    lines = [head + (f", the first {len(shown)}:" if shown else "")]
    for entry in shown:
        lines += _block(entry)
    result(args, data, "\n".join(lines))
    return 0


def _entry(position: int, letter: Letter) -> dict[str, Any]:
    return {
        "position": position,
        "message_id": letter.message_id,
        "action": letter.action,
        "retry_count": letter.retry_count,
        "error": letter.error,
        "queue": letter.queue,
        "body": preview(letter.body, PREVIEW),
        "body_bytes": len(letter.body),
    }


def _block(entry: dict[str, Any]) -> list[str]:
    def shown(value: Any) -> str:  # one printable line, whatever the letter carries
        return "-" if value is None else preview(str(value).encode(), TEXT_MAX)

    return [
        f"{entry['position']:>3}  message_id={shown(entry['message_id'])}  "
        f"action={shown(entry['action'])}  retries={shown(entry['retry_count'])}  "
        f"queue={shown(entry['queue'])}",
        f"     error: {shown(entry['error'])}",
        f"     body:  {entry['body']} ({entry['body_bytes']} bytes)",
    ]


def _table(title: str, counts: Counter[str]) -> list[str]:
    if not counts:
        return []
    width = max(len(key) for key in counts)
    return [f"{title}:"] + [f"  {key:<{width}}  {n}" for key, n in counts.most_common()]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
