"""What the ``consume`` calls of a handle are doing: the live state of each (a *run*), its
public snapshot (:class:`ConsumerStatus`), and waiting until runs consume (readiness).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .common import ConsumeChannel
from .connection import censor
from .timeouts import ConsumerTimeouts


@dataclass(slots=True, frozen=True)
class ConsumerStatus:
    """One ``consume`` of a handle, as :meth:`Handle.status` reports it.

    :param queue: the queue it consumes.
    :param broker: the broker's URL (or URLs), censored.
    :param consuming: its broker consumer runs now: deliveries are being handled.
    :param since: when it last started consuming (UTC); ``None`` if it never did.
    :param reconnects: how often it started again after losing its channel or connection.
    :param last_error: the last fault it met, or what ended it; ``None`` if none.
    :param ended: it has stopped for good (``last_error`` says why).
    :param consumer_timeouts: how often the broker's ``consumer_timeout`` closed its channel
        (a handler held a delivery too long: see ``QueueConfig.handler_timeout``).
    """

    queue: str
    broker: str
    consuming: bool
    since: datetime | None
    reconnects: int
    last_error: str | None
    ended: bool
    consumer_timeouts: int = 0


@dataclass(slots=True, eq=False)
class Run:
    """The live state of one ``consume`` call."""

    channel: ConsumeChannel
    consuming: bool = False
    since: datetime | None = None
    starts: int = 0
    last_error: str | None = None
    failure: BaseException | None = None
    cancelled: bool = False
    #: What the broker's consumer timeout took back, over the channels of this run.
    timeouts: ConsumerTimeouts = field(default_factory=ConsumerTimeouts, repr=False)
    task: asyncio.Task[Any] | None = field(default=None, repr=False)

    def started(self) -> None:
        """Its broker consumer runs now."""
        self.consuming, self.since, self.starts = True, datetime.now(UTC), self.starts + 1

    def lost(self, reason: str) -> None:
        """It lost its channel or connection and will start again."""
        self.consuming, self.last_error = False, reason

    def end(self, exc: BaseException) -> None:
        """A fault ended it for good."""
        self.consuming, self.failure = False, exc
        self.last_error = f"{type(exc).__name__}: {exc}"

    def matches(self, wanted: ConsumeChannel | str) -> bool:
        """Whether ``wanted`` (a channel or a queue name) names this run."""
        return wanted == self.channel or wanted == self.channel.queue_name

    def status(self) -> ConsumerStatus:
        """A snapshot for :meth:`Handle.status`."""
        return ConsumerStatus(
            queue=self.channel.queue_name,
            broker=", ".join(censor(url) for url in self.channel.urls),
            consuming=self.consuming,
            since=self.since,
            reconnects=max(0, self.starts - 1),
            last_error=self.last_error,
            ended=self.failure is not None,
            consumer_timeouts=self.timeouts.closes,
        )


class Runs:
    """The runs of one handle, and the tasks waiting for them to consume."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self._waiters: set[asyncio.Future[None]] = set()

    def add(self, channel: ConsumeChannel) -> Run:
        """A new ``consume`` call; an earlier one of ``channel`` that a fault ended goes."""
        self.runs = [r for r in self.runs if not (r.failure and r.channel == channel)]
        run = Run(channel)
        self.runs.append(run)
        return run

    def forget(self, run: Run) -> None:
        """A run stopped because it was asked to."""
        if run in self.runs:
            self.runs.remove(run)
        self.changed()

    def changed(self) -> None:
        """A run started or stopped consuming: wake the waiters to look again."""
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def until_consuming(
        self,
        wanted: list[ConsumeChannel | str],
        timeout: float | None,  # noqa: ASYNC109
    ) -> None:
        """Wait until a run of each of ``wanted`` consumes (see :meth:`Handle.ready`)."""
        try:
            async with asyncio.timeout(timeout):
                while not self._all_consuming(wanted):
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.add(waiter)
                    await waiter
        except TimeoutError:
            missing = [_queue_of(w) for w in wanted if not self._all_consuming([w])]
            raise TimeoutError(
                f"queue(s) {', '.join(missing)} not consuming after {timeout} s; see "
                "handle.status() for their last error"
            ) from None

    def _all_consuming(self, wanted: list[ConsumeChannel | str]) -> bool:
        for one in wanted:
            runs = [run for run in self.runs if run.matches(one)]
            if any(run.consuming for run in runs):
                continue
            failed = [run.failure for run in runs if run.failure is not None]
            if failed and len(failed) == len(runs):
                raise failed[-1]
            return False
        return True


def _queue_of(channel: ConsumeChannel | str) -> str:
    return channel if isinstance(channel, str) else channel.queue_name
