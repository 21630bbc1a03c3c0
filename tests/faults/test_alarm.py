"""A resource alarm on a private node: the broker blocks publishers (``connection.blocked``).

A publish during the alarm must end in success or a raised :class:`PublishTimeout` at its
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
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from eventrabbit import (
    ConnectionEvent,
    ConnectionRole,
    ConnectionState,
    Events,
    Hooks,
    PublishTimeout,
    build_event_dependencies,
)
from tests.faults.rabbit_node import RabbitNode
from tests.faults.support import (
    ACTION,
    Recorder,
    close_services,
    ended,
    figures,
    report,
    scenario,
    seconds,
)
from tests.helpers import eventually, named

pytestmark = pytest.mark.slow

#: The deadline of the call that must time out, and of the one that outlasts the alarm.
SHORT_TIMEOUT = 2.0
LONG_TIMEOUT = 20.0
#: RabbitMQ's default watermark (the private nodes' config does not set one).
DEFAULT_WATERMARK = "0.4"
#: What aiormq logs when the broker sends ``connection.blocked``.
BLOCKED_LOG = "was blocked by"


async def _alarms(node: RabbitNode) -> str:
    return await node.actl("eval", "rabbit_alarm:get_alarms().")


async def _wait_alarm(node: RabbitNode, *, on: bool) -> None:
    """Until the node reports its memory alarm set (``on``) or cleared (no event: polled)."""

    async def in_state() -> bool:
        return ("resource_limit,memory" in await _alarms(node)) == on

    await eventually(in_state, what=f"memory alarm {'set' if on else 'cleared'}", timeout=15)


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


class _Blocked(logging.Handler):
    """Sets ``event`` when aiormq logs that the connection named ``name`` was blocked."""

    def __init__(self, name: str, event: asyncio.Event) -> None:
        super().__init__(logging.WARNING)
        self.name_in_url = f"name={name}"
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if BLOCKED_LOG in message and self.name_in_url in message:
            self.event.set()


@contextlib.contextmanager
def blocked_notice(name: str) -> Iterator[asyncio.Event]:
    """An event set when the broker has blocked the connection named ``name``."""
    event = asyncio.Event()
    handler = _Blocked(name, event)
    logger = logging.getLogger("aiormq")
    logger.addHandler(handler)
    try:
        yield event
    finally:
        logger.removeHandler(handler)


@pytest.mark.timeout(120)
async def test_memory_alarm_blocks_publishers(
    node: RabbitNode, caplog: pytest.LogCaptureFixture
) -> None:
    """During a memory alarm: (a) a call with a 2 s deadline raises PublishTimeout at its
    deadline; (b) a call with a 20 s deadline, started during the alarm on a connection opened
    during it, is held by the broker and returns once the alarm is cleared. Every call that
    returned normally is delivered.
    """
    caplog.set_level(logging.WARNING, logger="aiormq")
    url = node.url()
    long_url, long_name = named(url, "alarm-long")
    short, short_handle = build_event_dependencies(
        url, idle_timeout=None, publish_timeout=SHORT_TIMEOUT
    )
    long, long_handle = build_event_dependencies(
        long_url, idle_timeout=None, publish_timeout=LONG_TIMEOUT
    )
    returned: list[int] = []
    extra: dict[str, Any] = {}
    recorder = Recorder()
    try:
        async with scenario("alarm", url, recorder=recorder) as s:

            def emitter(events: Events) -> Callable[[int], Awaitable[dict[str, int]]]:
                @events.producer(s.exchange, ACTION, key=s.queue)
                async def emit(seq: int) -> dict[str, int]:
                    return {"seq": seq}

                return emit

            emit_short, emit_long = emitter(short), emitter(long)
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
                assert timed_out_s >= SHORT_TIMEOUT - 0.05, "it did not wait its deadline out"

                # (b) Held by the broker (the known point: it told the connection so), then
                # the alarm is cleared while the call still has time.
                started = time.monotonic()
                with blocked_notice(long_name) as blocked_now:
                    blocked = asyncio.ensure_future(emit_long(2))
                    await asyncio.wait_for(blocked_now.wait(), timeout=LONG_TIMEOUT)
                assert not blocked.done(), f"the publish went through the alarm: {ended(blocked)}"
                clearing = time.monotonic()
                await clear_memory_alarm(node)
                took, raised = await timed(blocked, guard=LONG_TIMEOUT + 10, started=started)
                extra["blocked_then_succeeded_s"] = took
                extra["returned_after_clear_s"] = started + took - clearing
                assert raised is None, f"the blocked publish raised after {took:.2f} s: {raised!r}"
                returned.append(2)
            finally:
                await clear_memory_alarm(node)  # idempotent; the node is healthy again

            # A sentinel behind the timed-out event on its connection: once it is handled, the
            # timed-out one has landed too if the broker took it (at least once, never
            # "returned but lost"; whether it landed is only reported).
            await emit_short(3)
            returned.append(3)
            await recorder.wait_for(returned, timeout=30, what="calls that returned")
    except BaseException:
        report(
            figures(
                "resource-alarm",
                recorder,
                published=len(returned),
                recovery_s=None,
                extra={"outcome": "FAILED", **extra},
            )
        )
        raise
    finally:
        await close_services(short_handle, long_handle)

    notices = sum(BLOCKED_LOG in record.getMessage() for record in caplog.records)
    report(
        figures(
            "resource-alarm",
            recorder,
            published=len(returned),
            recovery_s=seconds(extra["returned_after_clear_s"]),
            extra={
                **extra,
                "delivered": f"{len(returned) - len(recorder.missing(returned))}/{len(returned)}",
                "timed_out_event_delivered": 1 in recorder.counts,
                "blocked_notices": notices,
            },
        )
    )
    assert not recorder.missing(returned)


class Told(Hooks):
    """Records the connection events of the publisher it is given to."""

    def __init__(self) -> None:
        self.events: list[ConnectionEvent] = []
        self.changed = asyncio.Event()

    def connection_changed(self, event: ConnectionEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def until(self, state: ConnectionState) -> ConnectionEvent:
        """The first event of ``state`` (waits for it: each new event wakes the wait)."""
        while True:
            for event in self.events:
                if event.state is state:
                    return event
            self.changed.clear()
            await self.changed.wait()


@pytest.mark.timeout(120)
async def test_hooks_are_told_when_the_broker_blocks_and_unblocks_a_publisher(
    node: RabbitNode,
) -> None:
    told = Told()
    events, handle = build_event_dependencies(
        node.url(), idle_timeout=None, publish_timeout=LONG_TIMEOUT, hooks=[told]
    )
    try:
        async with scenario("alarm-hooks", node.url()) as s:
            await events.publish(s.exchange, ACTION, {"seq": 0}, key=s.queue)
            try:
                await raise_memory_alarm(node)
                held = asyncio.ensure_future(
                    events.publish(s.exchange, ACTION, {"seq": 1}, key=s.queue)
                )
                blocked = await asyncio.wait_for(told.until(ConnectionState.BLOCKED), 30)
                assert not held.done()
                await clear_memory_alarm(node)
                unblocked = await asyncio.wait_for(told.until(ConnectionState.UNBLOCKED), 30)
                await asyncio.wait_for(held, LONG_TIMEOUT)
            finally:
                await clear_memory_alarm(node)
    finally:
        await close_services(handle)
    assert (blocked.role, blocked.queue) == (ConnectionRole.PUBLISHER, None)
    assert blocked.reason  # the broker's words, e.g. "low on memory"
    assert unblocked.reason is None
    states = [event.state for event in told.events]
    assert states == [
        ConnectionState.CONNECTED,
        ConnectionState.BLOCKED,
        ConnectionState.UNBLOCKED,
    ]
