"""Connections to the broker: opening them, sharing them, and backing off between attempts.

Consumers of one ``handle`` that name the same URL share one AMQP connection (a channel each);
the publisher of one ``events`` has a connection of its own. URLs are censored before they
reach a log line or an exception.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator

import aiormq
import aiormq.abc
from yarl import URL

from .errors import BrokerUnavailable, ConfigurationError

log = logging.getLogger(__name__)

#: Seconds to wait for the broker to accept a connection before giving up on one attempt.
CONNECT_TIMEOUT = 10.0
_SCHEMES = frozenset({"amqp", "amqps"})


def censor(url: str | URL) -> str:
    """The URL with its password replaced, fit for logs and exception messages."""
    parsed = URL(url)
    if parsed.password is not None:
        parsed = parsed.with_password("******")
    return str(parsed)


def check_url(url: str) -> None:
    """Refuse a URL aiormq cannot use, before any connection is tried.

    :raises ConfigurationError: not an ``amqp://`` or ``amqps://`` URL.
    """
    try:
        scheme = URL(url).scheme
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"not a broker URL: {exc}") from None
    if scheme not in _SCHEMES:
        raise ConfigurationError(f"broker URL {censor(url)!r} must start with amqp:// or amqps://")


async def open_connection(url: str) -> aiormq.abc.AbstractConnection:
    """Open one AMQP connection.

    :raises BrokerUnavailable: the broker did not accept it; the message names the censored URL.
    """
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            return await aiormq.connect(url)
    except (OSError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
        safe = censor(url)
        reason = str(exc).replace(url, safe) or type(exc).__name__
        raise BrokerUnavailable(f"cannot connect to {safe}: {reason}", url=safe) from None


class ConnectionPool:
    """One open connection per URL, reopened on demand after it is lost."""

    def __init__(self) -> None:
        self._connections: dict[str, aiormq.abc.AbstractConnection] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, url: str) -> aiormq.abc.AbstractConnection:
        """The open connection for ``url``, opening it if there is none."""
        connection = self._connections.get(url)
        if connection is not None and not connection.is_closed:
            return connection
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            connection = self._connections.get(url)
            if connection is None or connection.is_closed:
                connection = await open_connection(url)
                self._connections[url] = connection
                log.info("connected to %s", censor(url))
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


def backoff(initial: float = 0.5, maximum: float = 30.0) -> Iterator[float]:
    """Exponential delays with jitter.

    Each is ``uniform(c / 2, c)`` where ``c = min(maximum, initial * 2**n)``.
    """
    ceiling = initial
    while True:
        yield random.uniform(ceiling / 2, ceiling)
        ceiling = min(maximum, ceiling * 2)
