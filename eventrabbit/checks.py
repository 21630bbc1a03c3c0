"""Settings checked where they are made, against the limits the broker (or the event loop)
would otherwise hit much later, inside ``consume``; and URLs made fit to show.

Pure: every check raises :class:`ConfigurationError` naming the field (``where``, e.g.
``QueueConfig.prefetch_count``), the value and the limit, and nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from yarl import URL

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


def shown(value: object) -> str:
    """``value`` as a message quotes it: its repr, cut short."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(where: str, value: object, minimum: int, maximum: int = MAX_TABLE_INTEGER) -> None:
    """An ``int`` (not a ``bool``) within ``minimum..maximum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{where}={shown(value)} must be an int")
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{where}={shown(value)} must be within {minimum}..{maximum}")


def check_bool(where: str, value: object) -> None:
    """A ``bool``, not merely something truthy."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{where}={shown(value)} must be a bool")


def check_seconds(where: str, value: object, *, positive: bool = False) -> float:
    """A finite, real number of seconds, ``> 0`` if ``positive`` else ``>= 0``; as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{where}={shown(value)} must be a number of seconds")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ConfigurationError(f"{where}={shown(value)} must be a finite number of seconds")
    if seconds < 0 or (positive and seconds == 0):
        limit = "more than 0" if positive else "0 or more"
        raise ConfigurationError(f"{where}={shown(value)} must be {limit} seconds")
    return seconds


def check_delay(where: str, value: object) -> None:
    """Seconds that fit RabbitMQ's message TTL (``x-message-ttl``)."""
    if milliseconds(check_seconds(where, value)) > MAX_TTL_MILLISECONDS:
        raise ConfigurationError(
            f"{where}={shown(value)} exceeds the broker's message TTL limit of "
            f"{MAX_TTL_MILLISECONDS} ms ({MAX_TTL_MILLISECONDS / 1000} s)"
        )


def check_name(where: str, value: object, maximum: int = MAX_NAME_BYTES, why: str = "") -> str:
    """A ``str`` of at most ``maximum`` bytes in UTF-8; returned as such."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{where}={shown(value)} must be a str")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigurationError(f"{where}={shown(value)} cannot be encoded in UTF-8") from None
    if size > maximum:
        raise ConfigurationError(
            f"{where}={shown(value)} is {size} bytes in UTF-8; the limit is {maximum}{why}"
        )
    return value


def check_queue_name(where: str, value: object) -> None:
    """A queue name that fits with its companions' suffixes and is not reserved."""
    why = f" ({MAX_NAME_BYTES} less the {DELAY_SUFFIX!r} suffix of its delay queue)"
    name = check_name(where, value, MAX_QUEUE_NAME_BYTES, why)
    if not name:
        raise ConfigurationError(f"{where}='' must not be empty")
    if name.startswith(RESERVED_PREFIX):
        raise ConfigurationError(
            f"{where}={shown(name)} starts with {RESERVED_PREFIX!r}, which RabbitMQ reserves"
        )


def as_tuple(where: str, value: object, *, show: bool = True) -> tuple[Any, ...]:
    """A list (any iterable) as a tuple; ``show=False`` keeps the value out of the message."""
    try:
        return tuple(value)  # type: ignore[arg-type]
    except TypeError:
        quoted = f"={shown(value)}" if show else f" of type {type(value).__name__}"
        raise ConfigurationError(f"{where}{quoted} must be a str or a list") from None


def check_binding_keys(where: str, value: object) -> tuple[str, ...]:
    """One binding key or a list of them, as a tuple of checked names."""
    keys = as_tuple(where, (value,) if isinstance(value, str) else value)
    for key in keys:
        check_name(f"{where}[...]", key)
    return keys


def check_urls(where: str, value: object) -> str | tuple[str, ...]:
    """One URL or a non-empty list of them, as a str or a tuple.

    Only the types: whether a scheme has a transport is known when consume starts
    (``eventrabbit.testing`` registers ``memory://`` on import). Never shows a URL: it may hold
    a password in a form :func:`censor_url` cannot find.
    """
    if isinstance(value, str):
        return value
    urls = as_tuple(where, value, show=False)
    if not urls or not all(isinstance(one, str) for one in urls):
        raise ConfigurationError(f"{where} must be a str or a list of them")
    return urls


def urls_of(url: str | Sequence[str]) -> tuple[str, ...]:
    """A channel's broker URLs, in the order they are tried."""
    return (url,) if isinstance(url, str) else tuple(url)


def censored_repr(channel: Any) -> str:
    """A channel dataclass's repr with its ``url`` (one or a list) censored."""
    shown = []
    for one in fields(channel):
        value = getattr(channel, one.name)
        if one.name == "url":
            censored = tuple(censor_url(url) for url in urls_of(value))
            value = censored[0] if isinstance(value, str) else censored
        shown.append(f"{one.name}={value!r}")
    return f"{type(channel).__name__}({', '.join(shown)})"
