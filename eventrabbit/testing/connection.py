"""The in-memory connection: the part of aiormq's ``Connection`` API that eventrabbit uses.

A :class:`MemoryConnection` lives on the event loop that opened it and is connected to one
:class:`~eventrabbit.testing.MemoryBroker`; it opens :class:`~.channel.MemoryChannel` s and
closes with them. Its exclusive queues go when it closes; the broker closes it when its
event loop has ended (:mod:`.connections`).
"""

from __future__ import annotations

import asyncio
import itertools

from yarl import URL

from .broker import MemoryBroker
from .channel import MemoryChannel
from .closable import Closable


class MemoryConnection(Closable):
    """A connection to a :class:`~eventrabbit.testing.MemoryBroker`."""

    #: Like RabbitMQ: every channel may be put in confirm mode.
    publisher_confirms = True

    def __init__(self, broker: MemoryBroker, url: str) -> None:
        super().__init__(asyncio.get_running_loop())
        self.broker = broker
        self.url = URL(url)
        self.channels: dict[int, MemoryChannel] = {}
        self._numbers = itertools.count(1)

    def __str__(self) -> str:
        return str(self.url)

    def __repr__(self) -> str:
        return f'<MemoryConnection: "{self.url}">'

    @property
    def is_opened(self) -> bool:
        """Whether the connection is open (aiormq's name for ``not is_closed``)."""
        return not self.is_closed

    @property
    def loop_is_closed(self) -> bool:
        """Whether the event loop this connection was opened on is closed."""
        return self.loop.is_closed()

    async def channel(
        self,
        channel_number: int | None = None,
        publisher_confirms: bool = True,
        frame_buffer_size: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (aiormq's signature; nothing waits)
        on_return_raises: bool = True,
    ) -> MemoryChannel:
        """Open a channel; ``publisher_confirms`` makes ``basic_publish`` return a confirm.

        :raises RuntimeError: the connection is closed (as aiormq).
        """
        if self.is_closed:
            raise RuntimeError(f"{self!r} closed")
        number = channel_number or next(self._numbers)
        channel = MemoryChannel(
            self, number, publisher_confirms=publisher_confirms, on_return_raises=on_return_raises
        )
        self.channels[number] = channel
        return channel

    def forget_channel(self, channel: MemoryChannel) -> None:
        """A channel closed."""
        if self.channels.get(channel.number) is channel:
            del self.channels[channel.number]

    def shutdown(self, reason: BaseException) -> None:
        """Close now, with every channel, for ``reason`` (e.g. the broker dropped it)."""
        if not self._mark_closed(reason):
            return
        for channel in list(self.channels.values()):
            channel.shutdown(reason)
        self.broker.connections.forget(self)

    async def close(
        self,
        exc: BaseException | type[BaseException] | None = asyncio.CancelledError,
        timeout: float | None = None,  # noqa: ASYNC109 (aiormq's signature)
    ) -> None:
        """Close the connection and its channels; waits for their callback tasks to end."""
        if self.is_closed:
            return
        reason = exc() if isinstance(exc, type) else exc
        channels = list(self.channels.values())
        tasks = [task for channel in channels for task in channel.pending_tasks()]
        self.shutdown(reason or asyncio.CancelledError())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
