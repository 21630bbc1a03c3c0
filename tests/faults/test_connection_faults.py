"""Connection faults on a private node: broker-side close, app restart, an outage under a
producer loop, a frozen broker (heartbeats), and 100 reconnects without a leak.

Each scenario streams thousands of confirmed events through eventrabbit while the fault hits,
and asserts that every event whose publish returned was handled at least once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiormq
import pytest

from eventrabbit import Handle
from tests.faults.rabbit_node import ErlangShell, RabbitNode
from tests.faults.support import (
    ACTION,
    ConnectionWatch,
    FaultResult,
    Probe,
    Recorder,
    StreamResult,
    assert_fails_loudly,
    close_services,
    consumer_service,
    consuming,
    ended,
    partial,
    producer_service,
    publish_stream,
    report,
    seconds,
    sender,
    work_channel,
)
from tests.helpers import unique

pytestmark = pytest.mark.slow


async def stream_through_fault(
    node: RabbitNode,
    name: str,
    fault: Callable[[ConnectionWatch], Awaitable[dict[str, Any] | None]],
    *,
    total: int = 3000,
    rate: float = 400.0,
    url: str | None = None,
) -> tuple[FaultResult, float, float]:
    """Stream ``total`` events; when a quarter is handled, run ``fault``; check all arrive.

    ``fault`` gets the watch on the consumer's connection and may return figures of its own.
    A scenario that fails still reports what it saw, marked ``outcome=FAILED``.

    :returns: the figures, when the consumer lost its connection, and when it was back.
    """
    url = url or node.url()
    queue, exchange = unique(name), unique(f"{name}.ex")
    recorder = Recorder()
    _, handle = consumer_service(url, recorder)
    producer, producer_handle = producer_service(url)
    watch = ConnectionWatch(handle)
    probe = Probe(node.url())
    result = StreamResult()
    extra: dict[str, Any] = {}
    try:
        async with (
            consuming(handle, work_channel(url, queue, exchange)) as consume,
            watch.running(),
        ):
            watch.consume = consume
            await probe.wait_consumed(queue, timeout=20)
            send = sender(producer, exchange, queue)
            stream = asyncio.create_task(
                publish_stream(send, range(total), rate=rate, result=result)
            )
            await recorder.wait_count(total // 4, timeout=30)
            fault_started = time.monotonic()
            extra.update(await fault(watch) or {})
            lost = await watch.wait_lost(fault_started, timeout=30)
            back = await watch.wait_back(fault_started, timeout=60)
            async with asyncio.timeout(90):
                await stream
            await recorder.wait_for(result.confirmed, timeout=60, what=f"{name}: confirmed")
            assert not consume.done(), f"consume ended: {ended(consume)}"
    except BaseException:
        report(partial(name, result, recorder, extra))
        raise
    finally:
        await probe.close()
        await close_services(producer_handle)
    first = recorder.first_after(back)
    figures = report(
        FaultResult(
            name,
            published=len(result.confirmed),
            handled=recorder.handled,
            duplicates=recorder.duplicates,
            recovery_s=seconds(first - lost) if first else None,
            extra={
                "publish_failed": len(result.failed),
                "reconnect_s": back - lost,
                "consumer_losses": watch.losses,
                **extra,
            },
        )
    )
    assert_fails_loudly(result)
    assert not result.failed, f"publishes failed within the deadline: {result.failures()}"
    # The fault hit mid-stream: events were confirmed both before and after it.
    assert result.confirmed_between(0, lost), "nothing was published before the fault"
    assert result.confirmed_between(back), "nothing was published after the fault"
    return figures, lost, back


@pytest.mark.timeout(120)
async def test_close_all_connections_mid_stream(node: RabbitNode) -> None:
    """``rabbitmqctl close_all_connections``: consumer and publisher both come back."""

    async def close_all(_: ConnectionWatch) -> None:
        await node.close_all_connections()
        return None

    await stream_through_fault(node, "close-all-connections", close_all)


@pytest.mark.timeout(150)
async def test_stop_app_start_app_mid_stream(node: RabbitNode) -> None:
    """``stop_app`` then ``start_app``: nothing that was confirmed is lost."""

    async def restart_app(_: ConnectionWatch) -> None:
        await node.stop_app()
        await node.start_app()
        return None

    await stream_through_fault(node, "stop-app-start-app", restart_app)


@pytest.mark.timeout(150)
async def test_producer_loop_across_outage(node: RabbitNode) -> None:
    """A producer loop spans a 5 s outage: every publish that returned was delivered.

    ``publish_timeout`` (30 s) outlasts the outage, so the loop's calls wait for the broker
    instead of failing; a call that raised anyway is counted and reported.
    """
    total, url = 3000, node.url()
    queue, exchange = unique("outage"), unique("outage.ex")
    recorder = Recorder()
    _, handle = consumer_service(url, recorder)
    producer, producer_handle = producer_service(url)

    @producer.producer(exchange, ACTION, key=queue)
    async def emit(seq: int) -> dict[str, int]:
        return {"seq": seq}

    outage: dict[str, float] = {}

    async def outage_of_five_seconds() -> None:
        await recorder.wait_count(total // 3, timeout=30)
        outage["start"] = time.monotonic()
        await node.stop_app()
        outage["down"] = time.monotonic()
        await asyncio.sleep(5)
        await node.start_app()
        outage["up"] = time.monotonic()

    probe = Probe(url)
    watch = ConnectionWatch(handle)
    try:
        async with (
            consuming(handle, work_channel(url, queue, exchange)) as consume,
            watch.running(),
        ):
            watch.consume = consume
            await probe.wait_consumed(queue, timeout=20)
            fault = asyncio.create_task(outage_of_five_seconds())
            # The loop: a few calls in flight at a time, about 300 a second when it can.
            result = await publish_stream(emit, range(total), rate=300, concurrency=4)
            await fault
            await recorder.wait_for(result.confirmed, timeout=60, what="confirmed events")
            assert not consume.done(), f"consume ended: {ended(consume)}"
    finally:
        await probe.close()
        await close_services(producer_handle)

    # The longest a call waited: one that started before the broker came back.
    waited = max(
        (
            result.confirmed[seq] - started
            for seq, started in result.started.items()
            if seq in result.confirmed
        ),
        default=0.0,
    )
    lost = watch.lost_after(outage["start"])
    back = watch.back_after(outage["start"])
    first = recorder.first_after(back) if back else None
    report(
        FaultResult(
            "producer-loop-5s-outage",
            published=len(result.confirmed),
            handled=recorder.handled,
            duplicates=recorder.duplicates,
            recovery_s=seconds(first - lost) if first and lost else None,
            extra={
                "publish_raised": len(result.failed),
                "confirmed_not_delivered": len(recorder.missing(result.confirmed)),
                "outage_s": outage["up"] - outage["down"],
                "longest_call_s": waited,
            },
        )
    )
    assert_fails_loudly(result)
    assert not recorder.missing(result.confirmed)  # zero "confirmed but never delivered"
    # The loop really spanned the outage: calls were waiting while the broker was down.
    spanning = [
        seq
        for seq, started in result.started.items()
        if started < outage["up"] and result.confirmed.get(seq, 0) > outage["up"]
    ]
    assert spanning, "no publish waited across the outage"
    assert not result.failed, f"publishes raised within a 30 s deadline: {result.failures()}"


@pytest.mark.timeout(150)
async def test_heartbeat_notices_a_frozen_broker(node: RabbitNode) -> None:
    """``?heartbeat=2``: a consumer notices a broker frozen with SIGSTOP and reconnects.

    aiormq takes ``heartbeat`` from the URL's query and sends it in tune-ok; by default it
    declares the peer dead after ``3 * (heartbeat + 1)`` s without a frame (9 s for 2).
    eventrabbit's connections use one ``heartbeat + 1`` instead, so a frozen broker is noticed
    within two heartbeat intervals (4 s); the assertion allows one more second for a busy
    machine's event loop.
    """
    heartbeat = 2
    url = node.url(heartbeat=heartbeat)
    grace = (heartbeat + 1) * getattr(aiormq.Connection, "HEARTBEAT_GRACE_MULTIPLIER", 3)

    async def freeze(watch: ConnectionWatch) -> dict[str, Any]:
        paused = time.monotonic()
        node.pause()
        try:
            # Frozen until the consumer notices (bounded), then thawed to let it reconnect.
            noticed = await watch.wait_lost(paused, timeout=40)
        finally:
            node.resume()
        return {
            "detection_s": noticed - paused,
            "two_intervals_s": float(2 * heartbeat),
            "within_two_intervals": noticed - paused <= 2 * heartbeat,
            "aiormq_grace_s": float(grace),
        }

    figures, _, _ = await stream_through_fault(
        node, "heartbeat-sigstop", freeze, total=2000, rate=200, url=url
    )
    detection = figures.extra["detection_s"]
    assert detection <= 2 * heartbeat + 1, f"a frozen broker went unnoticed for {detection:.1f} s"


class _ProductionLog(logging.Handler):
    """Formats each record and drops it, as a service's log handler does.

    pytest's log capture keeps every record, and a record keeps its arguments and its
    exception's traceback (with the frames that held the dead connection) alive: 100
    reconnects would look like a leak of the test runner's making.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.last: collections.deque[str] = collections.deque(maxlen=5)

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.last.append(self.format(record).splitlines()[0])


