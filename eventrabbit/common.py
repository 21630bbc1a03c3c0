"""The value types of the public API: configuration, channels and replies.

The seed API imports :class:`ConsumeChannel` from this module, so it keeps that name and home.

Every value is checked when it is made, against the limits the broker (or the event loop)
would otherwise hit much later, inside ``consume``: a :class:`ConfigurationError` names the
field, the value and the limit.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from yarl import URL

from . import envelope
from .errors import ConfigurationError

#: Queue and exchange names and routing keys are AMQP short strings: at most 255 bytes.
MAX_NAME_BYTES = 255
#: Suffix of the queue that delays retries (see :mod:`eventrabbit.topology`).
DELAY_SUFFIX = ".delay"
#: Suffix of the dead-letter queue.
DEAD_LETTER_SUFFIX = ".dlq"
#: The longest queue name eventrabbit accepts: its companion queues must fit too.
MAX_QUEUE_NAME_BYTES = MAX_NAME_BYTES - max(len(DELAY_SUFFIX), len(DEAD_LETTER_SUFFIX))
#: basic.qos carries the prefetch count in 16 bits.
MAX_PREFETCH_COUNT = 65_535
#: The largest ``x-message-ttl`` in milliseconds: 2**32 - 1, the bound older RabbitMQ versions
#: enforce (``MAX_EXPIRY_TIMER``, from ``erlang:send_after``). RabbitMQ 3.10 accepts up to ten
#: years, but a delay queue must declare on every broker of a fleet.
MAX_TTL_MILLISECONDS = 2**32 - 1
#: The largest integer an AMQP field table holds (a signed 64-bit long-long).
MAX_TABLE_INTEGER = 2**63 - 1
#: Names RabbitMQ keeps for itself: declaring such a queue is refused.
RESERVED_PREFIX = "amq."
#: What a password is replaced with wherever a URL is shown.
CENSORED = "******"


def censor_url(url: str | URL) -> str:
    """The URL with its password replaced, fit for logs, reprs and exception messages.

    Never raises: a URL that cannot be parsed is not shown at all, since its password could not
    be found reliably.
    """
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return "<a URL that cannot be parsed, not shown>"
    if parsed.password is not None:
        parsed = parsed.with_password(CENSORED)
    return str(parsed)


def milliseconds(seconds: float) -> int:
    """Seconds as the whole milliseconds RabbitMQ's TTL arguments take."""
    return round(seconds * 1000)


# ---------------------------------------------------------------------------------------------
# Checks: each raises ConfigurationError naming ``where`` (e.g. ``QueueConfig.prefetch_count``),
# the value and the limit.


def _shown(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(where: str, value: object, minimum: int, maximum: int = MAX_TABLE_INTEGER) -> None:
    """An ``int`` (not a ``bool``) within ``minimum..maximum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{where}={_shown(value)} must be an int")
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{where}={_shown(value)} must be within {minimum}..{maximum}")


def check_seconds(where: str, value: object, *, positive: bool = False) -> float:
    """A finite, real number of seconds, ``> 0`` if ``positive`` else ``>= 0``; as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{where}={_shown(value)} must be a number of seconds")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ConfigurationError(f"{where}={_shown(value)} must be a finite number of seconds")
    if seconds < 0 or (positive and seconds == 0):
        limit = "more than 0" if positive else "0 or more"
        raise ConfigurationError(f"{where}={_shown(value)} must be {limit} seconds")
    return seconds


def check_name(where: str, value: object, maximum: int = MAX_NAME_BYTES, why: str = "") -> None:
    """A ``str`` of at most ``maximum`` bytes in UTF-8."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{where}={_shown(value)} must be a str")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigurationError(f"{where}={_shown(value)} cannot be encoded in UTF-8") from None
    if size > maximum:
        raise ConfigurationError(
            f"{where}={_shown(value)} is {size} bytes in UTF-8; the limit is {maximum}{why}"
        )


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
    :param retry_delay_seconds: the delay before each retry, done by the broker (a TTL queue):
        finite, ``0`` or more, and at most :data:`MAX_TTL_MILLISECONDS` ms (about 49.7 days).
    :raises ConfigurationError: a value outside these limits, or not a number.
    """

    max_retries: int = -1
    retry_delay_seconds: float = 5

    def __post_init__(self) -> None:
        check_int("RetryConfig.max_retries", self.max_retries, -1)
        delay = check_seconds("RetryConfig.retry_delay_seconds", self.retry_delay_seconds)
        if milliseconds(delay) > MAX_TTL_MILLISECONDS:
            raise ConfigurationError(
                f"RetryConfig.retry_delay_seconds={_shown(self.retry_delay_seconds)} exceeds the "
                f"broker's message TTL limit of {MAX_TTL_MILLISECONDS} ms "
                f"({MAX_TTL_MILLISECONDS / 1000} s)"
            )


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
                f"ReconnectConfig.max_delay={_shown(self.max_delay)} must be initial_delay "
                f"({_shown(self.initial_delay)}) or more"
            )


