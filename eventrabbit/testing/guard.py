"""What a broker error does to an in-memory channel: the :class:`Guard` every call of a
channel into the broker goes through.

As with aiormq on RabbitMQ: a call on a closed channel raises ``ChannelInvalidStateError``;
a channel error the broker answers with (404, 405, 406, 403) closes the channel, and a
connection error (503) closes the whole connection; either way the call raises it and the
channel's ``closing`` carries it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aiormq.exceptions import AMQPChannelError, AMQPConnectionError, ChannelInvalidStateError

T = TypeVar("T")


class Closing(Protocol):
    """A channel or connection, as far as the guard closes it."""

    @property
    def is_closed(self) -> bool:
        """Whether it has closed."""
        ...

    def shutdown(self, reason: BaseException) -> None:
        """Close now, for ``reason``."""
        ...


class Guard:
    """Calls into the broker on behalf of one channel of ``connection``."""

    def __init__(self, channel: Closing, connection: Closing) -> None:
        self.channel = channel
        self.connection = connection

    def check_open(self) -> None:
        """:raises aiormq.exceptions.ChannelInvalidStateError: the channel is closed."""
        if self.channel.is_closed:
            raise ChannelInvalidStateError(f"{self.channel!r} closed")

    def __call__(self, method: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``method(*args, **kwargs)``, on an open channel; a broker error it raises closes
        the channel (or the connection) first."""
        self.check_open()
        try:
            return method(*args, **kwargs)
        except AMQPConnectionError as exc:
            self.connection.shutdown(exc)
            raise
        except AMQPChannelError as exc:
            self.channel.shutdown(exc)
            raise
