"""The stream under aiormq: hands pamqp a stand-in for a delivery it could not decode, and
keeps the property bytes a faithful copy of a delivery needs.

Theory of operation
-------------------
aiormq reads each frame as three ``readexactly`` calls — the type octet (``n == 1``), channel
and size (6), payload and end octet — and has pamqp decode it; a frame pamqp cannot decode ends
the connection, and the broker redelivers the message to the next one. :class:`WireReader` is
that ``StreamReader``. An open connection takes its frames whole with ``next_frame``
(:mod:`eventrabbit.frame_source`), which inspects methods and content headers in place
first; in the handshake, when aiormq asks for one octet, the reader looks at the frame at
the front of its buffer before aiormq takes any of it:

- other calls, and frames other than methods and content headers, cost one comparison:
  ``StreamReader.readexactly``'s own coroutine is returned;
- a method or content header whole in the buffer is inspected (and mended) in place; on an
  empty buffer (an idle connection) aiormq waits in ``readexactly`` itself and is woken only
  once the frame is whole and inspected (``_wakeup_waiter``, which ``feed_data`` calls); one
  partly in the buffer is read first and put back (one coroutine more, only then);
- ``Basic.Deliver``: an exchange or routing key that is not UTF-8 becomes its escaped text;
  the content header behind it is usually dealt with right then;
- a content header: :func:`~eventrabbit.decodable.classify` checks its properties in one cheap
  pass; only a suspect is decoded by pamqp on trial; what pamqp refuses is rewritten with a
  stand-in (:mod:`eventrabbit.standins`): the delivery arrives, the connection stays up.

On a *watched* channel a delivery's property bytes are stashed under its delivery tag when a
faithful copy needs them — a headers table, what pamqp would re-encode differently, or a
stand-in (then with the problem) — for the consumer to :meth:`~WireReader.take`. A channel's
stash is emptied when the channel opens or closes (tags start again), and bounded by
:data:`MAX_STASHED`. ``Basic.Return`` and ``GetOk`` names are not mended: eventrabbit publishes
only UTF-8 names and never gets. This relies on CPython's ``StreamReader`` internals
(``_buffer``, a ``bytearray``, and ``_waiter``, ``_wakeup_waiter``, ``_eof``, ``_limit``,
``_exception``, ``_wait_for_data``, ``_maybe_resume_transport``; checked when a reader is made).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Coroutine
from typing import Any

from .decodable import CLEAN, KEEP, classify
from .properties import Stashed, parses
from .standins import EMPTY_PROPERTIES, deliver_stand_in, header_stand_in

log = logging.getLogger(__name__)

#: The most deliveries a watched channel keeps stashed; beyond, the oldest goes. Above any
#: prefetch count (a short), so only deliveries nobody takes are lost.
MAX_STASHED = 65536

_readexactly = asyncio.StreamReader.readexactly
_METHOD, _HEADER = 1, 2
_U32 = struct.Struct(">I").unpack_from
_CHANNEL = struct.Struct(">H").unpack_from
_U64 = struct.Struct(">Q").unpack_from


class WireReader(asyncio.StreamReader):
    """aiormq's ``StreamReader``, watching frames as described in :mod:`eventrabbit.wire`."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        internals: tuple[str, ...] = (
            "_waiter",
            "_wakeup_waiter",
            "_eof",
            "_limit",
            "_exception",
            "_wait_for_data",
        )
        internals += ("_maybe_resume_transport",)
        if not isinstance(getattr(self, "_buffer", None), bytearray) or not all(
            hasattr(self, name) for name in internals
        ):
            raise RuntimeError("asyncio.StreamReader's internals differ on this Python")
        self._buffer: bytearray
        self._waiter: asyncio.Future[None] | None  # StreamReader's, also private
        self._eof: bool
        self._exception: BaseException | None
        self._limit: int
        self._stashes: dict[int, dict[int, Stashed]] = {}  # watched channel -> tag -> stash
        self._pending: dict[int, int] = {}  # channel -> tag of the Deliver before its header
        self._names: dict[int, str] = {}  # channel -> what that Deliver's stand-in changed
        self._looked_ahead = False  # the next frame is a content header dealt with
        self._holding = False  # aiormq waits for a frame on an empty buffer (_wakeup_waiter)

    def watch(self, channel_number: int) -> dict[int, Stashed]:
        """Stash the deliveries of this channel from now on, for :meth:`take`.

        :returns: the channel's live stash, delivery tag to :class:`Stashed`: popping a tag
            from it is :meth:`take` without a call (it is emptied when the channel goes).
        """
        return self._stashes.setdefault(channel_number, {})

    def take(self, channel_number: int, delivery_tag: int) -> Stashed | None:
        """The stash of a delivery on a watched channel, once; ``None`` when it needs none
        (pamqp decoded its properties and re-encodes them faithfully) or was not watched."""
        stashes = self._stashes.get(channel_number)
        return stashes.pop(delivery_tag, None) if stashes else None

    def forget_channel(self, channel_number: int) -> None:
        """Stop watching this channel and drop what it stashed."""
        stashes = self._stashes.pop(channel_number, None)
        if stashes:
            stashes.clear()  # a consumer may hold it (watch's result)
        self._pending.pop(channel_number, None)
        self._names.pop(channel_number, None)

    def readexactly(self, n: int) -> Coroutine[Any, Any, bytes]:
        """``StreamReader.readexactly``, looking at each frame before its first octet goes."""
        if n != 1:
            return _readexactly(self, n)  # a frame's channel and size, or its payload
        # A frame's type octet (or a heartbeat's end octet: then no method or header follows).
        buf = self._buffer
        if buf and buf[0] > _HEADER:
            return _readexactly(self, n)  # body, heartbeat, frame end
        if self._looked_ahead:
            self._looked_ahead = False  # the content header its Deliver dealt with
            return _readexactly(self, n)
        if not buf:
            # Nothing yet (an idle connection): aiormq waits in readexactly itself, and
            # _wakeup_waiter wakes it only once the frame is whole and inspected.
            self._holding = True
            return _readexactly(self, n)
        if len(buf) < 7:
            return self._whole_frame(n)
        end = 8 + _U32(buf, 3)[0]
        if len(buf) < end:
            return self._whole_frame(n)
        self._inspect(buf, end)
        return _readexactly(self, n)

    def next_frame(self) -> bytes | None:
        """The frame at the front of the buffer, inspected and taken out; ``None`` until whole."""
        buf = self._buffer
        if len(buf) < 7:
            return None
        end = 8 + _U32(buf, 3)[0]
        if len(buf) < end:
            return None
        if buf[0] <= _HEADER:
            if self._looked_ahead:
                self._looked_ahead = False  # the content header its Deliver dealt with
            else:
                self._inspect(buf, end)
                end = 8 + _U32(buf, 3)[0]  # a stand-in may have rewritten it
        frame = bytes(buf[:end])
        del buf[:end]
        self._maybe_resume_transport()  # type: ignore[attr-defined]
        return frame

    def _wakeup_waiter(self) -> None:
        # feed_data and feed_eof call this when data (or the end) arrives. While aiormq waits
        # for a frame's first octet on an empty buffer, a method or content header is held
        # back until it is whole, and inspected in place before aiormq wakes.
        if self._holding and self._waiter is not None:
            buf = self._buffer
            if not self._eof and buf and buf[0] <= _HEADER:
                end = 8 + _U32(buf, 3)[0] if len(buf) >= 7 else 0
                if end and len(buf) >= end:
                    self._inspect(buf, end)
                elif len(buf) <= 2 * self._limit:
                    return  # not whole yet (a frame is at most frame_max, under 2 * limit)
            self._holding = False
        super()._wakeup_waiter()  # type: ignore[misc]

    async def _whole_frame(self, n: int) -> bytes:
        # Wait for the frame's first octet; for a method or content header wait for the whole
        # frame, put it back, inspect it there. Then give aiormq the octet it asked for.
        head = await _readexactly(self, 1)
        rest = b""
        if head[0] == _METHOD or head[0] == _HEADER:
            size = await _readexactly(self, 6)
            rest = size + await _readexactly(self, _U32(size, 2)[0] + 1)
        self._buffer[0:0] = head + rest
        if rest:
            self._inspect(self._buffer, 1 + len(rest))
        return await _readexactly(self, n)

    def _inspect(self, buf: bytearray, end: int) -> None:
        # The two frames of every delivery are looked at here, the rest in the calls below.
        channel = buf[1] << 8 | buf[2]
        if buf[0] == _HEADER:
            tag = self._pending.pop(channel, None) if self._pending else None
            verdict = classify(buf, 19, end - 1)
            if verdict != CLEAN or tag is not None:
                self._header(buf, end, channel, tag, verdict)
        elif buf[10] == 60 and buf[8] == 60 and not buf[7] and not buf[9]:  # Basic.Deliver
            tag_at = 12 + buf[11]  # after the consumer tag
            if not buf[tag_at + 9 : end - 1].isascii():  # the exchange and routing key
                self._deliver(buf, end, channel, tag_at)
                return
            # Its content header is usually right behind it: when pamqp reads that, it is
            # dealt with here (the header's own turn is then a flag).
            if len(buf) > end + 7 and buf[end] == _HEADER and _CHANNEL(buf, end + 1)[0] == channel:
                header_end = end + 8 + _U32(buf, end + 3)[0]
                verdict = classify(buf, end + 19, header_end - 1) if len(buf) >= header_end else -1
                if verdict == KEEP and channel in self._stashes:
                    raw = bytes(buf[end + 19 : header_end - 1])
                    _stash(self._stashes[channel], _U64(buf, tag_at)[0], Stashed(raw))
                if verdict in (CLEAN, KEEP):
                    self._looked_ahead = True
                    return
            if channel in self._stashes:
                self._pending[channel] = _U64(buf, tag_at)[0]
        elif buf[8] == 20 and not buf[7] and buf[10] in (11, 40, 41) and not buf[9]:
            # Channel.OpenOk, Close, CloseOk: the channel's delivery tags start again.
            self.forget_channel(channel)

    def _deliver(self, buf: bytearray, end: int, channel: int, tag_at: int) -> None:
        stand_in = deliver_stand_in(bytes(buf[7 : end - 1]), tag_at + 9 - 7)
        if channel in self._stashes:
            self._pending[channel] = _U64(buf, tag_at)[0]
        if stand_in is not None:
            if channel in self._stashes:
                self._names[channel] = stand_in[1]
            else:
                log.warning("channel %d: a delivery's %s; it goes on escaped", channel, stand_in[1])
            _rewrite(buf, end, stand_in[0])

    def _header(
        self, buf: bytearray, end: int, channel: int, tag: int | None, verdict: int
    ) -> None:
        problem = self._names.pop(channel, None) if self._names and tag is not None else None
        if verdict == CLEAN and problem is None:
            return  # pamqp reads it and writes it back as it was: no stash needed
        raw = bytes(buf[19 : end - 1])
        stand_in = None
        if verdict != CLEAN and verdict != KEEP:
            stand_in = header_stand_in(bytes(buf[7 : end - 1]))
        if stand_in is not None:
            _rewrite(buf, end, stand_in.payload)
            raw = stand_in.properties  # parses: the original, or the stand-in's
            problem = f"{problem}; {stand_in.problem}" if problem else stand_in.problem
            if tag is None:
                log.warning(
                    "channel %d: a message's %s; it goes on with a stand-in", channel, problem
                )
                return
        elif verdict != KEEP and not parses(raw):  # only KEEP was walked all through
            if problem is None:
                return  # pamqp reads it, we cannot: a copy of it goes through pamqp
            raw, problem = EMPTY_PROPERTIES, f"{problem}; malformed properties left out"
        stashes = self._stashes.get(channel)
        if tag is not None and stashes is not None:
            _stash(stashes, tag, Stashed(raw, problem))


def _stash(stashes: dict[int, Stashed], tag: int, stashed: Stashed) -> None:
    if len(stashes) >= MAX_STASHED:
        del stashes[next(iter(stashes))]  # the oldest: a delivery nobody took
    stashes[tag] = stashed


def _rewrite(buf: bytearray, end: int, payload: bytes) -> None:
    """Replace the frame at the start of ``buf`` by one of the same type and channel."""
    buf[0:end] = bytes(buf[0:3]) + len(payload).to_bytes(4, "big") + payload + b"\xce"
