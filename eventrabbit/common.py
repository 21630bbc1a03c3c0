"""The value types of the public API: configuration, channels and replies.

The seed API imports :class:`ConsumeChannel` from this module, so it keeps that name and home.

Every value is checked when it is made (:mod:`eventrabbit.checks`): a
:class:`ConfigurationError` names the field, the value and the limit.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import envelope
from .checks import (
    MAX_PREFETCH_COUNT,
    censored_repr,
    check_binding_keys,
    check_bool,
    check_delay,
    check_int,
    check_name,
    check_queue_name,
    check_seconds,
    check_urls,
    shown,
    urls_of,
)
from .errors import ConfigurationError
from .ordering import DEAD_LETTER, check_ordering


class ExchangeType(enum.StrEnum):
    """RabbitMQ exchange types; ``CONSISTENT_HASH`` needs its plugin (:mod:`.partitions`)."""

    DIRECT = "direct"
    FANOUT = "fanout"
    TOPIC = "topic"
    HEADERS = "headers"
    CONSISTENT_HASH = "x-consistent-hash"


def coerce_exchange_type(value: object) -> ExchangeType | None:
    """Turn a str, an :class:`ExchangeType` or a foreign enum (e.g. aio-pika's) into ours.

    :raises ConfigurationError: anything that does not name a RabbitMQ exchange type."""
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
    :param retry_delay_seconds: the delay before each retry, done by the broker (a TTL queue):
        finite, ``0`` or more, and at most 2**32 - 1 ms (about 49.7 days).
    :raises ConfigurationError: a value outside these limits, or not a number.
    """

    max_retries: int = -1
    retry_delay_seconds: float = 5

    def __post_init__(self) -> None:
        check_int("RetryConfig.max_retries", self.max_retries, -1)
        check_delay("RetryConfig.retry_delay_seconds", self.retry_delay_seconds)


@dataclass(slots=True, frozen=True)
class ReconnectConfig:
    """How consumers wait between reconnect attempts: exponential backoff with jitter.

    :param initial_delay: the first delay, in seconds (finite, more than 0).
    :param max_delay: the ceiling the delays double up to (finite, ``initial_delay`` or more).
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        initial = check_seconds("ReconnectConfig.initial_delay", self.initial_delay, positive=True)
        ceiling = check_seconds("ReconnectConfig.max_delay", self.max_delay, positive=True)
        if ceiling < initial:
            raise ConfigurationError(
                f"ReconnectConfig.max_delay={shown(self.max_delay)} must be initial_delay "
                f"({shown(self.initial_delay)}) or more"
            )


#: Queue types ``QueueConfig.queue_type`` accepts.
QUEUE_TYPES = frozenset({"classic", "quorum"})

#: Bodies larger than this are dead-lettered unread (``QueueConfig.max_body_size``).
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class QueueConfig:
    """How a work queue is declared and consumed.

    :param prefetch_count: deliveries in flight at once, the handler concurrency (1-65,535).
    :param durable: declare the work, delay and dead-letter queues durable.
    :param max_body_size: larger bodies are dead-lettered without being parsed.
    :param grace_timeout: seconds that in-flight handlers get to finish on shutdown (finite).
    :param queue_type: ``None`` declares queues without a type (classic, and any existing
        queue is reused as is); ``"classic"`` or ``"quorum"`` declares the work, delay and
        dead-letter queues with that ``x-queue-type``.
    :param delivery_limit: quorum queues only: deliveries before the broker gives up on a
        message (``x-delivery-limit``); such messages go to the dead-letter queue.
    :param handler_timeout: seconds a handler may run before it is cancelled and the message
        fails with :class:`~eventrabbit.errors.HandlerTimeout` (retried, then dead-lettered);
        ``None``: no limit. Keep it below the broker's ``consumer_timeout``.
    :param ordered: one message at a time (it sets ``prefetch_count`` to 1), and failures
        retried in place so that nothing overtakes them (:mod:`eventrabbit.ordering`).
    :param on_exhausted: in-place retries ran out: ``"dead-letter"`` and go on, or ``"stop"``.
    :param single_active_consumer: ``x-single-active-consumer``: of several consumers one gets
        the messages, the next when it goes.
    :raises ConfigurationError: a value outside these limits, or of the wrong type.
    """

    prefetch_count: int = 10
    durable: bool = True
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    grace_timeout: float = 10.0
    queue_type: str | None = None
    delivery_limit: int | None = None
    handler_timeout: float | None = None
    ordered: bool = False
    on_exhausted: str = DEAD_LETTER
    single_active_consumer: bool = False

    def __post_init__(self) -> None:
        check_int("QueueConfig.prefetch_count", self.prefetch_count, 1, MAX_PREFETCH_COUNT)
        if check_ordering(self.ordered, self.on_exhausted, self.single_active_consumer):
            object.__setattr__(self, "prefetch_count", 1)  # the next only after this one's ack
        check_bool("QueueConfig.durable", self.durable)
        check_int("QueueConfig.max_body_size", self.max_body_size, 1)
        check_seconds("QueueConfig.grace_timeout", self.grace_timeout)
        if self.handler_timeout is not None:
            check_seconds("QueueConfig.handler_timeout", self.handler_timeout, positive=True)
        if self.queue_type is not None and (
            not isinstance(self.queue_type, str) or self.queue_type not in QUEUE_TYPES
        ):
            raise ConfigurationError(
                f"QueueConfig.queue_type={shown(self.queue_type)} must be None or one of "
                f"{sorted(QUEUE_TYPES)}"
            )
        if self.queue_type == "quorum" and not self.durable:
            raise ConfigurationError("quorum queues are always durable; leave durable=True")
        if self.delivery_limit is not None:
            if self.queue_type != "quorum":
                raise ConfigurationError("QueueConfig.delivery_limit needs queue_type='quorum'")
            check_int("QueueConfig.delivery_limit", self.delivery_limit, 1)


@dataclass(slots=True, frozen=True, repr=False)
class ConsumeChannel:
    """A queue to consume, and the exchange it is bound to. Its ``repr`` shows the URLs with
    their passwords replaced by ``******``.

    :param url: the broker's URL (``amqp://`` or ``amqps://``), or a list of the URLs of a
        cluster's nodes: the first that answers is used, the next on loss.
    :param queue_name: the work queue; declared if it does not exist. At most 249 bytes in
        UTF-8, so that its companions ``<queue_name>.delay`` and ``<queue_name>.dlq`` fit
        RabbitMQ's 255; not starting with ``amq.`` (reserved by RabbitMQ).
    :param exchange_name: bind the queue to this exchange; ``None`` binds nothing.
    :param exchange_type: declare the exchange with this type; ``None`` with a name means the
        exchange must already exist. Accepts :class:`ExchangeType`, a string or any enum whose
        value is one (aio-pika's ``ExchangeType``). An exchange that exists with this type is
        used as it is (durable or not, whatever its arguments); another type is a
        :class:`~eventrabbit.errors.TopologyError`.
    :param queue_config: this queue's settings; default: the one given to
        ``build_event_dependencies``.
    :param binding_keys: routing keys to bind with; default ``""`` for fanout/headers and the
        queue name for direct/topic and for an exchange named without a type.
    :param exchange_durable: keyword only; whether an exchange eventrabbit *creates* is
        durable. ``False`` creates it transient, as eventrabbit 0.1 did, so services still on
        0.1 (which insist on that) keep starting. An existing exchange is never changed.
    :raises ConfigurationError: a name over its limit, or a value of the wrong type.
    """

    url: str | Sequence[str]
    queue_name: str
    exchange_name: str | None = None
    exchange_type: ExchangeType | str | enum.Enum | None = None
    queue_config: QueueConfig | None = None
    binding_keys: tuple[str, ...] | str | None = field(default=None)
    exchange_durable: bool = field(default=True, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_urls("ConsumeChannel.url", self.url))
        check_queue_name("ConsumeChannel.queue_name", self.queue_name)
        if self.exchange_name is not None:
            check_name("ConsumeChannel.exchange_name", self.exchange_name)
        object.__setattr__(self, "exchange_type", coerce_exchange_type(self.exchange_type))
        if self.queue_config is not None and not isinstance(self.queue_config, QueueConfig):
            raise ConfigurationError(
                f"ConsumeChannel.queue_config={shown(self.queue_config)} must be a QueueConfig"
            )
        if self.binding_keys is not None:
            keys = check_binding_keys("ConsumeChannel.binding_keys", self.binding_keys)
            object.__setattr__(self, "binding_keys", keys)
        check_bool("ConsumeChannel.exchange_durable", self.exchange_durable)

    def __repr__(self) -> str:
        return censored_repr(self)

    @property
    def urls(self) -> tuple[str, ...]:
        """The broker URLs, in the order they are tried."""
        return urls_of(self.url)

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
