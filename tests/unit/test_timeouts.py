"""Time limits on handling a delivery, and what the broker refuses: pure decisions as tables.

``handler_timeout`` (its setting and :func:`~eventrabbit.timeouts.bounded`), the broker's
consumer timeout (recognising its close, the memory of the messages that caused it, when one is
dead-lettered), and the texts of the refusals RabbitMQ 4.x adds.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import aiormq
import pytest
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec
from pamqp.header import ContentHeader

from eventrabbit import ConfigurationError, ConsumerTimeout, HandlerTimeout, QueueConfig
from eventrabbit.common import RetryConfig
from eventrabbit.failures import DeadLetter, Retry, decide
from eventrabbit.permissions import connection_refused, declare_refused
from eventrabbit.quorum import lacks_dead_letter_target
from eventrabbit.timeouts import (
    CONSUMER_TIMEOUT_LIMIT,
    ConsumerTimeouts,
    bounded,
    is_consumer_timeout,
    message_key,
    timeout_used,
)

#: RabbitMQ 3.10's reply, as the fault test's node sends it.
CLOSED = (
    "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value "
    "used: 1800000 ms. This timeout value can be configured, see consumers doc guide to learn "
    "more"
)


def message(message_id: str | None = None, body: bytes = b"{}", tag: int = 1) -> DeliveredMessage:
    return DeliveredMessage(
        delivery=spec.Basic.Deliver(delivery_tag=tag, redelivered=True),
        header=ContentHeader(properties=spec.Basic.Properties(message_id=message_id)),
        body=body,
        channel=None,  # type: ignore[arg-type]
    )


# -- QueueConfig.handler_timeout ------------------------------------------------------------


@pytest.mark.parametrize("seconds", [None, 0.001, 1, 30.5, 1800])
def test_handler_timeout_takes_none_or_positive_seconds(seconds: float | None) -> None:
    assert QueueConfig(handler_timeout=seconds).handler_timeout == seconds


@pytest.mark.parametrize("seconds", [0, -1, math.inf, math.nan, "5", True])
def test_handler_timeout_refuses_what_cannot_be_a_limit(seconds: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"QueueConfig\.handler_timeout"):
        QueueConfig(handler_timeout=seconds)


def test_handler_timeout_is_off_by_default() -> None:
    assert QueueConfig().handler_timeout is None


# -- bounded ---------------------------------------------------------------------------------


async def test_bounded_returns_what_a_quick_handler_returns() -> None:
    async def quick() -> int:
        return 7

    assert await bounded(quick(), 5, "q") == 7


async def test_bounded_cancels_a_slow_handler_and_names_the_limit() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(HandlerTimeout) as info:
        await bounded(slow(), 0.01, "orders")
    assert cancelled.is_set()
    assert isinstance(info.value, TimeoutError)
    assert info.value.seconds == 0.01
    assert info.value.queue == "orders"
    assert str(info.value) == (
        "the handler ran longer than QueueConfig.handler_timeout (0.01 s) on queue 'orders' and "
        "was cancelled"
    )


async def test_bounded_leaves_the_handlers_own_timeout_alone() -> None:
    async def own() -> None:
        raise TimeoutError("the database")

    with pytest.raises(TimeoutError, match="the database") as info:
        await bounded(own(), 5, "q")
    assert not isinstance(info.value, HandlerTimeout)


async def test_bounded_does_not_swallow_a_cancellation_from_outside() -> None:
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(bounded(slow(), 60, "q"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- recognising the broker's consumer timeout -----------------------------------------------


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        pytest.param(aiormq.exceptions.ChannelPreconditionFailed(CLOSED), True, id="3.10"),
        pytest.param(
            aiormq.exceptions.ChannelPreconditionFailed(CLOSED.replace("channel 1", "channel 42")),
            True,
            id="other-channel",
        ),
        pytest.param(
            aiormq.exceptions.ChannelPreconditionFailed(
                "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q'"
            ),
            False,
            id="a-clash",
        ),
        pytest.param(aiormq.exceptions.ChannelClosed(320, "CONNECTION_FORCED"), False, id="forced"),
        pytest.param(asyncio.CancelledError(), False, id="cancelled"),
        pytest.param(None, False, id="none"),
        pytest.param(CLOSED, False, id="a-string-is-no-close"),
    ],
)
def test_is_consumer_timeout(reason: object, expected: bool) -> None:
    assert is_consumer_timeout(reason) is expected


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param(CLOSED, "1800 s", id="default"),
        pytest.param(CLOSED.replace("1800000", "1500"), "1.5 s", id="short"),
        pytest.param("delivery acknowledgement on channel 1 timed out", "consumer_timeout", id="-"),
    ],
)
def test_timeout_used(text: str, shown: str) -> None:
    assert timeout_used(aiormq.exceptions.ChannelPreconditionFailed(text)) == shown


def test_a_message_is_known_by_its_message_id() -> None:
    assert message_key(message("m-1", b"a")) == message_key(message("m-1", b"b")) == "id:m-1"


@pytest.mark.parametrize("message_id", [None, ""])
def test_a_message_without_an_id_is_known_by_its_body(message_id: str | None) -> None:
    same = message_key(message(message_id, b"body"))
    assert same.startswith("body:")
    assert same == message_key(message(message_id, b"body", tag=9))
    assert same != message_key(message(message_id, b"other"))


# -- the memory of one consume ---------------------------------------------------------------


def test_marks_count_per_message() -> None:
    timeouts = ConsumerTimeouts()
    assert not timeouts
    assert timeouts.mark("id:a") == 1
    assert timeouts.mark("id:a") == 2
    assert timeouts.mark("id:b") == 1
    assert timeouts.times("id:a") == 2
    assert timeouts.times("id:c") == 0
    assert len(timeouts) == 2


def test_the_memory_forgets_the_least_recently_marked_first() -> None:
    timeouts = ConsumerTimeouts(size=2)
    timeouts.mark("id:a")
    timeouts.mark("id:b")
    timeouts.mark("id:a")  # a is the most recent now
    timeouts.mark("id:c")
    assert len(timeouts) == 2
    assert timeouts.times("id:b") == 0
    assert timeouts.times("id:a") == 2


@pytest.mark.parametrize(
    ("marks", "dead_lettered"),
    [(0, False), (CONSUMER_TIMEOUT_LIMIT - 1, False), (CONSUMER_TIMEOUT_LIMIT, True)],
)
def test_a_message_is_overdue_at_the_limit(marks: int, dead_lettered: bool) -> None:
    timeouts = ConsumerTimeouts()
    for _ in range(marks):
        timeouts.mark("id:m")
    overdue = timeouts.overdue(message("m"), "orders")
    assert (overdue is not None) is dead_lettered
    if overdue is not None:
        assert overdue.times == marks
        assert overdue.queue == "orders"
        assert "handler_timeout" in str(overdue)
        assert timeouts.times("id:m") == 0, "forgotten: a re-driven copy starts afresh"


def test_a_close_for_another_reason_is_not_counted() -> None:
    timeouts = ConsumerTimeouts()
    other = aiormq.exceptions.ChannelPreconditionFailed("PRECONDITION_FAILED - unknown tag")
    assert not timeouts.channel_closed(other, "q", {1: (0.0, message("m"))}, 1.0)
    assert timeouts.closes == 0
    assert not timeouts


def test_a_close_marks_the_oldest_open_delivery_only(caplog: pytest.LogCaptureFixture) -> None:
    timeouts = ConsumerTimeouts()
    opened = {5: (10.0, message("old", tag=5)), 6: (20.0, message("young", tag=6))}
    reason = aiormq.exceptions.ChannelPreconditionFailed(CLOSED)
    with caplog.at_level(logging.ERROR, logger="eventrabbit.timeouts"):
        assert timeouts.channel_closed(reason, "orders", opened, 1810.0)
    assert timeouts.closes == 1
    assert timeouts.times("id:old") == 1
    assert timeouts.times("id:young") == 0
    [record] = caplog.records
    text = record.getMessage()
    for part in (
        "(1800 s)",
        "'orders'",
        "delivery 5",
        "message old",
        "1800.0 s",
        "handler_timeout",
    ):
        assert part in text, text
    assert record.queue == "orders"  # type: ignore[attr-defined]
    assert record.message_id == "old"  # type: ignore[attr-defined]


def test_a_close_with_nothing_open_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    timeouts = ConsumerTimeouts()
    reason = aiormq.exceptions.ChannelPreconditionFailed(CLOSED)
    with caplog.at_level(logging.ERROR, logger="eventrabbit.timeouts"):
        assert timeouts.channel_closed(reason, "orders", {}, 0.0)
    assert timeouts.closes == 1
    assert not timeouts
    assert "'orders'" in caplog.records[0].getMessage()


# -- what failures decide --------------------------------------------------------------------


@pytest.mark.parametrize("retries", [0, 3])
def test_a_consumer_timeout_is_dead_lettered_at_once(retries: int) -> None:
    exc = ConsumerTimeout("too often", queue="q", times=2)
    decision = decide({"x-retry-count": retries}, exc, RetryConfig(max_retries=-1))
    assert decision == DeadLetter("ConsumerTimeout: too often", retries)


def test_a_handler_timeout_is_retried_like_any_failure() -> None:
    exc = HandlerTimeout("ran long", queue="q", seconds=1)
    decision = decide(None, exc, RetryConfig(max_retries=2))
    assert decision == Retry(1, "HandlerTimeout: ran long")


# -- refusals --------------------------------------------------------------------------------


def test_a_clash_is_told_as_a_clash() -> None:
    exc = aiormq.exceptions.ChannelPreconditionFailed(
        "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q.dlq' in vhost '/'"
    )
    error = declare_refused(exc, "q.dlq", queue="q")
    assert str(error).startswith("queue 'q.dlq' exists with other arguments")
    assert error.queue == "q.dlq"


def test_a_limit_is_told_as_a_limit() -> None:
    exc = aiormq.exceptions.ChannelPreconditionFailed(
        "PRECONDITION_FAILED - cannot declare queue 'q.delay': queue limit in vhost 'v' (1) is "
        "reached"
    )
    error = declare_refused(exc, "q.delay", queue="q")
    text = str(error)
    assert text.startswith("consuming queue 'q': the broker refused to declare queue 'q.delay'")
    assert "queue limit in vhost 'v' (1) is reached" in text
    assert "set_vhost_limits" in text
    assert error.queue == "q"


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        pytest.param(
            aiormq.exceptions.ConnectionInternalError(
                "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated."
            ),
            "QueueConfig(durable=False)",
            id="4.3-transient",
        ),
        pytest.param(
            aiormq.exceptions.ConnectionNotImplemented("NOT_IMPLEMENTED - something"),
            "fix what it names",
            id="other",
        ),
    ],
)
def test_a_refusal_that_closed_the_connection(exc: BaseException, says: str) -> None:
    error = connection_refused(exc, queue="q")
    assert str(error).startswith("consuming queue 'q': the broker refused setting it up")
    assert says in str(error)
    assert error.queue == "q"


@pytest.mark.parametrize(
    ("text", "lacks"),
    [
        pytest.param(
            "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in "
            "vhost '/': received the value '' of type 'longstr' but current is none",
            True,
            id="rabbitmq-3.10",
        ),
        pytest.param(
            "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-routing-key' for queue 'q': "
            "received 'q.dlq' but current is None",
            True,
            id="in-memory",
        ),
        pytest.param(
            "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in "
            "vhost '/': received the value '' of type 'longstr' but current is the value 'dlx' "
            "of type 'longstr'",
            False,
            id="another-target",
        ),
        pytest.param(
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q'", False, id="other"
        ),
    ],
)
def test_a_quorum_queue_without_a_dead_letter_target_is_recognised(text: str, lacks: bool) -> None:
    refusal = aiormq.exceptions.ChannelPreconditionFailed(text)
    assert lacks_dead_letter_target(refusal) is lacks
