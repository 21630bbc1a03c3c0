"""Ordered queues, the pure part: the in-place retry decision, the config fields, the declare
arguments (README: Ordering)."""

from __future__ import annotations

from typing import Any

import pytest

from eventrabbit import ConfigurationError, ConsumerTimeout, InvalidMessage, QueueConfig
from eventrabbit.ordering import DEAD_LETTER, STOP, GiveUp, Wait, next_step
from eventrabbit.topology import work_queue_arguments

BOOM = RuntimeError("boom")
BAD = InvalidMessage("not an event")
OVERDUE = ConsumerTimeout("took back 3 times", queue="q", times=3)


@pytest.mark.parametrize(
    ("exc", "done", "max_retries", "on_exhausted", "step"),
    [
        pytest.param(BOOM, 0, 3, DEAD_LETTER, Wait(0.5, 1), id="first-failure-waits"),
        pytest.param(BOOM, 2, 3, DEAD_LETTER, Wait(0.5, 3), id="last-retry-waits"),
        pytest.param(BOOM, 3, 3, DEAD_LETTER, GiveUp(stop=False), id="exhausted-dead-letters"),
        pytest.param(BOOM, 3, 3, STOP, GiveUp(stop=True), id="exhausted-stops"),
        pytest.param(BOOM, 0, 0, DEAD_LETTER, GiveUp(stop=False), id="no-retries-dead-letters"),
        pytest.param(BOOM, 0, 0, STOP, GiveUp(stop=True), id="no-retries-stops"),
        pytest.param(BOOM, 10**6, -1, STOP, Wait(0.5, 10**6 + 1), id="forever-blocks-the-queue"),
        pytest.param(BAD, 0, 3, DEAD_LETTER, GiveUp(stop=False), id="bad-input-at-once"),
        pytest.param(BAD, 0, -1, STOP, GiveUp(stop=False), id="bad-input-never-stops-it"),
        pytest.param(OVERDUE, 0, -1, STOP, GiveUp(stop=False), id="consumer-timeout-at-once"),
        pytest.param(TimeoutError(), 0, 1, STOP, Wait(0.5, 1), id="handler-timeout-retried"),
    ],
)
def test_next_step(
    exc: BaseException, done: int, max_retries: int, on_exhausted: str, step: Wait | GiveUp
) -> None:
    assert next_step(exc, done, max_retries, 0.5, on_exhausted) == step


def test_an_ordered_queue_takes_one_message_at_a_time() -> None:
    assert QueueConfig(ordered=True).prefetch_count == 1
    assert QueueConfig(ordered=True, prefetch_count=50).prefetch_count == 1
    assert QueueConfig().prefetch_count == 10


def test_ordering_defaults_leave_queues_as_they_were() -> None:
    config = QueueConfig()
    assert (config.ordered, config.on_exhausted, config.single_active_consumer) == (
        False,
        "dead-letter",
        False,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"ordered": 1}, "QueueConfig.ordered=1", id="ordered-not-bool"),
        pytest.param(
            {"single_active_consumer": "yes"},
            "QueueConfig.single_active_consumer='yes'",
            id="sac-not-bool",
        ),
        pytest.param(
            {"ordered": True, "on_exhausted": "retry"}, "on_exhausted='retry'", id="unknown-mode"
        ),
        pytest.param({"on_exhausted": "stop"}, "needs ordered=True", id="stop-unordered"),
        pytest.param({"ordered": True, "prefetch_count": 0}, "prefetch_count", id="bad-prefetch"),
    ],
)
def test_queue_config_refuses(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        QueueConfig(**kwargs)


@pytest.mark.parametrize(
    ("config", "arguments"),
    [
        pytest.param(QueueConfig(ordered=True), {}, id="ordered-adds-nothing"),
        pytest.param(
            QueueConfig(single_active_consumer=True),
            {"x-single-active-consumer": True},
            id="sac",
        ),
        pytest.param(
            QueueConfig(single_active_consumer=True, queue_type="quorum"),
            {
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "orders.dlq",
                "x-single-active-consumer": True,
            },
            id="sac-quorum",
        ),
    ],
)
def test_work_queue_arguments(config: QueueConfig, arguments: dict[str, Any]) -> None:
    assert work_queue_arguments("orders", config) == arguments
