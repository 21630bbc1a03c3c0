"""The ``amqp``/``amqps`` transport: aiormq connections reading through eventrabbit's wire
reader, which also tell listeners when the broker blocks or unblocks them.

Theory of operation
-------------------
- **Decodable frames.** A connection reads through a :class:`~eventrabbit.wire.WireReader`, so
  a frame pamqp cannot decode gets a stand-in instead of ending the connection.
- **Refusals in words.** A refused login or vhost is an :class:`AccessRefused` that says which;
  anything else that stops a connect is :class:`BrokerUnavailable`. URLs are censored first.
- **Blocked, told.** RabbitMQ blocks a publishing connection during a resource alarm
  (``connection.blocked``); aiormq holds its publishes and tells only its log. This transport's
  connections also call the listeners :func:`watch_blocked` adds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiormq
import aiormq.abc
from aiormq.connection import FrameReceiver
from pamqp import commands as spec
from yarl import URL

from .checks import censor_url as censor
from .errors import AccessRefused, BrokerUnavailable
from .frame_source import FrameSource
from .wire import WireReader
from .wire_transport import WireTransport

log = logging.getLogger(__name__)

#: Seconds to wait for the broker to accept a connection before giving up on one attempt.
CONNECT_TIMEOUT = 10.0
#: Once the writer stopped: seconds between takes of what is queued, and rounds after the close.
_DISCARD_EVERY, _AFTER_CLOSE = 0.01, 3


class _Connection(aiormq.Connection):
    # Give up on a silent peer after one heartbeat timeout (plus a second) instead of
    # aiormq's three, so a dead node is noticed within two heartbeat intervals.
    HEARTBEAT_GRACE_MULTIPLIER = 1

    def __init__(self, url: str) -> None:
        # Frames pamqp cannot decode get a stand-in instead of ending the connection.
        self._wire_transport = WireTransport()
        super().__init__(url, transport_factory=self._wire_transport)

        #: Called with the broker's reason when it blocks this connection, ``None`` when
        #: it unblocks it (see :func:`watch_blocked`).
        self.blocked_listeners: list[Callable[[str | None], None]] = []
        #: The open transport's writer (aiormq's writer task writes to it too).
        self.stream_writer: asyncio.StreamWriter | None = None

    @property
    def wire(self) -> WireReader | None:
        """The reader under this connection (:mod:`eventrabbit.wire`), once connected."""
        return self._wire_transport.reader

    # aiormq tells only its log of Connection.Blocked/Unblocked, in private (name-mangled)
    # handlers; these wrap them under those names — a class named ``_Connection`` mangles
    # ``__x`` to the same ``_Connection__x`` as aiormq's ``Connection`` — to tell listeners.
    # tests/unit/test_connection.py fails if aiormq renames them.
    async def __handle_connection_blocked(self, frame: spec.Connection.Blocked) -> None:
        await super().__handle_connection_blocked(frame)
        self._tell_blocked(str(frame.reason or "blocked"))

    async def __handle_connection_unblocked(self, frame: spec.Connection.Unblocked) -> None:
        await super().__handle_connection_unblocked(frame)
        self._tell_blocked(None)

    # Once the handshake is done, aiormq's reader loop gets its frames whole from the wire
    # reader's buffer instead of three readexactly calls each (eventrabbit.frame_source).
    def __reader(self, frame_receiver: FrameReceiver) -> Coroutine[Any, Any, None]:
        reader = frame_receiver.reader
        source = FrameSource(reader, self) if isinstance(reader, WireReader) else frame_receiver
        return super().__reader(source)  # type: ignore[arg-type]  # aiormq only iterates it

    # The writer of the open transport, for eventrabbit.publish_frames: a confirmed publish
    # written straight to it when nothing is queued before it.
    async def __writer(self, writer: asyncio.StreamWriter) -> None:
        self.stream_writer = writer
        try:
            await super().__writer(writer)
        finally:
            self._discard_queued(_AFTER_CLOSE)

    def _discard_queued(self, rounds_after_close: int) -> None:
        # aiormq's writer task has stopped, so frames still queued are never sent. A publish
        # waiting for room in the (bounded) queue holds its channel's lock and would wait
        # until its deadline: take the frames, so it goes on to learn its channel is closed.
        # Again every few ms until the connection is closed, and a few rounds after.
        queue = self.write_queue
        while not queue.empty():
            queue.get_nowait()
        if self.is_closed:
            rounds_after_close -= 1
        if rounds_after_close > 0:
            self.loop.call_later(_DISCARD_EVERY, self._discard_queued, rounds_after_close)

    def _tell_blocked(self, reason: str | None) -> None:
        for listener in list(self.blocked_listeners):
            try:
                listener(reason)
            except Exception:
                log.exception("a blocked/unblocked listener raised")


async def connect_amqp(url: str) -> aiormq.abc.AbstractConnection:
    """The ``amqp``/``amqps`` transport: an aiormq connection reading through a
    :class:`~eventrabbit.wire.WireReader` (its ``wire``).

    :raises BrokerUnavailable: the broker did not accept it; the message names the censored URL.
    """
    connection = _Connection(url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await connection.connect()
            return connection
    except (OSError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
        safe = censor(url)
        reason = str(exc).replace(url, safe) or type(exc).__name__
        refused = _refusal(exc, URL(url))
        if refused is not None:
            raise AccessRefused(f"{safe}: {refused}", url=safe) from None
        raise BrokerUnavailable(f"cannot connect to {safe}: {reason}", url=safe) from None


def _refusal(exc: BaseException, url: URL) -> str | None:
    """What the broker refused, in words, if ``exc`` is a refused login or vhost."""
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return f"the broker refused the login of user {url.user!r} (wrong user or password): {exc}"
    vhost = url.path[1:] or "/"
    # aiormq 7 reports a Connection.Close in answer to Connection.Open (530 NOT_ALLOWED) as an
    # unexpected frame and drops its text: that answer only ever means the vhost was refused.
    refused_open = isinstance(exc, aiormq.exceptions.InvalidFrameError) and (
        "Connection.OpenOk" in str(exc) and "Connection.Close" in str(exc)
    )
    if refused_open or isinstance(exc, aiormq.exceptions.ConnectionNotAllowed):
        return (
            f"the broker refused virtual host {vhost!r} to user {url.user!r} (the vhost does "
            "not exist, the user has no permissions in it, or its connection limit is "
            "reached: rabbitmqctl set_vhost_limits / set_user_limits)"
        )
    return None


def watch_blocked(
    connection: aiormq.abc.AbstractConnection, listener: Callable[[str | None], None]
) -> Callable[[], None]:
    """Call ``listener(reason)`` when the broker blocks ``connection`` (a resource alarm) and
    ``listener(None)`` when it unblocks it; returns what stops that. Connections of other
    transports (the in-memory broker's) are never blocked."""
    listeners = getattr(connection, "blocked_listeners", None)
    if not isinstance(listeners, list):
        return _nothing
    listeners.append(listener)
    return lambda: listeners.remove(listener) if listener in listeners else None


def _nothing() -> None:
    pass
