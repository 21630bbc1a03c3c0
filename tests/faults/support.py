"""What the fault scenarios share: a handler's record, a paced publisher, a watch on the
consumer, a probe of queues, the services under test, and the figures each scenario reports.

Waiting follows the suite's rules (``tests/helpers.py``): a consumer with ``handle.ready``,
handled events through the :class:`Recorder`'s event, and what has no event (a consumer's
loss of its connection, a node's alarm) through ``eventually``.

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
    ConsumerStatus,
    Events,
    ExchangeType,
    Handle,
    PublishError,
    QueueConfig,
    ReconnectConfig,
    RetryConfig,
    build_event_dependencies,
)
from tests.helpers import eventually, unique

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


def figures(
    name: str,
    recorder: Recorder,
    *,
    published: int,
    recovery_s: float | None,
    extra: dict[str, Any] | None = None,
) -> FaultResult:
    """A scenario's figures: what it published, what its handlers saw, how fast it recovered."""
    return FaultResult(
        name, published, recorder.handled, recorder.duplicates, recovery_s, extra or {}
    )


def recovery(first: float | None, since: float) -> float | None:
    """Seconds from ``since`` to ``first`` (the first handling after a fault), if there was one."""
    return None if first is None else seconds(first - since)


def partial(
    name: str, stream: StreamResult, recorder: Recorder, extra: dict[str, Any]
) -> FaultResult:
    """The figures of a scenario that failed part-way, marked ``outcome=FAILED``."""
    return figures(
        name,
        recorder,
        published=len(stream.confirmed),
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


# -- watching the consumer -------------------------------------------------------------------


class ConsumerWatch:
    """When the ``consume`` of one channel lost its connection, and when it consumed again.

    A loss has no event: :meth:`arm` starts looking at ``handle.status()`` (the one polling
    primitive, every few ms) for the run to stop consuming or to have started again; the way
    back is ``handle.ready()``. Every wait fails at once if ``consume`` ended.
    """

    #: Seconds between looks for a loss: the resolution of the loss times reported.
    INTERVAL = 0.005

    def __init__(self, handle: Handle, channel: ConsumeChannel, consume: asyncio.Task[None]):
        self.handle = handle
        self.channel = channel
        self.consume = consume
        self._before = 0
        self._lost: asyncio.Task[float] | None = None

    def status(self) -> ConsumerStatus:
        found = [s for s in self.handle.status() if s.queue == self.channel.queue_name]
        if self.consume.done() or not found:
            raise AssertionError(f"consume ended: {ended(self.consume)}")
        return found[0]

    @property
    def reconnects(self) -> int:
        """How often the consumer started again so far."""
        return self.status().reconnects

    def arm(self) -> None:
        """Start looking for the next loss (call it before the fault)."""
        self.disarm()
        self._before = self.reconnects
        self._lost = asyncio.create_task(self._until_lost())

    def disarm(self) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.cancel()

    async def _until_lost(self) -> float:
        def lost() -> bool:
            status = self.status()
            return not status.consuming or status.reconnects > self._before

        await eventually(
            lost, what="the consumer lost its connection", timeout=3600, interval=self.INTERVAL
        )
        return time.monotonic()

    async def lost(self, timeout: float) -> float:  # noqa: ASYNC109
        """When the consumer was first seen without its connection, since :meth:`arm`."""
        assert self._lost is not None, "arm() the watch before the fault"
        done, _ = await asyncio.wait(
            {self._lost, self.consume}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if self._lost not in done:
            self.status()  # raises if consume ended
            raise AssertionError(f"not within {timeout} s: the consumer lost its connection")
        return self._lost.result()

    async def back(self, timeout: float) -> float:  # noqa: ASYNC109
        """When the consumer consumed again after the loss (``handle.ready``)."""
        await self.lost(timeout)
        await self.handle.ready(self.channel, timeout=timeout)
        back = time.monotonic()
        assert self.reconnects > self._before, "ready, but it never started again"
        return back


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


#: Seconds a consumer may take to start on a private node (a deadline, not a speed goal).
READY_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def consuming(handle: Handle, channel: ConsumeChannel) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``handle.consume(channel)`` in a task, ready once the block starts; close the handle
    (bounded) on the way out."""
    task = asyncio.create_task(handle.consume(channel))
    try:
        await handle.ready(channel, timeout=READY_TIMEOUT)
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


@dataclass
class Scenario:
    """What a scenario runs: a consumer of a fresh queue (bound to a direct exchange it
    declares), a producer publishing to it, a watch on the consumer and a probe of queues."""

    queue: str
    exchange: str
    channel: ConsumeChannel
    recorder: Recorder
    handle: Handle
    consume: asyncio.Task[None]
    watch: ConsumerWatch
    producer: Events
    probe: Probe

    @property
    def send(self) -> Callable[[int], Awaitable[str]]:
        """Publishes ``{"seq": seq}`` to the queue through the producer."""
        return sender(self.producer, self.exchange, self.queue)

    def still_consuming(self) -> None:
        assert not self.consume.done(), f"consume ended: {ended(self.consume)}"


@contextlib.asynccontextmanager
async def scenario(
    name: str,
    url: str | Sequence[str],
    *,
    producer_url: str | Sequence[str] | None = None,
    probe_url: str | None = None,
    queue_config: QueueConfig | None = None,
    service: tuple[Events, Handle] | None = None,
    recorder: Recorder | None = None,
) -> AsyncIterator[Scenario]:
    """Start a scenario's services on private nodes; the block runs once the consumer is ready.

    :param service: the consumer's ``events, handle`` (default: :func:`consumer_service`,
        recording into ``recorder``).
    :param probe_url: the node the probe looks at (default: the first of ``url``).
    On the way out: the consumer must still run; every service is closed (bounded).
    """
    recorder = recorder or Recorder()
    queue, exchange = unique(name), unique(f"{name}.ex")
    _, handle = service or consumer_service(url, recorder, queue_config=queue_config)
    producer, producer_handle = producer_service(producer_url or url)
    channel = work_channel(url, queue, exchange, queue_config)
    probe = Probe(probe_url or (url if isinstance(url, str) else url[0]))
    consume = asyncio.create_task(handle.consume(channel))
    watch = ConsumerWatch(handle, channel, consume)
    try:
        await handle.ready(channel, timeout=READY_TIMEOUT)
        running = Scenario(
            queue, exchange, channel, recorder, handle, consume, watch, producer, probe
        )
        yield running
        running.still_consuming()
    finally:
        watch.disarm()
        await probe.close()
        await close_services(handle, producer_handle)
        if consume.done() and not consume.cancelled():
            consume.exception()  # retrieved: the scenario asserts on it
