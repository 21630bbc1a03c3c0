"""What the fault scenarios share: a handler's record, a paced publisher, a connection watch,
a probe of queues, and the figures each scenario reports.

Times are ``time.monotonic()`` seconds (the clock asyncio's default loop uses).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiormq
import aiormq.abc

from eventrabbit import (
    ConsumeChannel,
    Events,
    ExchangeType,
    Handle,
    PublishError,
    QueueConfig,
    ReconnectConfig,
    RetryConfig,
    build_event_dependencies,
)

#: The action every scenario's events carry.
ACTION = "fault.tick"
#: If set, the figures are also appended to this file as JSON lines (a CI artifact).
REPORT_ENV = "EVENTRABBIT_FAULT_REPORT"


# -- figures -------------------------------------------------------------------------------


@dataclass
class FaultResult:
    """One scenario's figures; ``line()`` is the parseable one-line summary."""

    name: str
    published: int
    handled: int
    duplicates: int
    recovery_s: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        recovery = "n/a" if self.recovery_s is None else f"{self.recovery_s:.3f}"
        fields = [
            f"published={self.published}",
            f"handled={self.handled}",
            f"duplicates={self.duplicates}",
            f"recovery_s={recovery}",
        ]
        for key, value in self.extra.items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            fields.append(f"{key}={shown}")
        return f"FAULT {self.name}: " + " ".join(fields)


#: Every figure reported in this run, for the final summary.
RESULTS: list[FaultResult] = []


def report(result: FaultResult) -> FaultResult:
    """Print the scenario's line now (visible with ``-s``) and keep it for the summary."""
    print(f"\n{result.line()}", flush=True)
    RESULTS.append(result)
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({**result.__dict__, "line": result.line()}) + "\n")
    return result


def partial(
    name: str, stream: StreamResult, recorder: Recorder, extra: dict[str, Any]
) -> FaultResult:
    """The figures of a scenario that failed part-way, marked ``outcome=FAILED``."""
    return FaultResult(
        name,
        published=len(stream.confirmed),
        handled=recorder.handled,
        duplicates=recorder.duplicates,
        recovery_s=None,
        extra={"outcome": "FAILED", "publish_failed": len(stream.failed), **extra},
    )


# -- the consumer side -----------------------------------------------------------------------