@contextlib.contextmanager
def _production_logging() -> Iterator[_ProductionLog]:
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = _ProductionLog()
    root.handlers = [handler]
    try:
        yield handler
    finally:
        root.handlers = saved


def _live(kind: type) -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, kind))


def _size(obj: object, *path: str) -> int | str:
    """``len()`` of ``obj.<path>``; "n/a" if the attribute is not there (internals move)."""
    for name in path:
        if not hasattr(obj, name):
            return "n/a"
        obj = getattr(obj, name)
    return len(obj)  # type: ignore[arg-type]


def _internals(handle: Handle) -> dict[str, int | str]:
    """What a reconnect could leave behind in the handle, its publisher and aiormq."""
    gc.collect()
    pool = getattr(handle, "_pool", None)
    shared = getattr(pool, "_shared", {})
    connections = [s.connection for s in shared.values() if s.connection is not None]
    events = getattr(handle, "events", None)
    publisher = getattr(events, "publisher", None) or getattr(handle, "publisher", None)
    return {
        "asyncio_tasks": len(asyncio.all_tasks()),
        "handle_runs": len(handle.status()),
        "pool_entries": _size(pool, "_shared"),
        "pool_connections": len(connections),
        "open_channels": sum(len(c.channels) for c in connections if not c.is_closed),
        "publisher_closing": _size(publisher, "_closing"),
        "live_connections": _live(aiormq.Connection),
        "live_channels": _live(aiormq.Channel),
        "gc_objects": len(gc.get_objects()),
    }


