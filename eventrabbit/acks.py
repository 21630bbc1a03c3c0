"""Coalesced acks: one ``basic.ack(multiple=True)`` for a run of finished deliveries.

Acking is a quarter of a consumer's CPU per message when every delivery is acked alone. The
handlers that finish within one turn of the event loop are acked together instead: the first
of them waits one turn and then flushes for all.

The rule that keeps ``multiple=True`` safe: it may cover only tags that are settled. Every
delivery is *open* from arrival until it is acked, and a multiple ack never reaches the lowest
open tag. Tags that finished above it (out of order, behind a slow handler) are acked one by
one, so a slow handler holds up nobody. A delivery that is left unacked on purpose stays open
forever, so no multiple ack ever covers it.
"""

from __future__ import annotations

import asyncio
import logging

import aiormq
import aiormq.abc

log = logging.getLogger(__name__)

# Errors of a channel that is gone: its deliveries are requeued by the broker anyway.
CHANNEL_GONE = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
)


class AckBatcher:
    """Acks the deliveries of one channel, coalescing runs of finished tags."""

    __slots__ = ("_channel", "_done", "_flushing", "_open")

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self._channel = channel
        self._open: set[int] = set()
        self._done: list[int] = []
        self._flushing = False

    def opened(self, tag: int) -> None:
        """A delivery arrived; it must not be covered by a multiple ack until acked."""
        self._open.add(tag)

    @property
    def unacked(self) -> int:
        """Deliveries that arrived and are not acked (or queued to be) yet."""
        return len(self._open)

    async def ack(self, tag: int) -> None:
        """Ack ``tag`` together with the others that finish in this turn of the loop."""
        self._open.discard(tag)
        self._done.append(tag)
        if self._flushing:
            return  # the flush under way takes it
        self._flushing = True
        try:
            if self._open:
                # Others are running: let those finishing in this turn join the batch. Alone
                # (e.g. one request at a time), waiting a turn would only add latency.
                await asyncio.sleep(0)
            await self.flush()
        finally:
            self._flushing = False

    async def flush(self) -> None:
        """Send the acks of every finished delivery now."""
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
        if lowest_open is None:
            await basic_ack(max(done), multiple=len(done) > 1, wait=False)
            return
        settled_below = [tag for tag in done if tag < lowest_open]
        if settled_below:
            top = max(settled_below)
            await basic_ack(top, multiple=len(settled_below) > 1, wait=False)
        for tag in done:
            if tag > lowest_open:
                await basic_ack(tag, wait=False)
