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

The end of the stream means what it meant to aiormq's receiver: at a frame boundary, the
iteration ends (the reader loop returns); inside a frame, or when the socket failed, the frame
is an :class:`~aiormq.exceptions.AMQPConnectionError` saying why; a frame pamqp refuses is an
:class:`~aiormq.exceptions.InvalidFrameError`.
"""

from __future__ import annotations

from aiormq.exceptions import AMQPConnectionError, InvalidFrameError
from pamqp.exceptions import PAMQPException

from .frame_decode import Received, decode
from .wire import WireReader


class FrameSource:
    """aiormq's frame receiver for an open connection, on a :class:`WireReader`."""

    __slots__ = ("reader",)

    def __init__(self, reader: WireReader) -> None:
        self.reader = reader

    def __aiter__(self) -> FrameSource:
        return self

    async def __anext__(self) -> Received:
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
        while True:
            if reader._exception is not None:
                exc = reader._exception
                raise AMQPConnectionError(f"Server communication error: {exc!r}") from exc
            if reader._eof:
                left = len(reader._buffer)
                unfinished = f", {left} bytes into a frame" if left else ""
                raise AMQPConnectionError(f"Server connection unexpectedly closed{unfinished}")
            try:
                await reader._wait_for_data("readexactly")  # type: ignore[attr-defined]
            except OSError as exc:  # the socket failed while we waited (set_exception)
                raise AMQPConnectionError(f"Server communication error: {exc!r}") from exc
            data = reader.next_frame()
            if data is not None:
                return data
