"""Capture streams: the :class:`StreamChannel` value, its declare arguments, and where a
replay starts and stops. Pure: no I/O.

Theory of operation
-------------------
- **Capture.** A RabbitMQ stream (``x-queue-type: stream``, 3.9+) bound to an exchange keeps
  every event published to it, append-only, whether or not anyone reads it; producers do not
  change. Retention is by age (``x-max-age``) and size (``x-max-length-bytes``), both applied
  a whole segment at a time.
- **Offsets.** Every message in a stream has an offset, 0 for the first ever written. A reader
  asks for one with the consumer argument ``x-stream-offset``: ``"first"``, ``"last"`` (the
  last *chunk*), ``"next"``, an integer, or an AMQP timestamp (whole seconds). The broker
  starts at a chunk boundary, so deliveries *before* an integer offset may arrive: the reader
  skips them (:func:`wanted`).
- **Time.** pamqp encodes a ``datetime`` as a timestamp; a naive one would be taken as local
  time, so only timezone-aware ones are accepted, and a ``timedelta`` means that long ago.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .checks import (
    MAX_PREFETCH_COUNT,
    censored_repr,
    check_binding_keys,
    check_bool,
    check_int,
    check_name,
    check_queue_name,
    check_urls,
    shown,
    urls_of,
)
from .common import ExchangeType, coerce_exchange_type
from .errors import ConfigurationError

#: The declare argument that makes a queue a stream.
QUEUE_TYPE_ARGUMENT = "x-queue-type"
#: The consumer argument naming where to start, and the header naming each delivery's offset.
OFFSET_ARGUMENT = "x-stream-offset"
#: Retention by age: a number and a unit, Y M D h m s.
MAX_AGE_ARGUMENT = "x-max-age"
#: Retention by size, in bytes.
MAX_LENGTH_BYTES_ARGUMENT = "x-max-length-bytes"
#: The size of the segment files retention removes whole.
SEGMENT_SIZE_ARGUMENT = "x-stream-max-segment-size-bytes"

_MAX_AGE = re.compile(r"[1-9][0-9]*[YMDhms]")

#: Where a replay may start.
Start = Literal["first", "last", "next"] | int | datetime | timedelta
#: Where a replay stops: caught up (``"idle"``), after an offset, before a time, or never.
Stop = Literal["idle"] | int | datetime | None
_NAMED_STARTS = ("first", "last", "next")


@dataclass(slots=True, frozen=True, repr=False)
class StreamChannel:
    """A stream that captures the events of an exchange, and how to read it.

    :param url: the broker's URL, or a list of a cluster's node URLs.
    :param stream_name: the stream; declared if it does not exist. Failed events of a replay
        go to ``<stream_name>.dlq`` (when asked to), so the name has the limits of a queue's.
    :param exchange_name: bind the stream to this exchange; ``None`` binds nothing.
    :param exchange_type: declare the exchange with this type; ``None`` with a name means it
        must exist.
    :param binding_keys: routing keys to bind with; default ``"#"`` for a topic exchange (every
        event), ``""`` for the others.
    :param max_age: keep events this long: a ``timedelta`` or RabbitMQ's form (``"7D"``,
        ``"12h"``); ``None``: no limit by age.
    :param max_length_bytes: keep at most this many bytes; ``None``: no limit by size.
    :param max_segment_size_bytes: the segment size (retention removes whole segments).
    :param prefetch_count: deliveries the broker sends ahead of the reader (a stream consumer
        must have one).
    :raises ConfigurationError: a value outside its limits.
    """

    url: str | Sequence[str]
    stream_name: str
    exchange_name: str | None = None
    exchange_type: ExchangeType | str | enum.Enum | None = None
    binding_keys: tuple[str, ...] | str | None = None
    max_age: timedelta | str | None = None
    max_length_bytes: int | None = None
    max_segment_size_bytes: int | None = None
    prefetch_count: int = 500
    exchange_durable: bool = field(default=True, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_urls("StreamChannel.url", self.url))
        check_queue_name("StreamChannel.stream_name", self.stream_name)
        if self.exchange_name is not None:
            check_name("StreamChannel.exchange_name", self.exchange_name)
        object.__setattr__(self, "exchange_type", coerce_exchange_type(self.exchange_type))
        if self.binding_keys is not None:
            keys = check_binding_keys("StreamChannel.binding_keys", self.binding_keys)
            object.__setattr__(self, "binding_keys", keys)
        if self.max_age is not None:
            max_age_argument(self.max_age)  # raises for a bad one
        for name in ("max_length_bytes", "max_segment_size_bytes"):
            if getattr(self, name) is not None:
                check_int(f"StreamChannel.{name}", getattr(self, name), 1)
        check_int("StreamChannel.prefetch_count", self.prefetch_count, 1, MAX_PREFETCH_COUNT)
        check_bool("StreamChannel.exchange_durable", self.exchange_durable)

    def __repr__(self) -> str:
        return censored_repr(self)

    @property
    def urls(self) -> tuple[str, ...]:
        """The broker URLs, in the order they are tried."""
        return urls_of(self.url)

    def routing_keys(self) -> tuple[str, ...]:
        """The routing keys the stream is bound with."""
        if isinstance(self.binding_keys, tuple):
            return self.binding_keys
        return ("#",) if self.exchange_type == ExchangeType.TOPIC else ("",)


def max_age_argument(value: timedelta | str) -> str:
    """``x-max-age`` for ``value``: a ``timedelta`` in whole seconds, or a string checked.

    :raises ConfigurationError: not positive, or not a number with one of the units Y M D h m s.
    """
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        if seconds < 1:
            raise ConfigurationError(f"StreamChannel.max_age={shown(value)} must be 1 s or more")
        return f"{seconds}s"
    if isinstance(value, str) and _MAX_AGE.fullmatch(value):
        return value
    raise ConfigurationError(
        f"StreamChannel.max_age={shown(value)} must be a timedelta or a string such as '7D', "
        "'12h', '30m' (units Y M D h m s)"
    )


def stream_arguments(channel: StreamChannel) -> dict[str, Any]:
    """The declare arguments of ``channel``'s stream: its type and retention."""
    arguments: dict[str, Any] = {QUEUE_TYPE_ARGUMENT: "stream"}
    if channel.max_age is not None:
        arguments[MAX_AGE_ARGUMENT] = max_age_argument(channel.max_age)
    if channel.max_length_bytes is not None:
        arguments[MAX_LENGTH_BYTES_ARGUMENT] = channel.max_length_bytes
    if channel.max_segment_size_bytes is not None:
        arguments[SEGMENT_SIZE_ARGUMENT] = channel.max_segment_size_bytes
    return arguments