class Recorder:
    """What the handlers saw: how often each sequence number was handled, and when."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        #: When each event was handled the first time.
        self.first_handled: dict[int, float] = {}
        self._times: list[float] = []
        self.changed = asyncio.Event()

    def record(self, seq: int) -> None:
        now = time.monotonic()
        self.counts[seq] += 1
        self.first_handled.setdefault(seq, now)
        self._times.append(now)
        self.changed.set()

    @property
    def handled(self) -> int:
        """Distinct events handled."""
        return len(self.counts)

    @property
    def duplicates(self) -> int:
        """Handlings beyond the first, over all events."""
        return sum(count - 1 for count in self.counts.values())

    def missing(self, seqs: Iterable[int]) -> list[int]:
        return sorted(seq for seq in seqs if seq not in self.counts)

    def first_after(self, moment: float) -> float | None:
        """When the first handling after ``moment`` started."""
        index = bisect.bisect_right(self._times, moment)
        return self._times[index] if index < len(self._times) else None

    async def wait_for(self, seqs: Iterable[int], timeout: float, what: str = "") -> None:  # noqa: ASYNC109
        """Until every one of ``seqs`` was handled; AssertionError names the missing ones."""
        wanted = set(seqs)
        try:
            async with asyncio.timeout(timeout):
                while not wanted <= self.counts.keys():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            missing = self.missing(wanted)
            raise AssertionError(
                f"{what or 'events'}: {len(missing)} of {len(wanted)} never handled within "
                f"{timeout} s (first missing: {missing[:10]})"
            ) from None

    async def wait_count(self, count: int, timeout: float) -> None:  # noqa: ASYNC109
        """Until ``count`` distinct events were handled."""
        try:
            async with asyncio.timeout(timeout):
                while self.handled < count:
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"only {self.handled} events handled within {timeout} s, waited for {count}"
            ) from None


# -- the producer side -----------------------------------------------------------------------


@dataclass
class StreamResult:
    """Per sequence number: when its publish started, returned, or what it raised."""

    started: dict[int, float] = field(default_factory=dict)
    confirmed: dict[int, float] = field(default_factory=dict)
    failed: dict[int, BaseException] = field(default_factory=dict)

    def confirmed_between(self, start: float, end: float = float("inf")) -> list[int]:
        return [seq for seq, at in self.confirmed.items() if start <= at <= end]

    def failures(self) -> str:
        kinds = Counter(f"{type(exc).__name__}: {exc}" for exc in self.failed.values())
        return "; ".join(f"{count} x {kind}" for kind, count in kinds.most_common(5))


async def publish_stream(
    send: Callable[[int], Awaitable[Any]],
    seqs: Sequence[int],
    *,
    rate: float | None = None,
    concurrency: int = 16,
    result: StreamResult | None = None,
) -> StreamResult:
    """Publish every ``seq`` through ``send``, ``concurrency`` at a time, about ``rate`` a second.

    A publish that raises is recorded, not re-raised: the scenario decides what it means.
    """
    result = result or StreamResult()
    numbered = iter(enumerate(seqs))
    start = time.monotonic()

    async def worker() -> None:
        for index, seq in numbered:
            if rate:
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            result.started[seq] = time.monotonic()
            try:
                await send(seq)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                result.failed[seq] = exc
            else:
                result.confirmed[seq] = time.monotonic()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


def assert_fails_loudly(result: StreamResult) -> None:
    """Publishes may fail only with eventrabbit's PublishError (never a leaked aiormq error)."""
    foreign = {seq: exc for seq, exc in result.failed.items() if not isinstance(exc, PublishError)}
    assert not foreign, f"publishes raised something else than PublishError: {foreign!r}"


# -- watching the consumer's connection -------------------------------------------------------


class ConnectionWatch:
    """Samples ``handle.connection_count`` every few ms; records when it changed."""

    def __init__(self, handle: Handle, interval: float = 0.005) -> None:
        self.handle = handle
        self.interval = interval
        self.changes: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None
        #: The ``consume`` task whose connection this is: waits fail at once if it ended.
        self.consume: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = -1
        while True:
            count = self.handle.connection_count
            if count != last:
                self.changes.append((time.monotonic(), count))
                last = count
            await asyncio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ConnectionWatch]:
        self._task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def lost_after(self, moment: float) -> float | None:
        """The first time after ``moment`` the consumer had no open connection."""
        return next((at for at, count in self.changes if at >= moment and count == 0), None)

    def back_after(self, moment: float) -> float | None:
        """The first time after ``moment`` a lost consumer connection was open again."""
        lost = self.lost_after(moment)
        if lost is None:
            return None
        return next((at for at, count in self.changes if at > lost and count > 0), None)

    @property
    def losses(self) -> int:
        return sum(1 for _, count in self.changes[1:] if count == 0)

    async def wait_lost(self, moment: float, timeout: float) -> float:  # noqa: ASYNC109
        return await self._poll(lambda: self.lost_after(moment), timeout, "connection lost")

    async def wait_back(self, moment: float, timeout: float) -> float:  # noqa: ASYNC109
        return await self._poll(lambda: self.back_after(moment), timeout, "reconnected")

    async def _poll(
        self,
        probe: Callable[[], float | None],
        timeout: float,  # noqa: ASYNC109
        what: str,
    ) -> float:
        deadline = time.monotonic() + timeout
        while (value := probe()) is None:
            if self.consume is not None and self.consume.done():
                raise AssertionError(
                    f"consume ended while waiting for: {what}: {ended(self.consume)}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: consumer {what}")
            await asyncio.sleep(0.01)
        return value


