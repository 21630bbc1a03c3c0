"""The frames of an open connection, taken whole from the wire reader's buffer.

Theory of operation
-------------------
aiormq's reader loop asks its ``FrameReceiver`` for one frame at a time, and that receiver
reads each frame as three ``readexactly`` coroutines under a lock into a ``BytesIO``: for a
consumed message (three frames) that is a tenth or more of the CPU it costs. Once a connection
is open, :class:`~eventrabbit.amqp_connection` hands aiormq's loop a :class:`FrameSource`
instead: it takes the next frame whole from the :class:`~eventrabbit.wire.WireReader`'s buffer
(inspected there as before), waits on the reader only when no whole frame is buffered, and
decodes it (:mod:`eventrabbit.frame_decode`: pamqp's objects, the hot frames decoded faster).
A ``Basic.Deliver`` whose content is whole in the buffer goes straight to its consumer where
nothing can come before it (:mod:`eventrabbit.direct_delivery`); aiormq's loop never sees it.

The end of the stream means what it meant to aiormq's receiver: at a frame boundary, the
iteration ends (the reader loop returns); inside a frame, or when the socket failed, the frame
is an :class:`~aiormq.exceptions.AMQPConnectionError` saying why; a frame pamqp refuses is an
:class:`~aiormq.exceptions.InvalidFrameError`.
"""

from __future__ import annotations

import asyncio
from collections import deque

import aiormq.abc
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError
from pamqp.exceptions import PAMQPException

from .direct_delivery import deliver, queued_before
from .frame_decode import Received, decode
from .wire import WireReader

#: Octets of the shortest ``Basic.Deliver`` frame: shorter frames need no look.
_SMALLEST_DELIVER = 8 + 4 + 1 + 8 + 1 + 1 + 1


class FrameSource:
    """aiormq's frame receiver for an open connection, on a :class:`WireReader`.

    :param connection: given, a delivery whose frames are all buffered goes straight to its
        consumer where nothing can come before it (:mod:`eventrabbit.direct_delivery`).
    """

    __slots__ = ("connection", "pending", "reader")

    def __init__(
        self, reader: WireReader, connection: aiormq.abc.AbstractConnection | None = None
    ) -> None:
        self.reader = reader
        self.connection = connection
        #: Frames taken from the buffer for a direct delivery that went aiormq's way after all.
        self.pending: deque[Received] = deque()

    def __aiter__(self) -> FrameSource:
        return self

    async def __anext__(self) -> Received:
        pending = self.pending
        if pending:
            return pending.popleft()
        connection, reader = self.connection, self.reader
        while True:
            received = await self._next()
            if connection is None or received[0] < _SMALLEST_DELIVER:
                return received
            if queued_before(connection, received):
                await asyncio.sleep(0)  # the channel's reader takes what is queued before it
            handed = self._deliver(connection, received)
            while handed is None:  # a read ended inside the message: wait for the rest
                if not await self._more(reader):
                    return received  # the stream ends: aiormq's way, which then ends too
                handed = self._deliver(connection, received)
            if not handed:
                return received

    def _deliver(
        self, connection: aiormq.abc.AbstractConnection, received: Received
    ) -> bool | None:
        try:
            return deliver(connection, self.reader, received, self.pending)
        except PAMQPException as exc:  # a content frame pamqp refuses, as in _next
            raise InvalidFrameError(str(exc)) from exc

    @staticmethod
    async def _more(reader: WireReader) -> bool:
        """Wait for more of the stream; ``False`` if it ended or failed instead."""
        if reader._exception is not None or reader._eof:
            return False
        try:
            await reader._wait_for_data("readexactly")  # type: ignore[attr-defined]
        except OSError:
            return False  # set_exception: the next frame asked for says so
        return True

    async def _next(self) -> Received:
        reader = self.reader
        data = reader.next_frame()
        if data is None:
            if reader.at_eof():
                raise StopAsyncIteration  # as aiormq's receiver: the stream ended between frames
            data = await self._wait(reader)
        try:
            return decode(data)
        except PAMQPException as exc:
            raise InvalidFrameError(str(exc)) from exc

    @staticmethod
    async def _wait(reader: WireReader) -> bytes:
        while await FrameSource._more(reader):
            data = reader.next_frame()
            if data is not None:
                return data
        exc = reader._exception  # set_exception: the socket failed (also while we waited)
        if exc is not None:
            raise AMQPConnectionError(f"Server communication error: {exc!r}") from exc
        left = len(reader._buffer)
        unfinished = f", {left} bytes into a frame" if left else ""
        raise AMQPConnectionError(f"Server connection unexpectedly closed{unfinished}")