def aware(value: datetime, where: str) -> datetime:
    """``value`` if it is timezone-aware.

    :raises ConfigurationError: a naive datetime (pamqp would encode it as local time).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigurationError(
            f"{where}={shown(value)} is a naive datetime; give it a timezone, e.g. "
            "datetime.now(UTC) - timedelta(hours=1)"
        )
    return value


def offset_argument(start: Start, now: datetime | None = None) -> str | int | datetime:
    """The ``x-stream-offset`` consumer argument for ``start``.

    :param now: the current time, for a ``timedelta`` (default: now).
    :raises ConfigurationError: an unknown name, a negative offset, a naive datetime, a
        negative timedelta, or another type.
    """
    if isinstance(start, str):
        if start in _NAMED_STARTS:
            return start
    elif isinstance(start, bool):
        pass
    elif isinstance(start, int):
        check_int("start", start, 0)
        return start
    elif isinstance(start, datetime):
        return aware(start, "start")
    elif isinstance(start, timedelta):
        if start < timedelta(0):
            raise ConfigurationError(f"start={shown(start)} must not be negative (it means ago)")
        return (now or datetime.now(UTC)) - start
    raise ConfigurationError(
        f"start={shown(start)} must be 'first', 'last', 'next', an offset (int), a "
        "timezone-aware datetime or a timedelta (that long ago)"
    )


def check_stop(stop: Stop) -> Stop:
    """``stop`` if it is one a replay understands.

    :raises ConfigurationError: anything but ``"idle"``, an offset, an aware datetime or None.
    """
    if stop is None or stop == "idle":
        return stop
    if isinstance(stop, int) and not isinstance(stop, bool):
        check_int("stop", stop, 0)
        return stop
    if isinstance(stop, datetime):
        return aware(stop, "stop")
    raise ConfigurationError(
        f"stop={shown(stop)} must be 'idle', an offset (int), a timezone-aware datetime or None"
    )


def wanted(offset: int, first: int | None) -> bool:
    """Whether a delivery at ``offset`` is to be handled, when ``first`` is the lowest offset
    wanted (``None``: whatever comes first). Earlier ones are the rest of a chunk the broker
    started at, or what a reconnect delivers again."""
    return first is None or offset >= first


def past(offset: int, timestamp: datetime | None, stop: Stop) -> bool:
    """Whether the event at ``offset`` (published at ``timestamp``) lies beyond ``stop``, so
    the replay ends before handling it. An event without a timestamp never passes a time."""
    if isinstance(stop, int):
        return offset > stop
    if isinstance(stop, datetime) and timestamp is not None:
        stamp = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
        return stamp > stop
    return False


def offset_of(headers: dict[str, Any] | None) -> int | None:
    """The offset a delivery's ``x-stream-offset`` header names; ``None`` without one."""
    value = headers.get(OFFSET_ARGUMENT) if headers else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
