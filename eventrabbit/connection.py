"""Connections to the broker: which transport a URL's scheme uses, opening connections, the
nodes of a cluster, a channel of one's own, and backing off between attempts.

Theory of operation
-------------------
A URL's scheme picks a *transport*: the coroutine that opens a connection for it. The table
starts with ``amqp`` and ``amqps`` (aiormq over TCP/TLS); other packages register more
(:func:`register_transport`), and a test double can override ``amqp`` for a while — the core
never imports a transport it does not own. URLs are censored before they reach a log line or
an exception.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence

import aiormq
import aiormq.abc
from yarl import URL

from .amqp_connection import connect_amqp
from .checks import censor_url
from .errors import AccessRefused, BrokerUnavailable, ConfigurationError

log = logging.getLogger(__name__)

#: The schemes aiormq connects to: these URLs must name a host.
AMQP_SCHEMES = ("amqp", "amqps")

#: Errors of a channel or connection that is gone: its unacked deliveries are requeued by the
#: broker, and a reconnect can cure it.
CHANNEL_GONE = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
)

#: Opens a connection for a URL: the entry of one scheme in the transport table.
Transport = Callable[[str], Awaitable[aiormq.abc.AbstractConnection]]


#: The URL with its password replaced, fit for logs and exception messages.
censor = censor_url


def check_url(url: str) -> None:
    """Refuse a URL no transport can use, before any connection is tried.

    :raises ConfigurationError: a scheme without a transport (``amqp://`` and ``amqps://``
        always have one), or an AMQP URL without a host. The message never quotes the URL: a
        malformed one may not even be recognisable as holding a password, so it cannot be
        censored reliably.
    """
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        raise ConfigurationError("not a valid broker URL (the URL is not shown)") from None
    if parsed.scheme not in _transports:
        raise _unknown_scheme()
    if parsed.scheme in AMQP_SCHEMES and not parsed.host:
        raise ConfigurationError(
            f"a broker URL must name a host, as in {parsed.scheme}://user:password@host:port/vhost"
        )


def _unknown_scheme() -> ConfigurationError:
    schemes = ", ".join(f"{scheme}://" for scheme in sorted(_transports))
    return ConfigurationError(f"a broker URL must start with {schemes} (the URL is not shown)")


def as_urls(url: str | Sequence[str]) -> tuple[str, ...]:
    """One URL or a cluster's list of them, checked, as a tuple.

    :raises ConfigurationError: an empty list or a URL no transport can use.
    """
    urls = (url,) if isinstance(url, str) else tuple(url)
    if not urls:
        raise ConfigurationError("give at least one broker URL")
    for one in urls:
        check_url(one)
    return urls


_transports: dict[str, Transport] = dict.fromkeys(AMQP_SCHEMES, connect_amqp)


def register_transport(scheme: str, transport: Transport | None) -> Transport | None:
    """Make URLs of ``scheme`` connect through ``transport``; ``None`` removes the entry.

    Returns the entry it replaced, so an override can be undone: ``eventrabbit.testing``
    registers ``memory`` when it is imported, and its ``redirect_amqp`` overrides ``amqp`` and
    ``amqps`` for the length of a block.
    """
    previous = _transports.pop(scheme, None)
    if transport is not None:
        _transports[scheme] = transport
    return previous


async def open_connection(url: str) -> aiormq.abc.AbstractConnection:
    """Open one connection through the transport of the URL's scheme.

    :raises BrokerUnavailable: the broker did not accept it; the message names the censored URL.
    :raises ConfigurationError: no transport for the URL's scheme.
    """
    transport = _transports.get(URL(url).scheme)
    if transport is None:
        raise _unknown_scheme()
    return await transport(url)


class Endpoints:
    """The URLs of one broker or cluster, tried in turn.

    Each connect starts at the node after the one used last, so a connection lost with its
    node moves on to the next node instead of waiting for the dead one.
    """

    def __init__(self, url: str | Sequence[str]) -> None:
        self.urls = as_urls(url)
        self._start = 0

    def __str__(self) -> str:
        return ", ".join(censor(url) for url in self.urls)

    async def connect(self) -> aiormq.abc.AbstractConnection:
        """Connect to the first node that answers.

        :raises BrokerUnavailable: none did.
        """
        errors: list[str] = []
        count = len(self.urls)
        for offset in range(count):
            index = (self._start + offset) % count
            try:
                connection = await open_connection(self.urls[index])
            except AccessRefused:
                raise  # the same user is refused on every node of a cluster
            except BrokerUnavailable as exc:
                errors.append(str(exc))
                continue
            self._start = (index + 1) % count
            log.info("connected to %s", censor(self.urls[index]))
            return connection
        raise BrokerUnavailable("; ".join(errors), url=str(self))


def server_of(connection: aiormq.abc.AbstractConnection | None) -> tuple[str | None, int | None]:
    """The host and port ``connection`` is on (for hooks); ``(None, None)`` when unknown."""
    url = getattr(connection, "url", None)
    if not isinstance(url, URL):
        return None, None
    return url.host, url.port


async def close_connection(connection: aiormq.abc.AbstractConnection | None) -> None:
    """Close ``connection`` unless it is ``None`` or closed already."""
    if connection is not None and not connection.is_closed:
        await connection.close()


def backoff(initial: float, maximum: float) -> Iterator[float]:
    """Exponential delays with jitter.

    Each is ``uniform(c / 2, c)`` where ``c = min(maximum, initial * 2**n)``.
    """
    ceiling = initial
    while True:
        yield random.uniform(ceiling / 2, ceiling)
        ceiling = min(maximum, ceiling * 2)
