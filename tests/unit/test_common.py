"""The seed's value types: exchange type coercion, configs, channels, reply bodies."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import aio_pika
import orjson
import pytest

from eventrabbit.common import (
    ConsumeChannel,
    ExchangeType,
    QueueConfig,
    QueueResponse,
    ReconnectConfig,
    RetryConfig,
    coerce_exchange_type,
)
from eventrabbit.errors import ConfigurationError

URL = "amqp://guest:guest@localhost:5672/"


class ForeignExchangeType(enum.Enum):
    """Another library's exchange type enum (values like aio-pika's)."""

    FANOUT = "fanout"
    DIRECT = "direct"
    TOPIC = "topic"
    HEADERS = "headers"


class ShoutingExchangeType(enum.Enum):
    FANOUT = "FANOUT"


class NumberedExchangeType(enum.IntEnum):
    FANOUT = 1


# ---------------------------------------------------------------------------------------------
# ExchangeType and its coercion


def test_exchange_type_values() -> None:
    assert {t.value for t in ExchangeType} == {
        "direct",
        "fanout",
        "topic",
        "headers",
        "x-consistent-hash",
    }
    assert isinstance(ExchangeType.FANOUT, str)  # a StrEnum: usable where a str is expected
    assert str(ExchangeType.FANOUT) == "fanout"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *(pytest.param(t, t, id=f"ours-{t.value}") for t in ExchangeType),
        pytest.param("fanout", ExchangeType.FANOUT, id="str-fanout"),
        pytest.param("direct", ExchangeType.DIRECT, id="str-direct"),
        pytest.param("topic", ExchangeType.TOPIC, id="str-topic"),
        pytest.param("headers", ExchangeType.HEADERS, id="str-headers"),
        pytest.param("FANOUT", ExchangeType.FANOUT, id="str-upper"),
        pytest.param("Topic", ExchangeType.TOPIC, id="str-mixed-case"),
        *(
            pytest.param(f, ExchangeType(f.value), id=f"foreign-{f.value}")
            for f in ForeignExchangeType
        ),
        pytest.param(ShoutingExchangeType.FANOUT, ExchangeType.FANOUT, id="foreign-upper-value"),
        pytest.param(aio_pika.ExchangeType.FANOUT, ExchangeType.FANOUT, id="aio-pika-fanout"),
        pytest.param(aio_pika.ExchangeType.DIRECT, ExchangeType.DIRECT, id="aio-pika-direct"),
        pytest.param(aio_pika.ExchangeType.TOPIC, ExchangeType.TOPIC, id="aio-pika-topic"),
        pytest.param(aio_pika.ExchangeType.HEADERS, ExchangeType.HEADERS, id="aio-pika-headers"),
        pytest.param(
            aio_pika.ExchangeType.X_CONSISTENT_HASH,
            ExchangeType.CONSISTENT_HASH,
            id="aio-pika-consistent-hash",
        ),
        pytest.param("x-consistent-hash", ExchangeType.CONSISTENT_HASH, id="str-consistent-hash"),
        pytest.param(None, None, id="none"),
    ],
)
def test_coerce_exchange_type(value: object, expected: ExchangeType | None) -> None:
    coerced = coerce_exchange_type(value)
    assert coerced is expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("fan-out", id="misspelt"),
        pytest.param("", id="empty-str"),
        pytest.param(" fanout", id="padded"),
        pytest.param("x-delayed-message", id="plugin-type-str"),
        pytest.param(aio_pika.ExchangeType.X_DELAYED_MESSAGE, id="aio-pika-plugin-type"),
        pytest.param(NumberedExchangeType.FANOUT, id="int-enum"),
        pytest.param(1, id="int"),
        pytest.param(b"fanout", id="bytes"),
        pytest.param(["fanout"], id="list"),
        pytest.param(object(), id="object"),
    ],
)
def test_coerce_exchange_type_refuses_and_lists_valid_ones(value: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        coerce_exchange_type(value)
    text = str(info.value)
    for valid in ("'direct'", "'fanout'", "'topic'", "'headers'"):
        assert valid in text
    assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------------------------------------
# RetryConfig / QueueConfig


def test_retry_config_defaults_match_the_seed() -> None:
    config = RetryConfig()
    assert config.max_retries == -1
    assert config.retry_delay_seconds == 5


def test_queue_config_defaults_match_the_seed() -> None:
    config = QueueConfig()
    assert config.prefetch_count == 10
    assert config.durable is True


def test_seed_fields_come_first_so_positional_use_keeps_working() -> None:
    assert [f.name for f in dataclasses.fields(RetryConfig)][:2] == [
        "max_retries",
        "retry_delay_seconds",
    ]
    assert [f.name for f in dataclasses.fields(QueueConfig)][:2] == ["prefetch_count", "durable"]
    assert RetryConfig(3, 1) == RetryConfig(max_retries=3, retry_delay_seconds=1)
    assert QueueConfig(20, False) == QueueConfig(prefetch_count=20, durable=False)


def test_fields_added_after_the_seeds_have_defaults() -> None:
    for cls in (RetryConfig, QueueConfig):
        for field in dataclasses.fields(cls):
            assert field.default is not dataclasses.MISSING, (cls.__name__, field.name)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"max_retries": -1}, id="forever"),
        pytest.param({"max_retries": 0}, id="never"),
        pytest.param({"max_retries": 100}, id="many"),
        pytest.param({"retry_delay_seconds": 0}, id="no-delay"),
        pytest.param({"retry_delay_seconds": 0.25}, id="fractional-delay"),
    ],
)
def test_retry_config_accepts(kwargs: dict[str, Any]) -> None:
    config = RetryConfig(**kwargs)
    for name, value in kwargs.items():
        assert getattr(config, name) == value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_retries": -2}, "max_retries", id="max-retries-below-minus-one"),
        pytest.param({"retry_delay_seconds": -0.5}, "retry_delay_seconds", id="negative-delay"),
    ],
)
def test_retry_config_refuses(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RetryConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"prefetch_count": 0}, "prefetch_count", id="prefetch-zero"),
        pytest.param({"prefetch_count": -3}, "prefetch_count", id="prefetch-negative"),
        pytest.param({"max_body_size": 0}, "max_body_size", id="body-size-zero"),
        pytest.param({"grace_timeout": -1}, "grace_timeout", id="grace-negative"),
        pytest.param({"queue_type": "stream"}, "queue_type", id="queue-type-unknown"),
        pytest.param({"queue_type": "Quorum"}, "queue_type", id="queue-type-case"),
        pytest.param(
            {"queue_type": "quorum", "durable": False}, "durable", id="quorum-not-durable"
        ),
        pytest.param({"delivery_limit": 3}, "delivery_limit", id="delivery-limit-classic"),
        pytest.param(
            {"queue_type": "quorum", "delivery_limit": 0},
            "delivery_limit",
            id="delivery-limit-zero",
        ),
    ],
)
def test_queue_config_refuses(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        QueueConfig(**kwargs)


def test_queue_config_accepts_edge_values() -> None:
    config = QueueConfig(prefetch_count=1, max_body_size=1, grace_timeout=0)
    assert (config.prefetch_count, config.max_body_size, config.grace_timeout) == (1, 1, 0)


def test_queue_config_new_fields_default_to_plain_queues() -> None:
    config = QueueConfig()
    assert config.queue_type is None
    assert config.delivery_limit is None


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"queue_type": "classic"}, id="classic"),
        pytest.param({"queue_type": "quorum"}, id="quorum"),
        pytest.param({"queue_type": "quorum", "delivery_limit": 1}, id="quorum-limit"),
    ],
)
def test_queue_config_accepts_queue_types(kwargs: dict[str, Any]) -> None:
    config = QueueConfig(**kwargs)
    for name, value in kwargs.items():
        assert getattr(config, name) == value


def test_reconnect_config_defaults() -> None:
    config = ReconnectConfig()
    assert (config.initial_delay, config.max_delay) == (0.5, 30.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"initial_delay": 0}, id="initial-zero"),
        pytest.param({"initial_delay": -1}, id="initial-negative"),
        pytest.param({"initial_delay": 5, "max_delay": 1}, id="max-below-initial"),
    ],
)
def test_reconnect_config_refuses(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ReconnectConfig(**kwargs)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        pytest.param(RetryConfig(), "max_retries", id="retry"),
        pytest.param(QueueConfig(), "prefetch_count", id="queue"),
    ],
)
def test_configs_are_frozen(value: object, field: str) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, 1)


# ---------------------------------------------------------------------------------------------
# ConsumeChannel


def test_consume_channel_needs_only_url_and_queue() -> None:
    channel = ConsumeChannel(URL, "orders")
    assert channel.url == URL
    assert channel.queue_name == "orders"
    assert channel.exchange_name is None
    assert channel.exchange_type is None
    assert channel.queue_config is None
    assert channel.binding_keys is None


@pytest.mark.parametrize(
    ("url", "urls"),
    [
        pytest.param(URL, (URL,), id="one-url"),
        pytest.param(["amqp://a/", "amqp://b/"], ("amqp://a/", "amqp://b/"), id="list"),
        pytest.param(("amqp://a/",), ("amqp://a/",), id="tuple"),
    ],
)
def test_consume_channel_urls(url: str | list[str], urls: tuple[str, ...]) -> None:
    channel = ConsumeChannel(url, "q")
    assert channel.urls == urls
    hash(channel)  # a list is stored as a tuple, so the channel stays hashable


def test_consume_channel_seed_positional_order() -> None:
    config = QueueConfig(prefetch_count=3)
    channel = ConsumeChannel(URL, "q", "ex", "fanout", config)
    assert channel.exchange_name == "ex"
    assert channel.exchange_type is ExchangeType.FANOUT
    assert channel.queue_config is config


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        pytest.param("topic", ExchangeType.TOPIC, id="str"),
        pytest.param("HEADERS", ExchangeType.HEADERS, id="str-upper"),
        pytest.param(ExchangeType.DIRECT, ExchangeType.DIRECT, id="ours"),
        pytest.param(aio_pika.ExchangeType.FANOUT, ExchangeType.FANOUT, id="aio-pika"),
        pytest.param(ForeignExchangeType.TOPIC, ExchangeType.TOPIC, id="foreign-enum"),
    ],
)
def test_consume_channel_coerces_exchange_type(given: object, stored: ExchangeType) -> None:
    channel = ConsumeChannel(URL, "q", exchange_name="ex", exchange_type=given)  # type: ignore[arg-type]
    assert channel.exchange_type is stored


def test_consume_channel_type_without_exchange_name_is_allowed() -> None:
    # The seed's tracker_info queue: a type but no exchange, so no binding.
    channel = ConsumeChannel(URL, "tracker_info", exchange_type=aio_pika.ExchangeType.FANOUT)
    assert channel.exchange_name is None
    assert channel.exchange_type is ExchangeType.FANOUT


def test_consume_channel_refuses_a_bad_exchange_type() -> None:
    with pytest.raises(ConfigurationError, match="exchange_type"):
        ConsumeChannel(URL, "q", "ex", "fanotu")


@pytest.mark.parametrize(
    ("exchange_type", "keys"),
    [
        pytest.param(ExchangeType.FANOUT, ("",), id="fanout"),
        pytest.param(ExchangeType.HEADERS, ("",), id="headers"),
        pytest.param(ExchangeType.DIRECT, ("orders",), id="direct"),
        pytest.param(ExchangeType.TOPIC, ("orders",), id="topic"),
        pytest.param("direct", ("orders",), id="direct-as-str"),
    ],
)
def test_routing_keys_defaults(exchange_type: object, keys: tuple[str, ...]) -> None:
    channel = ConsumeChannel(URL, "orders", "ex", exchange_type)  # type: ignore[arg-type]
    assert channel.routing_keys() == keys


@pytest.mark.parametrize(
    ("exchange_type", "binding_keys", "keys"),
    [
        pytest.param(
            "topic", ["orders.*", "refunds.#"], ("orders.*", "refunds.#"), id="topic-list"
        ),
        pytest.param("direct", ("a", "b"), ("a", "b"), id="direct-tuple"),
        pytest.param("fanout", ["ignored-by-broker"], ("ignored-by-broker",), id="fanout-list"),
    ],
)
def test_routing_keys_explicit(
    exchange_type: str, binding_keys: list[str] | tuple[str, ...], keys: tuple[str, ...]
) -> None:
    channel = ConsumeChannel(URL, "orders", "ex", exchange_type, binding_keys=binding_keys)  # type: ignore[arg-type]
    assert channel.binding_keys == keys
    assert type(channel.binding_keys) is tuple
    assert channel.routing_keys() == keys


def test_binding_keys_list_is_copied_so_later_changes_do_not_leak() -> None:
    keys = ["a"]
    channel = ConsumeChannel(URL, "q", "ex", "topic", binding_keys=keys)  # type: ignore[arg-type]
    keys.append("b")
    assert channel.routing_keys() == ("a",)


def test_binding_keys_given_as_one_string_is_not_split_into_characters() -> None:
    # A single key passed as a str must bind that key (or be refused), never one
    # binding per character ("o", "r", "d", ...).
    try:
        channel = ConsumeChannel(URL, "q", "ex", "topic", binding_keys="orders.*")  # type: ignore[arg-type]
    except ConfigurationError:
        return
    assert channel.routing_keys() == ("orders.*",)


def test_consume_channel_refuses_an_empty_queue_name() -> None:
    with pytest.raises(ConfigurationError, match="queue_name"):
        ConsumeChannel(URL, "")


def test_consume_channel_is_frozen_and_hashable() -> None:
    channel = ConsumeChannel(URL, "q", "ex", "topic", binding_keys=["a"])  # type: ignore[arg-type]
    assert hash(channel) == hash(ConsumeChannel(URL, "q", "ex", "topic", binding_keys=("a",)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        channel.queue_name = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# QueueResponse


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"id": 1, "items": [1, 2]}, id="dict"),
        pytest.param([1, "a", None], id="list"),
        pytest.param("ok", id="str"),
        pytest.param(42, id="int"),
        pytest.param(0.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
    ],
)
def test_queue_response_data_body(data: Any) -> None:
    body = QueueResponse(data=data).to_bytes()
    decoded = orjson.loads(body)
    assert decoded == {"data": data}
    assert type(decoded["data"]) is type(data)


def test_queue_response_exact_bytes() -> None:
    assert QueueResponse(data={"a": 1}).to_bytes() == b'{"data":{"a":1}}'
    assert QueueResponse().to_bytes() == b'{"data":null}'


def test_queue_response_positional_data_like_the_seed() -> None:
    assert QueueResponse({"x": 1}).to_bytes() == b'{"data":{"x":1}}'


def test_queue_response_failure() -> None:
    response = QueueResponse.failure("PaymentDeclined", "card expired")
    assert response.error == {"type": "PaymentDeclined", "message": "card expired"}
    assert orjson.loads(response.to_bytes()) == {
        "error": {"type": "PaymentDeclined", "message": "card expired"}
    }
    assert "data" not in orjson.loads(response.to_bytes())
