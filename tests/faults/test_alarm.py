"""A resource alarm on a private node: the broker blocks publishers (``connection.blocked``).

A publish during the alarm must end in success or a raised :class:`PublishTimeout` within its
``publish_timeout`` — never hang — and a call that returned normally must be delivered. The
alarm is a memory alarm (``set_vm_memory_high_watermark 0.000001``; RabbitMQ 3.10 also accepts
``absolute 1``), raised and cleared at once by ``rabbitmqctl``. Declaring, consuming and acking
still work during it: only connections that publish are blocked.

The module has a node of its own, so a watermark a failed test could not restore never
reaches the other scenarios.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from eventrabbit import Events, PublishTimeout, build_event_dependencies
from tests.faults.rabbit_node import RabbitNode
from tests.faults.support import (
    ACTION,
    FaultResult,
    Probe,
    Recorder,
    close_services,
    consumer_service,
    consuming,
    ended,
    report,
    seconds,
    work_channel,
)
from tests.helpers import unique

pytestmark = pytest.mark.slow

#: The deadline of the call that must time out, and of the one that outlasts the alarm.
SHORT_TIMEOUT = 2.0
LONG_TIMEOUT = 20.0
#: How long the alarm stays on while the long call waits.
ALARM_HOLD_S = 2.0
#: RabbitMQ's default watermark (the private nodes' config does not set one).
DEFAULT_WATERMARK = "0.4"
#: What aiormq logs when the broker sends ``connection.blocked``.
BLOCKED_LOG = "was blocked by"


async def _alarms(node: RabbitNode) -> str:
    return await node.actl("eval", "rabbit_alarm:get_alarms().")


async def _wait_alarm(node: RabbitNode, *, on: bool, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    """Until the node reports its memory alarm set (``on``) or cleared."""
    deadline = time.monotonic() + timeout
    while True:
        alarms = await _alarms(node)
        if ("resource_limit,memory" in alarms) == on:
            return
        if time.monotonic() > deadline:
            state = "set" if on else "cleared"
            raise AssertionError(f"memory alarm not {state} within {timeout} s: {alarms.strip()}")
        await asyncio.sleep(0.1)


async def raise_memory_alarm(node: RabbitNode) -> None:
    await node.actl("set_vm_memory_high_watermark", "0.000001")
    await _wait_alarm(node, on=True)


async def clear_memory_alarm(node: RabbitNode) -> None:
    await node.actl("set_vm_memory_high_watermark", DEFAULT_WATERMARK)
    await _wait_alarm(node, on=False)


async def timed(
    call: Awaitable[Any], guard: float, started: float | None = None
) -> tuple[float, BaseException | None]:
    """Await ``call``: (seconds since ``started`` — default now — and what it raised).

    AssertionError if it still runs ``guard`` seconds after ``started``.

    The guard is a task wait, not ``asyncio.timeout``: its TimeoutError could not be told apart
    from a PublishTimeout (a TimeoutError too).
    """
    started = time.monotonic() if started is None else started
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=max(started + guard - time.monotonic(), 0))
    took = time.monotonic() - started
    if not done:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise AssertionError(f"the publish hung: still running after {took:.1f} s")
    return took, task.exception()


@pytest.mark.timeout(120)
async def test_memory_alarm_blocks_publishers(
    node: RabbitNode, caplog: pytest.LogCaptureFixture
) -> None:
    """During a memory alarm: (a) a call with a 2 s deadline raises PublishTimeout in about
    2 s; (b) a call with a 20 s deadline, started during the alarm on a connection opened
    during it, returns once the alarm is cleared 2 s later. Every call that returned normally
    is delivered.
    """
    caplog.set_level(logging.WARNING, logger="aiormq")
    url = node.url()
    queue, exchange = unique("alarm"), unique("alarm.ex")
    recorder = Recorder()
    _, handle = consumer_service(url, recorder)
    short, short_handle = build_event_dependencies(
        url, idle_timeout=None, publish_timeout=SHORT_TIMEOUT
    )
    long, long_handle = build_event_dependencies(
        url, idle_timeout=None, publish_timeout=LONG_TIMEOUT
    )

    def emitter(events: Events) -> Callable[[int], Awaitable[dict[str, int]]]:
        @events.producer(exchange, ACTION, key=queue)
        async def emit(seq: int) -> dict[str, int]:
            return {"seq": seq}

        return emit

    emit_short, emit_long = emitter(short), emitter(long)
    probe = Probe(url)
    returned: list[int] = []
    extra: dict[str, Any] = {}
    try:
        async with consuming(handle, work_channel(url, queue, exchange)) as consume:
            await probe.wait_consumed(queue, timeout=20)
            # The short publisher's connection is open before the alarm; the long one's is
            # opened during it.
            await emit_short(0)
            returned.append(0)
            assert not long_handle.events.publisher.connected
            try:
                await raise_memory_alarm(node)

                # (a) The deadline runs out while the broker holds the publish.
                timed_out_s, raised = await timed(emit_short(1), guard=SHORT_TIMEOUT + 10)
                extra["timed_out_s"] = timed_out_s
                assert isinstance(raised, PublishTimeout), (
                    f"expected PublishTimeout after {timed_out_s:.2f} s, got {raised!r}"
                )
                assert timed_out_s < SHORT_TIMEOUT + 2, (
                    f"PublishTimeout after {timed_out_s:.2f} s, deadline {SHORT_TIMEOUT} s"
                )

                # (b) The alarm is cleared while the call still has time.
                started = time.monotonic()
                blocked = asyncio.ensure_future(emit_long(2))
                await asyncio.sleep(ALARM_HOLD_S)
                assert not blocked.done(), (
                    f"the publish was not blocked by the alarm: {ended(blocked)}"
                )
                clearing = time.monotonic()
                await clear_memory_alarm(node)
                took, raised = await timed(blocked, guard=LONG_TIMEOUT + 10, started=started)
                extra["blocked_then_succeeded_s"] = took
                extra["returned_after_clear_s"] = started + took - clearing
                assert raised is None, f"the blocked publish raised after {took:.2f} s: {raised!r}"
                assert started + took > clearing, "the publish returned before the alarm cleared"
                returned.append(2)
            finally:
                await clear_memory_alarm(node)  # idempotent; the node is healthy again

            await recorder.wait_for(returned, timeout=30, what="calls that returned")
            # The timed-out event may land too (the broker read it once unblocked): at least
            # once, never "returned but lost". Only reported.
            with contextlib.suppress(AssertionError):
                await recorder.wait_for([1], timeout=5)
            assert not consume.done(), f"consume ended: {ended(consume)}"
    except BaseException:
        report(
            FaultResult(
                "resource-alarm",
                published=len(returned),
                handled=recorder.handled,
                duplicates=recorder.duplicates,
                recovery_s=None,
                extra={"outcome": "FAILED", **extra},
            )
        )
        raise
    finally:
        await probe.close()
        await close_services(short_handle, long_handle)

    notices = sum(BLOCKED_LOG in record.getMessage() for record in caplog.records)
    report(
        FaultResult(
            "resource-alarm",
            published=len(returned),
            handled=recorder.handled,
            duplicates=recorder.duplicates,
            recovery_s=seconds(extra["returned_after_clear_s"]),
            extra={
                **extra,
                "delivered": f"{len(returned) - len(recorder.missing(returned))}/{len(returned)}",
                "timed_out_event_delivered": 1 in recorder.counts,
                "blocked_notices": notices,
            },
        )
    )
    assert notices >= 1, "aiormq logged no connection.blocked: was the alarm in effect?"
    assert not recorder.missing(returned)