#: Queue types ``QueueConfig.queue_type`` accepts.
QUEUE_TYPES = frozenset({"classic", "quorum"})

#: Bodies larger than this are dead-lettered unread (``QueueConfig.max_body_size``).
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class QueueConfig:
    """How a work queue is declared and consumed.

    :param prefetch_count: deliveries in flight at once; also the handler concurrency
        (1 to 65,535).
    :param durable: declare the work, delay and dead-letter queues durable.
    :param max_body_size: larger bodies are dead-lettered without being parsed.
    :param grace_timeout: seconds that in-flight handlers get to finish on shutdown (finite).
    :param queue_type: ``None`` declares queues without a type (classic, and any existing
        queue is reused as is); ``"classic"`` or ``"quorum"`` declares the work, delay and
        dead-letter queues with that ``x-queue-type``.
    :param delivery_limit: quorum queues only: deliveries before the broker gives up on a
        message (``x-delivery-limit``); such messages go to the dead-letter queue.
    :raises ConfigurationError: a value outside these limits, or of the wrong type.
    """

    prefetch_count: int = 10
    durable: bool = True
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    grace_timeout: float = 10.0
    queue_type: str | None = None
    delivery_limit: int | None = None

    def __post_init__(self) -> None:
        check_int("QueueConfig.prefetch_count", self.prefetch_count, 1, MAX_PREFETCH_COUNT)
        if not isinstance(self.durable, bool):
            raise ConfigurationError(f"QueueConfig.durable={_shown(self.durable)} must be a bool")
        check_int("QueueConfig.max_body_size", self.max_body_size, 1)
        check_seconds("QueueConfig.grace_timeout", self.grace_timeout)
        if self.queue_type is not None and (
            not isinstance(self.queue_type, str) or self.queue_type not in QUEUE_TYPES
        ):
            raise ConfigurationError(
                f"QueueConfig.queue_type={_shown(self.queue_type)} must be None or one of "
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
    """A queue to consume, and the exchange it is bound to.

    Its ``repr`` shows the URLs with their passwords replaced by ``******``.

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
        0.1 (which insist on a transient exchange) keep starting. An existing exchange is never
        changed.
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
        self._check_urls()
        self._check_queue_name()
        if self.exchange_name is not None:
            check_name("ConsumeChannel.exchange_name", self.exchange_name)
        object.__setattr__(self, "exchange_type", coerce_exchange_type(self.exchange_type))
        if self.queue_config is not None and not isinstance(self.queue_config, QueueConfig):
            raise ConfigurationError(
                f"ConsumeChannel.queue_config={_shown(self.queue_config)} must be a QueueConfig"
            )
        keys = self.binding_keys
        if keys is not None:
            keys = (keys,) if isinstance(keys, str) else _as_tuple("binding_keys", keys)
            for key in keys:
                check_name("ConsumeChannel.binding_keys[...]", key)
            object.__setattr__(self, "binding_keys", keys)
        if not isinstance(self.exchange_durable, bool):
            raise ConfigurationError(
                f"ConsumeChannel.exchange_durable={_shown(self.exchange_durable)} must be a bool"
            )

    def _check_urls(self) -> None:
        # Only the types here: whether a scheme has a transport is known when consume starts
        # (eventrabbit.testing registers memory:// on import). Never show a URL: it may hold a
        # password in a form censor_url cannot find.
        if not isinstance(self.url, str):
            urls = _as_tuple("url", self.url, show=False)
            if not urls or not all(isinstance(one, str) for one in urls):
                raise ConfigurationError("ConsumeChannel.url must be a str or a list of them")
            object.__setattr__(self, "url", urls)

    def _check_queue_name(self) -> None:
        name = self.queue_name
        check_name(
            "ConsumeChannel.queue_name",
            name,
            MAX_QUEUE_NAME_BYTES,
            f" ({MAX_NAME_BYTES} less the {DELAY_SUFFIX!r} suffix of its delay queue)",
        )
        if not name:
            raise ConfigurationError("ConsumeChannel.queue_name='' must not be empty")
        if name.startswith(RESERVED_PREFIX):
            raise ConfigurationError(
                f"ConsumeChannel.queue_name={_shown(name)} starts with {RESERVED_PREFIX!r}, "
                "which RabbitMQ reserves for itself"
            )

    def __repr__(self) -> str:
        shown = []
        for one in fields(self):
            value = getattr(self, one.name)
            if one.name == "url":
                censored = [censor_url(u) for u in self.urls]
                value = censored[0] if isinstance(self.url, str) else tuple(censored)
            shown.append(f"{one.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

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


def _as_tuple(name: str, value: object, *, show: bool = True) -> tuple[Any, ...]:
    try:
        return tuple(value)  # type: ignore[arg-type]
    except TypeError:
        shown = f"={_shown(value)}" if show else f" of type {type(value).__name__}"
        raise ConfigurationError(f"ConsumeChannel.{name}{shown} must be a str or a list") from None


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
