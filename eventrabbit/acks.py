"""Coalesced acks: one ``basic.ack(multiple=True)`` for a run of finished deliveries.

Acking is a quarter of a consumer's CPU per message when every delivery is acked alone (one
frame and one ``send()`` each). Finished deliveries are acked together instead: the first one
to finish waits up to :data:`FLUSH_DELAY` (or until a quarter of the prefetch window has
finished) and then flushes for all. Only the ack is delayed, never a handler or a reply.

The rule that keeps ``multiple=True`` safe: it may cover only tags that are settled. Every
delivery is *open* from arrival until it is acked, and a multiple ack never reaches the lowest
open tag. Tags that finished above it (out of order, behind a slow handler) are acked one by
one, so a slow handler holds up nobody. A delivery that is left unacked on purpose stays open
forever, so no multiple ack ever covers it.
"""

from __future__ import annotations

import asyncio
import logging

import aiormq.abc

from .connection import CHANNEL_GONE

log = logging.getLogger(__name__)

#: Seconds the first finished delivery waits for others to join its ack.
FLUSH_DELAY = 0.001


class AckBatcher:
    """Acks the deliveries of one channel, coalescing runs of finished tags."""

    __slots__ = ("_batch", "_channel", "_done", "_flushing", "_lock", "_open", "_wake")

    def __init__(self, channel: aiormq.abc.AbstractChannel, prefetch_count: int) -> None:
        self._channel = channel
        self._batch = max(1, prefetch_count // 4)
        self._open: set[int] = set()
        self._done: list[int] = []
        self._flushing = False
        self._wake: asyncio.Future[None] | None = None
        # One flush at a time: a multiple ack computed by one flush could otherwise cover a
        # tag that another is about to ack alone, and acking a tag twice closes the channel.
        self._lock = asyncio.Lock()

    def opened(self, tag: int) -> None:
        """A delivery arrived; it must not be covered by a multiple ack until acked."""
        self._open.add(tag)

    async def ack(self, tag: int) -> None:
        """Ack ``tag`` together with the others that finish shortly after it."""
        self._open.discard(tag)
        self._done.append(tag)
        if self._flushing:
            wake = self._wake
            if wake is not None and len(self._done) >= self._batch and not wake.done():
                wake.set_result(None)  # the batch is full: flush now
            return
        self._flushing = True
        try:
            if self._batch > 1:
                await self._gather()
            await self.flush()
        finally:
            self._flushing = False

    async def _gather(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timer = loop.call_later(FLUSH_DELAY, _wake_up, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    async def flush(self) -> None:
        """Send the acks of every finished delivery now."""
        async with self._lock:
            while self._done:
                done, self._done = self._done, []
                lowest_open = min(self._open) if self._open else None
                try:
                    await self._send(done, lowest_open)
                except CHANNEL_GONE as exc:
                    log.info("acks on a closed channel skipped; the broker redelivers: %s", exc)
                    return

    async def _send(self, done: list[int], lowest_open: int | None) -> None:
        basic_ack = self._channel.basic_ack
        settled = done if lowest_open is None else [tag for tag in done if tag < lowest_open]
        if settled:
            await basic_ack(max(settled), multiple=len(settled) > 1, wait=False)
        if lowest_open is not None:
            for tag in done:
                if tag > lowest_open:
                    await basic_ack(tag, wait=False)


def _wake_up(wake: asyncio.Future[None]) -> None:
    if not wake.done():
        wake.set_result(None)
