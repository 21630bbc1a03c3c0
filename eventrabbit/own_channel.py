"""A connection of one's own with one confirm-mode channel: what the publisher and the RPC
client each hold, opened on first use and reopened after a loss.

What happens to the connection is told to ``on_change(state, reason)``: ``connected`` when it
opens (``reconnected`` when it opens after a loss), ``lost`` when it closes without being
asked to, ``blocked``/``unblocked`` by the broker's resource alarms. Closing it on purpose (an
idle timeout, ``close``) is not a loss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import aiormq.abc

from .amqp_connection import watch_blocked
from .connection import CHANNEL_GONE, Endpoints, close_connection, server_of
from .errors import ChannelLost
from .observed import ConnectionState

#: Told what happened to the connection, and why (a loss's or a block's reason).
OnChange = Callable[[ConnectionState, str | None], None]


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
        on_change: OnChange | None = None,
    ) -> None:
        self.endpoints = Endpoints(url)
        self._on_connect = on_connect
        self._on_channel = on_channel
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self._on_change = on_change
        self._lost = False

    @property
    def connected(self) -> bool:
        """Whether the connection is open now."""
        return self._connection is not None and not self._connection.is_closed

    @property
    def server(self) -> tuple[str | None, int | None]:
        """The host and port of the open connection; ``(None, None)`` when none is open."""
        return server_of(self._connection if self.connected else None)

    @property
    def open_channel(self) -> aiormq.abc.AbstractChannel | None:
        """The channel if it is open now, else ``None``."""
        channel = self._channel
        return channel if channel is not None and not channel.is_closed else None

    async def get(self) -> aiormq.abc.AbstractChannel:
        """The open channel, connecting and opening one first if needed.

        :raises BrokerUnavailable: no node answered.
        :raises ChannelLost: the connection went while the channel was being opened.
        """
        channel = self.open_channel
        if channel is not None:
            return channel
        async with self._lock:
            channel = self.open_channel
            if channel is None:
                if not self.connected:
                    self._connection = await self.endpoints.connect()
                    self._watch(self._connection)
                    if self._on_connect is not None:
                        self._on_connect()
                assert self._connection is not None
                try:
                    channel = await self._connection.channel(publisher_confirms=True)
                    if self._on_channel is not None:
                        await self._on_channel(channel)
                except CHANNEL_GONE as exc:
                    # The connection went while the channel opened (the broker closed it):
                    # a loss like any other, which the caller retries on a new connection.
                    raise ChannelLost(f"the channel could not be opened: {exc!r}") from exc
                self._channel = channel
            return channel

    def _watch(self, connection: aiormq.abc.AbstractConnection) -> None:
        tell = self._on_change
        if tell is None:
            return
        tell(ConnectionState.RECONNECTED if self._lost else ConnectionState.CONNECTED, None)
        self._lost = False

        def blocked(reason: str | None) -> None:
            state = ConnectionState.UNBLOCKED if reason is None else ConnectionState.BLOCKED
            tell(state, reason)

        unwatch = watch_blocked(connection, blocked)

        def closed(future: asyncio.Future[object]) -> None:
            unwatch()
            if connection is not self._connection:
                return  # detached first: closed on purpose
            self._lost = True
            error = None if future.cancelled() else future.exception()
            tell(ConnectionState.LOST, str(error or "the connection closed"))

        connection.closing.add_done_callback(closed)

    def detach(self) -> aiormq.abc.AbstractConnection | None:
        """Forget the connection (the next :meth:`get` opens a new one) and return it."""
        connection, self._connection, self._channel = self._connection, None, None
        return connection

    async def close(self) -> None:
        """Close the connection; the next :meth:`get` opens a new one."""
        await close_connection(self.detach())
