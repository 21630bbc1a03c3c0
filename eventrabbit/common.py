"""The value types of the public API: configuration, channels and replies.

The seed API imports :class:`ConsumeChannel` from this module, so it keeps that name and home.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import envelope
from .errors import ConfigurationError


class ExchangeType(enum.StrEnum):
    """RabbitMQ exchange types."""

    DIRECT = "direct"
    FANOUT = "fanout"
    TOPIC = "topic"
    HEADERS = "headers"


def coerce_exchange_type(value: object) -> ExchangeType | None:
    """Turn a str, an :class:`ExchangeType` or a foreign enum (e.g. aio-pika's) into ours.

    :raises ConfigurationError: for anything that does not name a RabbitMQ exchange type.
    """
    if value is None or isinstance(value, ExchangeType):
        return value
    raw = value.value if isinstance(value, enum.Enum) else value
    if isinstance(raw, str) and raw.lower() in _EXCHANGE_TYPES:
        return ExchangeType(raw.lower())
    names = ", ".join(repr(t.value) for t in ExchangeType)
    raise ConfigurationError(f"exchange_type {value!r} is not an exchange type; use one of {names}")


_EXCHANGE_TYPES = frozenset(t.value for t in ExchangeType)


@dataclass(slots=True, frozen=True)
class RetryConfig:
    """How a failing handler is retried.

    :param max_retries: retries after the first attempt; ``-1`` retries forever, ``0`` never.
    :param retry_delay_seconds: the delay before each retry, done by the broker (a TTL queue).
    """

    max_retries: int = -1
    retry_delay_seconds: float = 5

    def __post_init__(self) -> None:
        if self.max_retries < -1:
            raise ConfigurationError("max_retries must be -1 (forever), 0 or more")
        if self.retry_delay_seconds < 0:
            raise ConfigurationError("retry_delay_seconds must not be negative")


@dataclass(slots=True, frozen=True)
class ReconnectConfig:
    """How consumers wait between reconnect attempts: exponential backoff with jitter.

    :param initial_delay: the first delay, in seconds.
    :param max_delay: the ceiling the delays double up to.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay:
            raise ConfigurationError("need 0 < initial_delay <= max_delay")


#: Queue types ``QueueConfig.queue_type`` accepts.
QUEUE_TYPES = frozenset({"classic", "quorum"})

#: Bodies larger than this are dead-lettered unread (``QueueConfig.max_body_size``).
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class QueueConfig:
    """How a work queue is declared and consumed.

    :param prefetch_count: deliveries in flight at once; also the handler concurrency.
    :param durable: declare the work, delay and dead-letter queues durable.
    :param max_body_size: larger bodies are dead-lettered without being parsed.
    :param grace_timeout: seconds that in-flight handlers get to finish on shutdown.
    :param queue_type: ``None`` declares queues without a type (classic, and any existing
        queue is reused as is); ``"classic"`` or ``"quorum"`` declares the work, delay and
        dead-letter queues with that ``x-queue-type``.
    :param delivery_limit: quorum queues only: deliveries before the broker gives up on a
        message (``x-delivery-limit``); such messages go to the dead-letter queue.
    """

    prefetch_count: int = 10
    durable: bool = True
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    grace_timeout: float = 10.0
    queue_type: str | None = None
    delivery_limit: int | None = None

    def __post_init__(self) -> None:
        if self.prefetch_count < 1:
            raise ConfigurationError("prefetch_count must be 1 or more")
        if self.max_body_size < 1:
            raise ConfigurationError("max_body_size must be 1 or more")
        if self.grace_timeout < 0:
            raise ConfigurationError("grace_timeout must not be negative")
        if self.queue_type is not None and self.queue_type not in QUEUE_TYPES:
            raise ConfigurationError(f"queue_type must be one of {sorted(QUEUE_TYPES)}")
        if self.queue_type == "quorum" and not self.durable:
            raise ConfigurationError("quorum queues are always durable; leave durable=True")
        if self.delivery_limit is not None and (
            self.queue_type != "quorum" or self.delivery_limit < 1
        ):
            raise ConfigurationError("delivery_limit needs queue_type='quorum' and is 1 or more")


@dataclass(slots=True, frozen=True)
class ConsumeChannel:
    """A queue to consume, and the exchange it is bound to.

    :param url: the broker's URL (``amqp://`` or ``amqps://``), or a list of the URLs of a
        cluster's nodes: the first that answers is used, the next on loss.
    :param queue_name: the work queue; declared if it does not exist.
    :param exchange_name: bind the queue to this exchange; ``None`` binds nothing.
    :param exchange_type: declare the exchange with this type (durable); ``None`` with a name
        means the exchange must already exist. Accepts :class:`ExchangeType`, a string or any
        enum whose value is one (aio-pika's ``ExchangeType``).
    :param queue_config: this queue's settings; default: the one given to
        ``build_event_dependencies``.
    :param binding_keys: routing keys to bind with; default ``""`` for fanout/headers and the
        queue name for direct/topic and for an exchange named without a type.
    """

    url: str | Sequence[str]
    queue_name: str
    exchange_name: str | None = None
    exchange_type: ExchangeType | str | enum.Enum | None = None
    queue_config: QueueConfig | None = None
    binding_keys: tuple[str, ...] | str | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.queue_name:
            raise ConfigurationError("queue_name must not be empty")
        if not isinstance(self.url, str):
            object.__setattr__(self, "url", tuple(self.url))
        object.__setattr__(self, "exchange_type", coerce_exchange_type(self.exchange_type))
        if isinstance(self.binding_keys, str):
            object.__setattr__(self, "binding_keys", (self.binding_keys,))
        elif self.binding_keys is not None:
            object.__setattr__(self, "binding_keys", tuple(self.binding_keys))

    @property
    def urls(self) -> tuple[str, ...]:
        """The broker URLs, in the order they are tried."""
        return (self.url,) if isinstance(self.url, str) else tuple(self.url)

    def routing_keys(self) -> tuple[str, ...]:
        """The routing keys the queue is bound with."""
        if isinstance(self.binding_keys, tuple):
            return self.binding_keys
        if self.exchange_type in (ExchangeType.FANOUT, ExchangeType.HEADERS):
            return ("",)
        # Direct and topic route by key; an exchange of unknown type (named without one) is
        # bound with the queue name too, which fanout and headers exchanges ignore anyway.
        return (self.queue_name,)


@dataclass(slots=True, frozen=True)
class QueueResponse:
    """The body of a reply to a ``reply_to`` request: ``{"data": ...}`` or ``{"error": ...}``."""

    data: Any = None
    error: dict[str, str] | None = None

    @classmethod
    def failure(cls, error_type: str, message: str) -> QueueResponse:
        """A reply that tells the caller its request failed for good."""
        return cls(error={"type": error_type, "message": message})

    def to_bytes(self) -> bytes:
        """The JSON body."""
        if self.error is not None:
            return envelope.encode_error_reply(self.error)
        return envelope.encode_reply(self.data)