def ended(task: asyncio.Task[Any]) -> str:
    """How a task that should run forever ended: for assertion messages."""
    if not task.done():
        return "still running"
    if task.cancelled():
        # Not by the test: a CancelledError escaped from inside (e.g. from aiormq).
        try:
            task.result()
        except asyncio.CancelledError as exc:
            where = traceback.extract_tb(exc.__traceback__)
            frames = " <- ".join(
                f"{Path(frame.filename).name}:{frame.lineno}" for frame in reversed(where[-6:])
            )
            return f"it ended cancelled (a CancelledError escaped it, raised at {frames})"
    exc = task.exception()
    return f"it raised {type(exc).__name__}: {exc}" if exc else "it returned"


# -- probing queues (an independent raw client on the private node) ---------------------------


class Probe:
    """A raw aiormq connection to a private node, for looking at queues."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: aiormq.abc.AbstractConnection | None = None

    async def _open(self) -> aiormq.abc.AbstractConnection:
        if self._connection is None or self._connection.is_closed:
            async with asyncio.timeout(10):
                self._connection = await aiormq.connect(self.url)
        return self._connection

    async def queue(self, name: str) -> tuple[int, int] | None:
        """``(ready messages, consumers)`` of the queue, ``None`` if it does not exist."""
        connection = await self._open()
        channel = await connection.channel(publisher_confirms=False)
        try:
            ok = await channel.queue_declare(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        finally:
            if not channel.is_closed:
                await channel.close()
        return ok.message_count or 0, ok.consumer_count or 0

    async def wait_consumed(self, name: str, timeout: float) -> float:  # noqa: ASYNC109
        """Until the queue exists with a consumer again; the time it was first seen so."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError, OSError):
                info = await self.queue(name)
                if info is not None and info[1] > 0:
                    return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError(f"queue {name!r} had no consumer again within {timeout} s")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()


def seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- services under test --------------------------------------------------------------------

#: Consumers retry fast, so recovery times measure eventrabbit and the broker, not a long sleep.
FAST_RECONNECT = ReconnectConfig(initial_delay=0.1, max_delay=1.0)
#: Long enough for every outage the scenarios cause.
PUBLISH_TIMEOUT = 30.0


def consumer_service(
    url: str | Sequence[str],
    recorder: Recorder,
    *,
    retry: RetryConfig | None = None,
    queue_config: QueueConfig | None = None,
) -> tuple[Events, Handle]:
    """A service whose handler of ``ACTION`` records ``seq``."""
    events, handle = build_event_dependencies(
        url,
        idle_timeout=None,
        retry_config=retry,
        queue_config=queue_config or QueueConfig(prefetch_count=50),
        publish_timeout=PUBLISH_TIMEOUT,
        reconnect=FAST_RECONNECT,
    )

    @events.consumer(ACTION)
    async def tick(seq: int) -> None:
        recorder.record(seq)

    return events, handle


def producer_service(url: str | Sequence[str]) -> tuple[Events, Handle]:
    """A service that only publishes (its own connection, the long publish deadline)."""
    return build_event_dependencies(
        url, idle_timeout=None, publish_timeout=PUBLISH_TIMEOUT, reconnect=FAST_RECONNECT
    )


def sender(events: Events, exchange: str, queue: str) -> Callable[[int], Awaitable[str]]:
    """Publishes ``{"seq": seq}`` as ``ACTION`` to ``exchange`` with the queue as routing key."""

    async def send(seq: int) -> str:
        return await events.publish(exchange, ACTION, {"seq": seq}, key=queue)

    return send


def work_channel(
    url: str | Sequence[str], queue: str, exchange: str, queue_config: QueueConfig | None = None
) -> ConsumeChannel:
    """The queue, bound to a direct exchange that the consumer declares."""
    return ConsumeChannel(url, queue, exchange, ExchangeType.DIRECT, queue_config=queue_config)


@contextlib.asynccontextmanager
async def consuming(handle: Handle, channel: ConsumeChannel) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``handle.consume(channel)`` in a task; close the handle (bounded) on the way out."""
    task = asyncio.create_task(handle.consume(channel))
    try:
        yield task
    finally:
        async with asyncio.timeout(30):
            await handle.close(timeout=5)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the test asserts on the task itself


async def close_services(*handles: Handle) -> None:
    for one in handles:
        async with asyncio.timeout(30):
            await one.close(timeout=5)
