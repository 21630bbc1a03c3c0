"""No message or handler can stall a queue, loop, or stay unacked (issue "Poison-proof").

Each test feeds a consumer with a small prefetch the bad thing — as many of them as the
prefetch, so that one stuck delivery would stop the queue — followed by good messages, and
asserts the accounting invariant: every good message is handled exactly once, every bad one
ends in ``<queue>.dlq`` (or handled) and is never retried in a loop, the consumer never
reconnected because of a message, and after a graceful close nothing is left in the queue
(a delivery left unacked would have come back to it).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiormq.abc
import pytest
from pamqp import commands as spec
from pamqp.header import ContentHeader

from eventrabbit import Events, Handle, RetryConfig
from eventrabbit.common import ConsumeChannel, QueueConfig
from eventrabbit.copies import DROPPED_HEADER as DROPPED
from eventrabbit.failures import MAX_REASON_BYTES, MAX_RETRY_COUNT
from tests.conftest import Names, Services
from tests.helpers import collect, event, publish_raw, queue_depth

PREFETCH = 3
#: RabbitMQ's default (and the in-memory broker's) largest frame.
FRAME_MAX = 131072
Channel = aiormq.abc.AbstractChannel


@dataclass
class Service:
    """One consumer under test, its queue, and what its GOOD handler saw."""

    events: Events
    handle: Handle
    target: ConsumeChannel
    probe: Channel
    handled: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    @property
    def queue(self) -> str:
        return self.target.queue_name

    async def publish(self, body: bytes, **properties: Any) -> None:
        await publish_raw(self.probe, body, self.queue, **properties)

    async def good(self, count: int, prefix: str = "good") -> list[str]:
        """Publish ``count`` GOOD events and wait until each has been handled."""
        tokens = [f"{prefix}-{i}" for i in range(count)]
        self.expected += count
        self.arrived.clear()
        for token in tokens:
            await self.publish(event("GOOD", {"token": token}))
        async with asyncio.timeout(10):
            while len(self.handled) < self.expected:
                await self.arrived.wait()
                self.arrived.clear()
        return tokens

    async def dead_letters(self, count: int) -> list[aiormq.abc.DeliveredMessage]:
        return await collect(self.probe, self.queue + ".dlq", count)

    async def assert_accounted(self, good: list[str]) -> None:
        """The invariant: good ones once each, no reconnect, nothing left unacked."""
        assert sorted(self.handled) == sorted(good)
        [status] = self.handle.status()
        assert status.consuming
        assert status.reconnects == 0, status.last_error
        await self.handle.close()
        assert await queue_depth(self.probe, self.queue) == 0


@pytest.fixture
def build(
    services: Services, names: Names, amqp_channel: Channel, broker_url: str
) -> Callable[..., Awaitable[Service]]:
    """Make a service with a GOOD handler (and whatever the test registers) and consume."""

    async def make(
        register: Callable[[Events], None] | None = None,
        *,
        max_retries: int = 0,
        prefetch: int = PREFETCH,
    ) -> Service:
        events, handle = services.build(
            retry_config=RetryConfig(max_retries=max_retries, retry_delay_seconds=30),
            queue_config=QueueConfig(prefetch_count=prefetch, grace_timeout=1),
        )
        target = ConsumeChannel(broker_url, names.queue("poison"))
        service = Service(events, handle, target, amqp_channel)

        @events.consumer("GOOD")
        async def good(token: str) -> None:
            service.handled.append(token)
            service.arrived.set()

        if register is not None:
            register(events)
        services.track(asyncio.ensure_future(handle.consume(target)))
        await handle.ready(target, timeout=10)
        return service

    return make


def _header_size(headers: dict[str, Any]) -> int:
    """Bytes of the content header of a message with only ``headers``."""
    return len(ContentHeader(0, 0, spec.Basic.Properties(headers=headers)).marshal())


def header(message: aiormq.abc.DeliveredMessage, name: str) -> Any:
    return (message.header.properties.headers or {})[name]


# ------------------------------------------------------------------------- handlers that raise


class Custom(BaseException):
    """A BaseException that is not an Exception."""


def _raiser(exc: BaseException) -> Callable[[], Awaitable[None]]:
    async def handler() -> None:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        pytest.param(Custom("odd"), "Custom: odd", id="custom-base-exception"),
        pytest.param(GeneratorExit("gen"), "GeneratorExit: gen", id="generator-exit"),
        pytest.param(asyncio.CancelledError(), "CancelledError: ", id="cancelled-by-itself"),
    ],
)
async def test_a_handler_raising_a_base_exception_has_failed_like_any_other(
    build: Callable[..., Awaitable[Service]], exc: BaseException, reason: str
) -> None:
    service = await build(lambda events: events.consumer("RAISE")(_raiser(exc)))
    for _ in range(PREFETCH):
        await service.publish(event("RAISE", {}))
    dead = await service.dead_letters(PREFETCH)
    good = await service.good(5)
    assert [str(header(m, "x-eventrabbit-error")).startswith(reason) for m in dead] == [True] * 3
    await service.assert_accounted(good)


async def test_a_handler_cancelled_by_itself_is_retried_not_left_unacked(
    build: Callable[..., Awaitable[Service]],
) -> None:
    attempts: list[int] = []

    def register(events: Events) -> None:
        @events.consumer("FLAKY")
        async def flaky() -> None:
            attempts.append(1)
            if len(attempts) == 1:
                raise asyncio.CancelledError

    service = await build(register, max_retries=1)
    await service.publish(event("FLAKY", {}))
    [retry] = await collect(service.probe, service.queue + ".delay", 1)
    assert header(retry, "x-retry-count") == 1
    await service.assert_accounted(await service.good(2))


# ------------------------------------------------------------------ data the handler cannot take


class Greeter:
    async def greet(self, **data: Any) -> None:
        raise AssertionError(f"must not run with {data}")


async def test_data_that_cannot_be_bound_to_the_handler_is_bad_input(
    build: Callable[..., Awaitable[Service]],
) -> None:
    service = await build(lambda events: events.consumer("GREET")(Greeter().greet))
    for _ in range(PREFETCH):
        await service.publish(event("GREET", {"self": "intruder"}))
    dead = await service.dead_letters(PREFETCH)
    for message in dead:
        assert "data does not fit handler 'GREET'" in header(message, "x-eventrabbit-error")
        assert header(message, "x-retry-count") == 0
    await service.assert_accounted(await service.good(3))


# -------------------------------------------------------------------------- bounded reasons


async def test_huge_reasons_are_cut_and_the_copies_still_arrive(
    build: Callable[..., Awaitable[Service]],
) -> None:
    def register(events: Events) -> None:
        @events.consumer("LOUD")
        async def loud() -> None:
            raise ValueError("x" * 200_000)

        @events.consumer("PICKY")
        async def picky(a: int) -> None:
            raise AssertionError("never called")

    service = await build(register)
    await service.publish(event("LOUD", {}))
    await service.publish(event("N" * 140_000, {}))
    await service.publish(event("PICKY", {f"k{i}": i for i in range(20_000)}))
    dead = await service.dead_letters(3)
    for message in dead:
        reason = header(message, "x-eventrabbit-error")
        assert len(reason.encode()) <= MAX_REASON_BYTES
        assert reason.endswith("bytes cut)")
    await service.assert_accounted(await service.good(5))


async def test_a_copy_whose_headers_cannot_fit_a_frame_still_reaches_the_dlq(
    build: Callable[..., Awaitable[Service]], broker_kind: str
) -> None:
    service = await build(lambda events: events.consumer("FAIL")(_raiser(ValueError("no"))))
    # The message fits a frame with 40 bytes to spare; its copy, with reasons added, cannot.
    headers = {"big": "v" * (FRAME_MAX - 8 - 40 - _header_size({"big": ""}))}
    assert _header_size(headers) + 8 == FRAME_MAX - 40
    await service.publish(event("FAIL", {}), headers=headers, message_id="m-big")
    [dead] = await service.dead_letters(1)
    reason = header(dead, "x-eventrabbit-error")
    assert reason == "ValueError: no (headers left out to fit frame_max: see " + DROPPED + ")"
    assert header(dead, DROPPED) == "big"  # the one header left out, named
    assert "big" not in (dead.header.properties.headers or {})
    assert header(dead, "x-eventrabbit-queue") == service.queue
    assert dead.header.properties.message_id == "m-big"  # the rest of it is kept
    await service.assert_accounted(await service.good(2))


@pytest.mark.parametrize(
    ("count", "reason"),
    [
        pytest.param(2**63 - 1, "at its limit", id="int64-max"),
        pytest.param(MAX_RETRY_COUNT, "at its limit", id="at-the-cap"),
    ],
)
async def test_retry_counts_at_the_edge_are_dead_lettered_not_overflowed(
    build: Callable[..., Awaitable[Service]], count: int, reason: str
) -> None:
    service = await build(
        lambda events: events.consumer("FAIL")(_raiser(ValueError("no"))), max_retries=-1
    )
    await service.publish(event("FAIL", {}), headers={"x-retry-count": count})
    [dead] = await service.dead_letters(1)
    assert reason in header(dead, "x-eventrabbit-error")
    assert header(dead, "x-retry-count") == MAX_RETRY_COUNT
    await service.assert_accounted(await service.good(2))


# --------------------------------------------------------------------------------- replies


@pytest.mark.parametrize(
    ("reply_to", "logged"),
    [
        pytest.param("amq.rabbitmq.reply-to.AAAA.x", "not a direct reply-to", id="garbage-pid"),
        pytest.param(
            "amq.rabbitmq.reply-to.g2VuZGVyQHJhYmJpdA==.x", "not a direct reply-to", id="not-a-pid"
        ),
        # Dropped by the broker without a word: direct reply-to cannot be published mandatory.
        pytest.param("amq.rabbitmq.reply-to.garbage", None, id="direct-no-key"),
        pytest.param("no.such.queue.for.replies", "no queue", id="missing-queue"),
    ],
)
async def test_a_reply_that_cannot_be_delivered_is_dropped_and_the_request_handled(
    build: Callable[..., Awaitable[Service]],
    reply_to: str,
    logged: str | None,
    caplog: pytest.LogCaptureFixture,
    broker_kind: str,
) -> None:
    calls: list[int] = []

    def register(events: Events) -> None:
        @events.consumer("ASK")
        async def ask(n: int) -> int:
            calls.append(n)
            return n

    service = await build(register)
    caplog.set_level(logging.WARNING, logger="eventrabbit")
    for n in range(PREFETCH):
        await service.publish(event("ASK", {"n": n}), reply_to=reply_to, correlation_id=str(n))
    good = await service.good(5)
    assert sorted(calls) == [0, 1, 2]  # each request handled once, none again
    await service.assert_accounted(good)
    if broker_kind == "memory" and logged == "not a direct reply-to":
        logged = None  # no broker version to check addresses against: the broker drops them
    drops = [r.getMessage() for r in caplog.records if "reply to message" in r.getMessage()]
    assert len(drops) == (0 if logged is None else PREFETCH)
    assert all(logged in text for text in drops)


# ----------------------------------------------------------------------------- result values


async def test_a_nan_result_is_refused_not_written_as_null(
    build: Callable[..., Awaitable[Service]],
) -> None:
    def register(events: Events) -> None:
        @events.consumer("RATIO")
        async def ratio() -> dict[str, float]:
            return {"value": float("nan")}

        @events.producer("", "PRODUCED", key="nowhere")
        async def produce() -> float:
            return float("inf")

        service_refs.append(produce)

    service_refs: list[Callable[[], Awaitable[float]]] = []
    service = await build(register)
    await service.publish(event("RATIO", {}), reply_to=service.queue + ".replies")
    [dead] = await service.dead_letters(1)
    assert "NaN or an infinity" in header(dead, "x-eventrabbit-error")
    with pytest.raises(TypeError, match="NaN or an infinity"):
        await service_refs[0]()
    await service.assert_accounted(await service.good(1))


# ---------------------------------------------------------------------------- content_encoding


async def test_compressed_bodies_are_decoded_and_unknown_encodings_dead_lettered(
    build: Callable[..., Awaitable[Service]],
) -> None:
    service = await build()
    await service.publish(
        gzip.compress(event("GOOD", {"token": "zipped"})), content_encoding="gzip"
    )
    await service.publish(event("GOOD", {"token": "brotli"}), content_encoding="br")
    [dead] = await service.dead_letters(1)
    assert header(dead, "x-eventrabbit-error") == "content_encoding 'br' is not supported"
    service.expected += 1  # the zipped one
    good = await service.good(2)
    await service.assert_accounted(["zipped", *good])


# ----------------------------------------------------------------------------------- closing


async def test_close_returns_although_a_handler_swallows_its_cancellation(
    build: Callable[..., Awaitable[Service]], caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    def register(events: Events) -> None:
        @events.consumer("STUBBORN")
        async def stubborn() -> None:
            started.set()
            while not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    continue  # swallowed

    service = await build(register)
    caplog.set_level(logging.WARNING, logger="eventrabbit")
    await service.publish(event("STUBBORN", {}))
    await started.wait()
    try:
        await service.handle.close(timeout=0.2)  # returns: the test's own timeout bounds it
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("still running after 0.2 s" in text for text in warnings), warnings
        # Not acked: the broker has it again for the next consumer.
        assert await queue_depth(service.probe, service.queue) == 1
    finally:
        release.set()


@pytest.mark.real_broker
async def test_system_exit_in_a_handler_leaves_the_message_for_redelivery(
    names: Names, amqp_channel: Channel, broker_url: str, tmp_path: Any
) -> None:
    queue = names.queue("exit")
    script = tmp_path / "service.py"
    script.write_text(
        "import asyncio, sys\n"
        "from eventrabbit import build_event_dependencies\n"
        "from eventrabbit.common import ConsumeChannel\n"
        f"URL, QUEUE = {broker_url!r}, {queue!r}\n"
        "events, handle = build_event_dependencies(URL)\n"
        "@events.consumer('EXIT')\n"
        "async def leave() -> None:\n"
        "    raise SystemExit(3)\n"
        "async def main() -> None:\n"
        "    channel = ConsumeChannel(URL, QUEUE)\n"
        "    task = asyncio.create_task(handle.consume(channel))\n"
        "    await handle.ready(channel)\n"
        "    print('ready', flush=True)\n"
        "    await task\n"
        "asyncio.run(main())\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert await process.stdout.readline() == b"ready\n"
    await publish_raw(amqp_channel, event("EXIT", {}), queue)
    assert await process.wait() == 3
    [back] = await collect(amqp_channel, queue, 1)
    assert back.delivery.redelivered  # type: ignore[union-attr]