@pytest.mark.timeout(200)
async def test_no_leak_across_100_reconnects(node: RabbitNode) -> None:
    """100 broker-side closes, each waited out: no growth in tasks or handle internals.

    The closes go through one hidden Erlang node (an RPC each) rather than 100 runs of
    ``rabbitmqctl``, which boots a VM per call.
    """
    url = node.url()
    queue, exchange = unique("leak"), unique("leak.ex")
    recorder = Recorder()
    _, handle = consumer_service(url, recorder)
    producer, producer_handle = producer_service(url)
    send = sender(producer, exchange, queue)
    watch = ConnectionWatch(handle)
    probe = Probe(url)
    seq = 0
    recoveries: list[float] = []

    async def reconnect_once() -> None:
        nonlocal seq
        moment = time.monotonic()
        await shell.close_all_connections(node)
        lost = await watch.wait_lost(moment, timeout=10)
        await watch.wait_back(moment, timeout=10)
        seq += 1
        async with asyncio.timeout(15):
            await send(seq)  # the publisher has to come back too
        await recorder.wait_for([seq], timeout=10, what=f"event after reconnect {seq}")
        recoveries.append(recorder.first_after(lost) - lost)  # type: ignore[operator]

    try:
        async with (
            ErlangShell(node.cluster) as shell,
            consuming(handle, work_channel(url, queue, exchange)) as consume,
            watch.running(),
        ):
            watch.consume = consume
            await probe.wait_consumed(queue, timeout=20)
            await probe.close()
            with _production_logging() as logged:
                for _ in range(5):  # warm-up: reach the steady state
                    await reconnect_once()
                before = _internals(handle)
                started = time.monotonic()
                for _ in range(100):
                    await reconnect_once()
                took = time.monotonic() - started
                after = _internals(handle)
            assert not consume.done(), f"consume ended: {ended(consume)}"
    finally:
        await probe.close()
        await close_services(producer_handle)
    report(
        FaultResult(
            "100-reconnects",
            published=seq,
            handled=recorder.handled,
            duplicates=recorder.duplicates,
            recovery_s=round(sum(recoveries[-100:]) / 100, 3),
            extra={
                "recovery_max_s": max(recoveries),
                "cycle_s": took / 100,
                "consumer_losses": watch.losses,
                "log_records": logged.count,
                **{f"{key}": f"{before[key]}->{after[key]}" for key in before},
            },
        )
    )
    assert watch.losses >= 105
    # Counters may wobble by a couple; a leak grows by one or more per reconnect (100+).
    slack = {"gc_objects": 60}
    grown = {
        key: (before[key], after[key])
        for key in before
        if isinstance(before[key], int)
        and isinstance(after[key], int)
        and after[key] > before[key] + slack.get(key, 2)
    }
    assert not grown, (
        f"grew over 100 reconnects (before, after): {grown}; last log lines: {list(logged.last)}"
    )
