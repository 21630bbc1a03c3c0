"""``eventrabbit dlq redrive`` and ``dlq purge``: move the selected dead letters back to their
work queues, or delete them; everything else stays, in its order.

Theory of operation
-------------------
The queue is walked front to back (:mod:`.dlq_walk`). :func:`~.dlq_rules.decide` says what
happens to each letter:

- **moved**: published, confirmed, to the queue its ``x-eventrabbit-queue`` names, through the
  default exchange, with :func:`~.dlq_rules.redriven` properties — and only then acked. A walk
  interrupted at any moment loses nothing and leaves at most the letter in flight both moved
  and still there;
- **kept** (not selected) and **skipped** (selected, but without ``x-eventrabbit-queue``,
  with properties that cannot be parsed, or whose work queue does not exist): held, and
  returned in order at the end.

``--limit`` ends the walk after that many moves (the letters behind are not read), ``--rate``
paces the moves, ``--dry-run`` decides and returns everything. A filtered ``purge`` acks the
selected letters without publishing them; an unfiltered one purges the queue at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

from .dlq_read import Ticker
from .dlq_rules import (
    NO_ACTION,
    Delivery,
    Move,
    Selection,
    Skip,
    dead_letter_queue,
    decide,
    redriven,
)
from .dlq_walk import Walk
from .exits import CommandError, Exit
from .output import result

#: Why a selected letter stays when its properties cannot be parsed.
UNPARSED = "its properties cannot be parsed"


class Pace:
    """Spaces moves to at most ``rate`` a second (``None``: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._start: float | None = None
        self._count = 0

    async def wait(self) -> None:
        """Wait until the next move is due."""
        if self.rate is None:
            return
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._count / self.rate
        self._count += 1
        if due > now:
            await asyncio.sleep(due - now)


class Tally:
    """What a ``redrive`` or filtered ``purge`` did."""

    def __init__(self) -> None:
        self.looked_at = 0
        self.by_action: Counter[str] = Counter()
        self.by_queue: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    @property
    def done(self) -> int:
        """Letters moved (or deleted)."""
        return self.by_action.total()

    def data(self, queue: str, depth: int) -> dict[str, Any]:
        """The summary as JSON."""
        return {
            "queue": queue,
            "depth": depth,
            "looked_at": self.looked_at,
            "moved": self.done,
            "left": depth - self.done,
            "by_action": dict(self.by_action.most_common()),
            "by_queue": dict(self.by_queue.most_common()),
            "skipped": dict(self.skipped.most_common()),
        }


async def redrive(args: argparse.Namespace) -> int:
    """Move the selected dead letters back to their work queues."""
    queue = dead_letter_queue(args.queue)
    selection = Selection(args.action, args.error_contains)
    tally, pace, ticker = Tally(), Pace(args.rate), Ticker()
    verb = "would move" if args.dry_run else "moved"
    walk = Walk(args.url, queue, window=args.read_ahead)
    async with walk, contextlib.aclosing(walk.deliveries()) as deliveries:
        async for delivery in deliveries:
            tally.looked_at += 1
            decision = decide(delivery.letter, selection)
            if isinstance(decision, Move):
                await _move(walk, delivery, decision.queue, tally, args.dry_run, pace)
            elif isinstance(decision, Skip):
                tally.skipped[decision.reason] += 1
            ticker.tick(lambda: f"{verb} {tally.done}, looked at {tally.looked_at} of {walk.depth}")
            if args.limit is not None and tally.done >= args.limit:
                break
    data = tally.data(queue, walk.depth) | {"dry_run": args.dry_run}
    text = [
        f"{verb} {tally.done} of {walk.depth} dead letters from {queue}; "
        f"{walk.depth - tally.done} left" + (" (dry run: nothing moved)" if args.dry_run else "")
    ]
    text += _counts("by action", tally.by_action) + _counts("to queue", tally.by_queue)
    text += [f"  skipped {n}: {reason}" for reason, n in tally.skipped.most_common()]
    result(args, data, "\n".join(text))
    return Exit.REMOTE_FAILED if tally.skipped else Exit.OK


async def _move(
    walk: Walk, delivery: Delivery, target: str, tally: Tally, dry_run: bool, pace: Pace
) -> None:
    if delivery.properties is None:
        tally.skipped[UNPARSED] += 1
        return
    if not dry_run:
        await pace.wait()
        if not await walk.publish(target, delivery.body, redriven(delivery.properties)):
            tally.skipped[f"queue {target!r} does not exist"] += 1
            return
        await walk.ack(delivery.tag)  # only now: it is in its work queue
    tally.by_action[delivery.letter.action or NO_ACTION] += 1
    tally.by_queue[target] += 1


async def purge(args: argparse.Namespace) -> int:
    """Delete all dead letters, or the selected ones."""
    if not args.yes:
        raise CommandError(
            "purge deletes dead letters for good: add --yes (`eventrabbit dlq stats` and "
            "`dlq peek` show what is there)",
            Exit.USAGE,
        )
    queue = dead_letter_queue(args.queue)
    selection = Selection(args.action, args.error_contains)
    tally, ticker = Tally(), Ticker()
    async with Walk(args.url, queue, window=args.read_ahead) as walk:
        if selection == Selection():
            deleted = await walk.purge()
            data = {"queue": queue, "deleted": deleted}
            result(args, data, f"deleted {deleted} dead letters from {queue}")
            return Exit.OK
        async for delivery in walk.deliveries():
            tally.looked_at += 1
            if selection.matches(delivery.letter):
                await walk.ack(delivery.tag)
                tally.by_action[delivery.letter.action or NO_ACTION] += 1
            ticker.tick(lambda: f"deleted {tally.done}, looked at {tally.looked_at}")
    data = {
        "queue": queue,
        "deleted": tally.done,
        "left": walk.depth - tally.done,
        "by_action": dict(tally.by_action.most_common()),
    }
    text = [f"deleted {tally.done} of {walk.depth} dead letters from {queue}"]
    result(args, data, "\n".join(text + _counts("by action", tally.by_action)))
    return Exit.OK


def _counts(title: str, counts: Counter[str]) -> list[str]:
    if not counts:
        return []
    return [f"  {title}: " + ", ".join(f"{key} {n}" for key, n in counts.most_common())]
