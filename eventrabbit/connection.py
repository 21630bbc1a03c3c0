"""Connections to the broker: opening them, sharing them, and backing off between attempts.

Consumers of one ``handle`` that name the same URL share one AMQP connection (a channel each);
the publisher of one ``events`` has a connection of its own. URLs are censored before they
reach a log line or an exception.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence

import aiormq
import aiormq.abc
from yarl import URL

from .errors import BrokerUnavailable, ConfigurationError

log = logging.getLogger(__name__)

#: Seconds to wait for the broker to accept a connection before giving up on one attempt.
CONNECT_TIMEOUT = 10.0
_SCHEMES = frozenset({"amqp", "amqps", "memory"})
#: The scheme of eventrabbit.testing's in-memory broker.
MEMORY_SCHEME = "memory"


def censor(url: str | URL) -> str:
    """The URL with its password replaced, fit for logs and exception messages."""
    parsed = URL(url)
    if parsed.password is not None:
        parsed = parsed.with_password("******")
    return str(parsed)


def check_url(url: str) -> None:
    """Refuse a URL aiormq cannot use, before any connection is tried.

    :raises ConfigurationError: not an ``amqp://``, ``amqps://`` or ``memory://`` URL, or one
        without a host. The message never quotes the URL: a malformed one may not even be
        recognisable as holding a password, so it cannot be censored reliably.
    """
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        raise ConfigurationError("not a valid broker URL (the URL is not shown)") from None
    if parsed.scheme not in _SCHEMES:
        raise ConfigurationError(
            "a broker URL must start with amqp://, amqps:// or memory:// (the URL is not shown)"
        )
    if parsed.scheme != MEMORY_SCHEME and not parsed.host:
        raise ConfigurationError(
            f"a broker URL must name a host, as in {parsed.scheme}://user:password@host:port/vhost"
        )


class _Connection(aiormq.Connection):
    # Give up on a silent peer after one heartbeat timeout (plus a second) instead of
    # aiormq's three, so a dead node is noticed within two heartbeat intervals.
    HEARTBEAT_GRACE_MULTIPLIER = 1


def as_urls(url: str | Sequence[str]) -> tuple[str, ...]:
    """One URL or a cluster's list of them, checked, as a tuple.

    :raises ConfigurationError: an empty list or a URL that is not amqp:// or amqps://.
    """
    urls = (url,) if isinstance(url, str) else tuple(url)
    if not urls:
        raise ConfigurationError("give at least one broker URL")
    for one in urls:
        check_url(one)
    return urls


#: Where ``amqp://`` connections go instead, while eventrabbit.testing redirects them.
_redirect_url: str | None = None


def redirect(url: str | None) -> str | None:
    """Send every new ``amqp://`` / ``amqps://`` connection to ``url`` (``None``: stop).

    The seam eventrabbit.testing uses to run a service built with a real URL on its in-memory
    broker. Returns the previous redirect so it can be restored.
    """
    global _redirect_url
    previous, _redirect_url = _redirect_url, url
    return previous


async def open_connection(url: str) -> aiormq.abc.AbstractConnection:
    """Open one AMQP connection.

    :raises BrokerUnavailable: the broker did not accept it; the message names the censored URL.
    """
    if _redirect_url is not None and not url.startswith(MEMORY_SCHEME + ":"):
        url = _redirect_url
    if url.startswith(MEMORY_SCHEME + ":"):
        from .testing.transport import connect_memory  # only tests need it

        return await connect_memory(url)
    connection = _Connection(url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await connection.connect()
            return connection
    except (OSError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
        safe = censor(url)
        reason = str(exc).replace(url, safe) or type(exc).__name__
        raise BrokerUnavailable(f"cannot connect to {safe}: {reason}", url=safe) from None


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
            except BrokerUnavailable as exc:
                errors.append(str(exc))
                continue
            self._start = (index + 1) % count
            log.info("connected to %s", censor(self.urls[index]))
            return connection
        raise BrokerUnavailable("; ".join(errors), url=str(self))


class ConnectionPool:
    """One open connection per broker (URL or URL list), reopened on demand after a loss."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, ...], aiormq.abc.AbstractConnection] = {}
        self._endpoints: dict[tuple[str, ...], Endpoints] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}

    async def get(self, urls: tuple[str, ...]) -> aiormq.abc.AbstractConnection:
        """The open connection to ``urls``, opening one if there is none."""
        connection = self._connections.get(urls)
        if connection is not None and not connection.is_closed:
            return connection
        async with self._locks.setdefault(urls, asyncio.Lock()):
            connection = self._connections.get(urls)
            if connection is None or connection.is_closed:
                endpoints = self._endpoints.setdefault(urls, Endpoints(urls))
                connection = await endpoints.connect()
                self._connections[urls] = connection
            return connection

    @property
    def open_count(self) -> int:
        """How many of the connections are open."""
        return sum(not c.is_closed for c in self._connections.values())

    async def close(self) -> None:
        """Close every connection."""
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            if not connection.is_closed:
                await connection.close()


class OwnChannel:
    """A connection of one's own with one confirm-mode channel, opened on first use and
    reopened after a loss. The publisher and the RPC client each hold one.

    :param on_connect: called after a new connection opened.
    :param on_channel: awaited with each new channel before it is used.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        on_connect: Callable[[], None] | None = None,
        on_channel: Callable[[aiormq.abc.AbstractChannel], Awaitable[None]] | None = None,
    ) -> None:
        self.endpoints = Endpoints(url)
        self._on_connect = on_connect
        self._on_channel = on_channel
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """Whether the connection is open now."""
        return self._connection is not None and not self._connection.is_closed

    @property
    def open_channel(self) -> aiormq.abc.AbstractChannel | None:
        """The channel if it is open now, else ``None``."""
        channel = self._channel
        return channel if channel is not None and not channel.is_closed else None

    async def get(self) -> aiormq.abc.AbstractChannel:
        """The open channel, connecting and opening one first if needed.

        :raises BrokerUnavailable: no node answered.
        """
        channel = self.open_channel
        if channel is not None:
            return channel
        async with self._lock:
            channel = self.open_channel
            if channel is None:
                if not self.connected:
                    self._connection = await self.endpoints.connect()
                    if self._on_connect is not None:
                        self._on_connect()
                assert self._connection is not None
                channel = await self._connection.channel(publisher_confirms=True)
                if self._on_channel is not None:
                    await self._on_channel(channel)
                self._channel = channel
            return channel

    def detach(self) -> aiormq.abc.AbstractConnection | None:
        """Forget the connection (the next :meth:`get` opens a new one) and return it."""
        connection, self._connection, self._channel = self._connection, None, None
        return connection

    async def close(self) -> None:
        """Close the connection; the next :meth:`get` opens a new one."""
        await close_connection(self.detach())


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
