"""The consumer connections of one ``handle``: one per broker, shared while it has users.

Consumers of one ``handle`` that name the same URL (or URL list) share one AMQP connection, a
channel each. Every ``consume`` *joins* the pool for its URLs when it starts and *leaves* when
it ends; the connection is opened on first use, reopened after a loss, and closed when its
last user leaves — so a service that only cancels its ``consume`` tasks leaves nothing open.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiormq.abc

from .connection import Endpoints, close_connection

log = logging.getLogger(__name__)

#: Seconds closing a connection may take: aiormq waits for the delivery tasks it cancels, and
#: a handler that swallows its cancellation would hold the close forever.
CLOSE_TIMEOUT = 2.0


@dataclass(slots=True, eq=False)
class _Shared:
    """One broker's connection and the consumers using it."""

    endpoints: Endpoints
    users: int = 0
    connection: aiormq.abc.AbstractConnection | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ConnectionPool:
    """One connection per broker (URL or URL list), counted by its users."""

    def __init__(self) -> None:
        self._shared: dict[tuple[str, ...], _Shared] = {}

    def join(self, urls: tuple[str, ...]) -> None:
        """A consumer of ``urls`` starts; :meth:`leave` must follow."""
        shared = self._shared.get(urls)
        if shared is None:
            shared = self._shared[urls] = _Shared(Endpoints(urls))
        shared.users += 1

    async def leave(self, urls: tuple[str, ...]) -> None:
        """A consumer of ``urls`` ended; the last one closes the connection."""
        shared = self._shared.get(urls)
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            # Forgotten first: a consumer that joins meanwhile opens a connection of its own.
            del self._shared[urls]
            await _close(shared)

    async def get(self, urls: tuple[str, ...]) -> aiormq.abc.AbstractConnection:
        """The open connection to ``urls``, opening one if there is none.

        :raises BrokerUnavailable: no node answered.
        :raises LookupError: nobody joined for ``urls``.
        """
        shared = self._shared.get(urls)
        if shared is None:
            raise LookupError("join the pool before asking it for a connection")
        connection = shared.connection
        if connection is not None and not connection.is_closed:
            return connection
        async with shared.lock:
            connection = shared.connection
            if connection is None or connection.is_closed:
                connection = shared.connection = await shared.endpoints.connect()
            return connection

    @property
    def open_count(self) -> int:
        """How many of the connections are open."""
        return sum(
            s.connection is not None and not s.connection.is_closed for s in self._shared.values()
        )

    async def close(self) -> None:
        """Close every connection (their users reconnect if they still run)."""
        for shared in list(self._shared.values()):
            await _close(shared)


async def _close(shared: _Shared) -> None:
    connection, shared.connection = shared.connection, None
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await close_connection(connection)
    except TimeoutError:
        log.error(
            "closing the connection to %s took over %s s; abandoned",
            shared.endpoints,
            CLOSE_TIMEOUT,
        )
