"""Settings are validated where they are made: every config field against its limit.

Each refusal is a ``ConfigurationError`` naming the field, the value and the limit, raised
when the config is built — not a raw TypeError/ValueError/OverflowError inside ``consume``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from eventrabbit import build_event_dependencies
from eventrabbit.checks import (
    MAX_NAME_BYTES,
    MAX_PREFETCH_COUNT,
    MAX_QUEUE_NAME_BYTES,
    MAX_TTL_MILLISECONDS,
)
from eventrabbit.common import ConsumeChannel, QueueConfig, ReconnectConfig, RetryConfig
from eventrabbit.errors import ConfigurationError
from eventrabbit.topology import (
    dead_letter_queue_name,
    delay_queue_arguments,
    delay_queue_name,
)

URL = "amqp://guest:guest@localhost:5672/"
# "é" is two bytes in UTF-8: names are limited in bytes, not characters.
TWO_BYTE = "é"
# The largest delay in seconds whose milliseconds still fit RabbitMQ's TTL limit.
MAX_DELAY = MAX_TTL_MILLISECONDS / 1000


def channel(**kwargs: Any) -> ConsumeChannel:
    return ConsumeChannel(**{"url": URL, "queue_name": "q", **kwargs})


def build(**kwargs: Any) -> object:
    return build_event_dependencies(URL, **kwargs)


Make = Callable[..., object]

# (what is made, field, refused value, text the message must contain: the limit)
REFUSED: list[Any] = [
    # --- RetryConfig.max_retries: an int, -1 or more
    (RetryConfig, "max_retries", -2, "-1.."),
    (RetryConfig, "max_retries", True, "must be an int"),
    (RetryConfig, "max_retries", False, "must be an int"),
    (RetryConfig, "max_retries", 3.0, "must be an int"),
    (RetryConfig, "max_retries", "3", "must be an int"),
    (RetryConfig, "max_retries", None, "must be an int"),
    # --- RetryConfig.retry_delay_seconds: finite, >= 0, fits x-message-ttl
    (RetryConfig, "retry_delay_seconds", math.nan, "finite"),
    (RetryConfig, "retry_delay_seconds", math.inf, "finite"),
    (RetryConfig, "retry_delay_seconds", -math.inf, "finite"),
    (RetryConfig, "retry_delay_seconds", 10**400, "finite"),
    (RetryConfig, "retry_delay_seconds", -0.5, "0 or more"),
    (RetryConfig, "retry_delay_seconds", 1e300, str(MAX_TTL_MILLISECONDS)),
    (RetryConfig, "retry_delay_seconds", MAX_DELAY + 0.001, str(MAX_TTL_MILLISECONDS)),
    (RetryConfig, "retry_delay_seconds", 2**32, str(MAX_TTL_MILLISECONDS)),
    (RetryConfig, "retry_delay_seconds", True, "number of seconds"),
    (RetryConfig, "retry_delay_seconds", "5", "number of seconds"),
    (RetryConfig, "retry_delay_seconds", None, "number of seconds"),
    # --- ReconnectConfig: finite, > 0, max >= initial
    (ReconnectConfig, "initial_delay", 0, "more than 0"),
    (ReconnectConfig, "initial_delay", -1, "more than 0"),
    (ReconnectConfig, "initial_delay", math.nan, "finite"),
    (ReconnectConfig, "initial_delay", math.inf, "finite"),
    (ReconnectConfig, "initial_delay", True, "number of seconds"),
    (ReconnectConfig, "max_delay", math.nan, "finite"),
    (ReconnectConfig, "max_delay", math.inf, "finite"),
    (ReconnectConfig, "max_delay", 0.1, "initial_delay"),
    (ReconnectConfig, "max_delay", "30", "number of seconds"),
    # --- QueueConfig
    (QueueConfig, "prefetch_count", 0, f"1..{MAX_PREFETCH_COUNT}"),
    (QueueConfig, "prefetch_count", -3, f"1..{MAX_PREFETCH_COUNT}"),
    (QueueConfig, "prefetch_count", MAX_PREFETCH_COUNT + 1, f"1..{MAX_PREFETCH_COUNT}"),
    (QueueConfig, "prefetch_count", 10**6, f"1..{MAX_PREFETCH_COUNT}"),
    (QueueConfig, "prefetch_count", True, "must be an int"),
    (QueueConfig, "prefetch_count", 10.0, "must be an int"),
    (QueueConfig, "prefetch_count", "10", "must be an int"),
    (QueueConfig, "durable", 1, "must be a bool"),
    (QueueConfig, "durable", "yes", "must be a bool"),
    (QueueConfig, "max_body_size", 0, "1.."),
    (QueueConfig, "max_body_size", True, "must be an int"),
    (QueueConfig, "max_body_size", 1.5, "must be an int"),
    (QueueConfig, "grace_timeout", -1, "0 or more"),
    (QueueConfig, "grace_timeout", math.nan, "finite"),
    (QueueConfig, "grace_timeout", math.inf, "finite"),
    (QueueConfig, "grace_timeout", -math.inf, "finite"),
    (QueueConfig, "grace_timeout", True, "number of seconds"),
    (QueueConfig, "grace_timeout", "10", "number of seconds"),
    (QueueConfig, "queue_type", "stream", "classic"),
    (QueueConfig, "queue_type", ["quorum"], "classic"),
    # --- ConsumeChannel names: 255 bytes, the queue name less its ".delay" suffix
    (channel, "queue_name", "q" * (MAX_QUEUE_NAME_BYTES + 1), str(MAX_QUEUE_NAME_BYTES)),
    (channel, "queue_name", TWO_BYTE * 125, str(MAX_QUEUE_NAME_BYTES)),  # 250 bytes
    (channel, "queue_name", "q" * 300, str(MAX_QUEUE_NAME_BYTES)),
    (channel, "queue_name", "", "empty"),
    (channel, "queue_name", None, "must be a str"),
    (channel, "queue_name", b"orders", "must be a str"),
    (channel, "queue_name", "\ud800", "UTF-8"),
    (channel, "queue_name", "amq.orders", "amq."),
    (channel, "exchange_name", "x" * (MAX_NAME_BYTES + 1), str(MAX_NAME_BYTES)),
    (channel, "exchange_name", TWO_BYTE * 128, str(MAX_NAME_BYTES)),  # 256 bytes
    (channel, "exchange_name", 5, "must be a str"),
    (channel, "binding_keys", "k" * (MAX_NAME_BYTES + 1), str(MAX_NAME_BYTES)),
    (channel, "binding_keys", ("ok", TWO_BYTE * 128), str(MAX_NAME_BYTES)),
    (channel, "binding_keys", (1,), "must be a str"),
    (channel, "binding_keys", 7, "must be a str or a list"),
    (channel, "queue_config", {"prefetch_count": 5}, "QueueConfig"),
    (channel, "exchange_durable", "no", "must be a bool"),
    (channel, "exchange_durable", 0, "must be a bool"),
    # --- build_event_dependencies
    (build, "idle_timeout", -1, "0 or more"),
    (build, "idle_timeout", math.nan, "finite"),
    (build, "idle_timeout", math.inf, "finite"),
    (build, "idle_timeout", "300", "number of seconds"),
    (build, "publish_timeout", 0, "more than 0"),
    (build, "publish_timeout", -1, "more than 0"),
    (build, "publish_timeout", math.nan, "finite"),
    (build, "publish_timeout", math.inf, "finite"),
    (build, "publish_timeout", True, "number of seconds"),
    (build, "retry_config", {"max_retries": 3}, "RetryConfig"),
    (build, "queue_config", QueueConfig, "QueueConfig"),
    (build, "reconnect", 5, "ReconnectConfig"),
]


def _id(case: Any) -> str:
    make, name, value, _ = case
    shown = repr(value)
    return f"{getattr(make, '__name__', make)}.{name}={shown[:20]}"


@pytest.mark.parametrize(("make", "name", "value", "limit"), REFUSED, ids=map(_id, REFUSED))
def test_refused_when_made_with_field_value_and_limit(
    make: Make, name: str, value: object, limit: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        make(**{name: value})
    text = str(info.value)
    assert name in text
    assert limit in text
    assert _shown(make, name, value) in text
    assert isinstance(info.value, ValueError)


def _shown(make: Make, name: str, value: object) -> str:
    """How the message shows the value: the start of its repr; for a tuple of keys, the bad
    key; for a config given to build_event_dependencies, its type."""
    if make is build and name in ("retry_config", "queue_config", "reconnect"):
        return value.__name__ if isinstance(value, type) else type(value).__name__
    if isinstance(value, tuple):
        value = value[-1]
    return repr(value)[:20]


def test_a_bool_is_not_an_int() -> None:
    with pytest.raises(ConfigurationError, match=r"RetryConfig\.max_retries=True must be an int"):
        RetryConfig(max_retries=True)


def test_delivery_limit_refused() -> None:
    for value, text in [(0, "1.."), (True, "an int"), (2.0, "an int"), (2**63, "1..")]:
        with pytest.raises(ConfigurationError, match="delivery_limit") as info:
            QueueConfig(queue_type="quorum", delivery_limit=value)  # type: ignore[arg-type]
        assert text in str(info.value)


def test_a_url_list_of_the_wrong_shape_is_refused_without_showing_it() -> None:
    for url in ([], [URL, 5], 5, b"amqp://guest:s3cr3t@h/"):
        with pytest.raises(ConfigurationError, match=r"ConsumeChannel\.url") as info:
            ConsumeChannel(url, "q")  # type: ignore[arg-type]
        assert "s3cr3t" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# The limits themselves are accepted, and what they bound fits the broker.

ACCEPTED: list[Any] = [
    (RetryConfig, "max_retries", -1),
    (RetryConfig, "max_retries", 0),
    (RetryConfig, "max_retries", 10**6),
    (RetryConfig, "retry_delay_seconds", 0),
    (RetryConfig, "retry_delay_seconds", 0.001),
    (RetryConfig, "retry_delay_seconds", MAX_DELAY),
    (ReconnectConfig, "initial_delay", 0.001),
    (ReconnectConfig, "max_delay", 86_400),
    (QueueConfig, "prefetch_count", 1),
    (QueueConfig, "prefetch_count", MAX_PREFETCH_COUNT),
    (QueueConfig, "grace_timeout", 0),
    (QueueConfig, "max_body_size", 1),
    (channel, "queue_name", "q" * MAX_QUEUE_NAME_BYTES),
    (channel, "queue_name", "é" * (MAX_QUEUE_NAME_BYTES // 2)),
    (channel, "queue_name", "amqp.orders"),  # only "amq." is reserved
    (channel, "exchange_name", "x" * MAX_NAME_BYTES),
    (channel, "exchange_name", ""),
    (channel, "binding_keys", "k" * MAX_NAME_BYTES),
    (channel, "binding_keys", ["a.*", "b.#"]),
    (channel, "exchange_durable", False),
    (build, "idle_timeout", None),
    (build, "idle_timeout", 0),
    (build, "publish_timeout", 0.5),
]


@pytest.mark.parametrize(("make", "name", "value"), ACCEPTED, ids=lambda v: repr(v)[:20])
def test_limits_are_accepted(make: Make, name: str, value: object) -> None:
    made = make(**{name: value})
    if not isinstance(made, tuple):  # build returns (events, handle)
        stored = getattr(made, name)
        if name == "binding_keys":
            value = (value,) if isinstance(value, str) else tuple(value)  # type: ignore[arg-type]
        assert stored == value


def test_the_longest_queue_name_leaves_room_for_its_companions() -> None:
    name = "q" * MAX_QUEUE_NAME_BYTES
    ConsumeChannel(URL, name)
    for derived in (delay_queue_name(name), dead_letter_queue_name(name)):
        assert len(derived.encode()) <= MAX_NAME_BYTES


def test_the_longest_delay_fits_rabbitmqs_ttl_limit() -> None:
    config = RetryConfig(retry_delay_seconds=MAX_DELAY)
    ttl = delay_queue_arguments("q", config.retry_delay_seconds)["x-message-ttl"]
    assert ttl == MAX_TTL_MILLISECONDS == 2**32 - 1


def test_exchange_durable_is_keyword_only_and_positional_order_is_the_seeds() -> None:
    config = QueueConfig()
    made = ConsumeChannel(URL, "q", "ex", "fanout", config, ("k",))
    assert (made.exchange_name, made.queue_config, made.binding_keys) == ("ex", config, ("k",))
    assert made.exchange_durable is True
    with pytest.raises(TypeError):
        ConsumeChannel(URL, "q", "ex", "fanout", config, ("k",), False)  # type: ignore[call-arg]
