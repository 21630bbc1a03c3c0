"""Queue names and declare arguments: pure functions."""

from __future__ import annotations

import pytest

from eventrabbit.common import QueueConfig
from eventrabbit.topology import (
    DEFAULT_EXCHANGE,
    dead_letter_queue_arguments,
    dead_letter_queue_name,
    delay_queue_arguments,
    delay_queue_name,
    work_queue_arguments,
)


@pytest.mark.parametrize(
    ("queue", "delay", "dead_letter"),
    [
        pytest.param("orders", "orders.delay", "orders.dlq", id="plain"),
        pytest.param("svc.orders.v2", "svc.orders.v2.delay", "svc.orders.v2.dlq", id="dotted"),
        pytest.param("tracker_info", "tracker_info.delay", "tracker_info.dlq", id="underscore"),
    ],
)
def test_companion_queue_names(queue: str, delay: str, dead_letter: str) -> None:
    assert delay_queue_name(queue) == delay
    assert dead_letter_queue_name(queue) == dead_letter


def test_companion_names_differ_from_each_other_and_the_queue() -> None:
    names = {"q", delay_queue_name("q"), dead_letter_queue_name("q")}
    assert len(names) == 3


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(None, id="no-config"),
        pytest.param(QueueConfig(), id="default-config"),
        pytest.param(QueueConfig(prefetch_count=50, durable=False), id="seed-fields-set"),
    ],
)
def test_work_queue_arguments_are_empty_unless_asked(config: QueueConfig | None) -> None:
    # no x- arguments, so a queue declared plain by an older version is reused as it is
    assert work_queue_arguments("orders", config) == {}
    assert dead_letter_queue_arguments(config) == {}


def test_work_queue_arguments_are_a_fresh_dict_each_time() -> None:
    first = work_queue_arguments("orders")
    first["x-queue-type"] = "quorum"
    assert work_queue_arguments("orders") == {}


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_queue_type_is_declared_when_asked(queue_type: str) -> None:
    config = QueueConfig(queue_type=queue_type)
    assert work_queue_arguments("orders", config)["x-queue-type"] == queue_type
    assert dead_letter_queue_arguments(config) == {"x-queue-type": queue_type}
    assert delay_queue_arguments("orders", 1, config)["x-queue-type"] == queue_type


def test_a_classic_work_queue_gets_only_its_type() -> None:
    assert work_queue_arguments("orders", QueueConfig(queue_type="classic")) == {
        "x-queue-type": "classic"
    }


def test_every_quorum_work_queue_dead_letters_into_the_dlq() -> None:
    # RabbitMQ 4.0+ gives every quorum queue a delivery limit of 20: without a target, what
    # exceeds it would be dropped.
    assert work_queue_arguments("orders", QueueConfig(queue_type="quorum")) == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "orders.dlq",
    }


#: Arguments RabbitMQ 4.x refuses or ignores: classic queue v1 and its mode, mirroring, the
#: master locator (4.3 denies it).
DEPRECATED_ARGUMENTS = {
    "x-queue-mode",
    "x-queue-version",
    "x-queue-master-locator",
    "x-ha-policy",
    "x-ha-nodes",
    "x-ha-params",
}
CONFIGS = [
    None,
    QueueConfig(),
    QueueConfig(durable=False),
    QueueConfig(queue_type="classic"),
    QueueConfig(queue_type="quorum"),
    QueueConfig(queue_type="quorum", delivery_limit=3),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_no_argument_rabbitmq_4_refuses_is_ever_declared(config: QueueConfig | None) -> None:
    declared = (
        work_queue_arguments("orders", config),
        delay_queue_arguments("orders", 1, config),
        dead_letter_queue_arguments(config),
    )
    for arguments in declared:
        assert not DEPRECATED_ARGUMENTS & arguments.keys(), arguments
        assert not any(key.startswith("x-ha-") for key in arguments), arguments


def test_quorum_delivery_limit_dead_letters_into_the_dlq() -> None:
    config = QueueConfig(queue_type="quorum", delivery_limit=5)
    assert work_queue_arguments("orders", config) == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 5,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "orders.dlq",
    }


def test_quorum_delay_queue_dead_letters_at_least_once() -> None:
    arguments = delay_queue_arguments("orders", 0.5, QueueConfig(queue_type="quorum"))
    assert arguments == {
        "x-queue-type": "quorum",
        "x-message-ttl": 500,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "orders",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_default_exchange_is_the_nameless_one() -> None:
    assert DEFAULT_EXCHANGE == ""


@pytest.mark.parametrize(
    ("seconds", "ttl_ms"),
    [
        pytest.param(5, 5000, id="int-seconds"),
        pytest.param(0.25, 250, id="quarter-second"),
        pytest.param(1.5, 1500, id="one-and-a-half"),
        pytest.param(0.001, 1, id="one-ms"),
        pytest.param(0.1, 100, id="tenth"),
        pytest.param(0, 0, id="zero"),
        pytest.param(3600, 3_600_000, id="hour"),
        # float seconds whose product with 1000 lands just below the integer
        pytest.param(2.01, 2010, id="float-2.01"),
        pytest.param(1.005, 1005, id="float-1.005"),
    ],
)
def test_delay_queue_arguments(seconds: float, ttl_ms: int) -> None:
    arguments = delay_queue_arguments("orders", seconds)
    assert arguments == {
        "x-message-ttl": ttl_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "orders",
    }
    # RabbitMQ refuses a float TTL; it must be an int
    assert type(arguments["x-message-ttl"]) is int


@pytest.mark.parametrize("queue", ["a", "svc.orders", "tracker_info"])
def test_delay_queue_dead_letters_into_its_own_queue_only(queue: str) -> None:
    arguments = delay_queue_arguments(queue, 1)
    assert arguments["x-dead-letter-routing-key"] == queue
    assert arguments["x-dead-letter-exchange"] == DEFAULT_EXCHANGE
