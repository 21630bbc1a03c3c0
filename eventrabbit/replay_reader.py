"""Reading a stream in order: consume from an offset, skip what is before it, stop where
asked, and after a lost connection consume again from exactly where it left off (see
:mod:`eventrabbit.replay` for the rules)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aiormq
import aiormq.abc
from aiormq.abc import DeliveredMessage

from .checkpoints import CheckpointStore
from .connection import CHANNEL_GONE, Endpoints, backoff, close_connection
from .errors import AccessRefused, BrokerUnavailable, PublishError
from .replay_declare import declare_stream
from .replay_handling import DEAD_LETTER, Handling, Source
from .streams import (
    OFFSET_ARGUMENT,
    Start,
    Stop,
    StreamChannel,
    check_stop,
    offset_argument,
    offset_of,
    past,
    wanted,
)

log = logging.getLogger(__name__)

# Faults a reconnect can cure: a dead letter not confirmed (or its queue deleted: declared
# again) too — the failed event is handled again.
_RECOVERABLE = (*CHANNEL_GONE, BrokerUnavailable, PublishError, OSError, TimeoutError)
#: Seconds closing a reader's connection may take.
CLOSE_TIMEOUT = 2.0


@dataclass(slots=True)
class Checkpoint:
    """A named checkpoint in ``store``, saved every ``every`` events.

    :param saved: the offset saved last (``None``: none yet).
    """

    name: str
    store: CheckpointStore
    every: int
    saved: int | None = None

    async def save(self, handled: int, *, due: bool = False) -> None:
        """Save ``handled`` (the highest offset handled) when it moved; with ``due``, only
        once ``every`` events went by since the last save."""
        if self.saved == handled:
            return
        if due and self.saved is not None and handled - self.saved < self.every:
            return
        await self.store.save(self.name, handled)
        self.saved = handled


class StreamReader:
    """One replay: its position, its counts, and the connections it makes."""

    def __init__(
        self,
        handle: Source,
        source: StreamChannel,
        start: Start,
        stop: Stop,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.source = source
        self.handle = handle
        self.start: str | int | datetime = offset_argument(start)  # a time once, not per retry
        self.stop = check_stop(stop)
        #: The lowest offset still wanted; ``None`` until known.
        self.next: int | None = self.start if isinstance(self.start, int) else None
        self.skipped = self.reconnects = 0
        #: Consuming now; and whether a connection was lost since it last consumed.
        self.consuming = self.lost = False
        self.first: int | None = None
        self.checkpoint = checkpoint
        if checkpoint is not None and self.next is not None:
            checkpoint.saved = self.next - 1  # where it starts is saved already
        self.endpoints = Endpoints(source.urls)

    async def run(self, handling: Handling, idle: float) -> None:
        delays = self._delays()
        task = asyncio.current_task()
        while True:
            try:
                await self._once(handling, idle)
                return
            except AccessRefused:
                raise
            except asyncio.CancelledError as exc:
                if task is None or task.cancelling():
                    raise
                reason = repr(exc)  # aiormq's own, on a dropped connection
            except _RECOVERABLE as exc:
                reason = str(exc) or type(exc).__name__
            if self.consuming:  # it consumed: this loss starts the backoff afresh
                delays = self._delays()
            self._lost(reason)
            await asyncio.sleep(next(delays))

    def _delays(self) -> Iterator[float]:
        return backoff(self.handle.reconnect.initial_delay, self.handle.reconnect.max_delay)

    def _lost(self, reason: str) -> None:
        if not self.consuming:  # another failed attempt, already told
            log.info("replay of stream %r: %s", self.source.stream_name, reason)
            return
        self.consuming, self.lost = False, True
        log.warning(
            "replay of stream %r lost its connection (%s); resuming at offset %s",
            self.source.stream_name,
            reason,
            self.next if self.next is not None else self.start,
        )

    async def _once(self, handling: Handling, idle: float) -> None:
        connection = await self.endpoints.connect()
        try:
            await self._read(connection, handling, idle)
        finally:
            await handling.detach()
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await close_connection(connection)
            except (TimeoutError, *CHANNEL_GONE) as exc:
                log.debug("closing a replay connection: %s", exc)

    async def _read(
        self, connection: aiormq.abc.AbstractConnection, handling: Handling, idle: float
    ) -> None:
        source, stream = self.source, self.source.stream_name
        channel = await connection.channel(publisher_confirms=False)
        await declare_stream(channel, source, dead_letters=handling.policy == DEAD_LETTER)
        handling.attach(connection)
        inbox: asyncio.Queue[DeliveredMessage | None] = asyncio.Queue()
        channel.closing.add_done_callback(lambda _: inbox.put_nowait(None))
        channel.on_consumer_cancel_callbacks.add(lambda _: inbox.put_nowait(None))
        await channel.basic_qos(prefetch_count=source.prefetch_count)

        async def deliver(message: DeliveredMessage) -> None:
            inbox.put_nowait(message)

        position = self.next if self.next is not None else self.start
        await channel.basic_consume(stream, deliver, arguments={OFFSET_ARGUMENT: position})
        self.consuming = True
        if self.lost:
            self.reconnects, self.lost = self.reconnects + 1, False
        credit, unacked = max(1, source.prefetch_count // 2), 0
        wait = idle if self.stop == "idle" or isinstance(self.stop, datetime) else None
        while True:
            if inbox.empty():
                try:
                    async with asyncio.timeout(wait):
                        message = await inbox.get()
                except TimeoutError:
                    if self._caught_up():
                        return
                    continue
            else:
                message = inbox.get_nowait()
            if message is None:
                raise aiormq.exceptions.ChannelInvalidStateError(f"stream {stream!r} was closed")
            properties = message.header.properties
            offset = offset_of(properties.headers)
            if offset is None or not wanted(offset, self.next):
                self.skipped += 1
            elif past(offset, properties.timestamp, self.stop):
                return
            else:
                await handling.handle(message, offset)
                self.first = offset if self.first is None else self.first
                self.next = offset + 1
                if self.checkpoint is not None:
                    await self.checkpoint.save(offset, due=True)
                if isinstance(self.stop, int) and offset >= self.stop:
                    return
            unacked += 1
            if unacked >= credit:  # a stream removes nothing: acks only give credit
                await channel.basic_ack(message.delivery.delivery_tag, multiple=True)  # type: ignore[union-attr,arg-type]
                unacked = 0

    def _caught_up(self) -> bool:
        if self.stop == "idle":
            return True
        return isinstance(self.stop, datetime) and datetime.now(UTC) >= self.stop

    async def save(self) -> None:
        """Save the checkpoint, if there is one and the position moved."""
        if self.checkpoint is not None and self.next is not None:
            await self.checkpoint.save(self.next - 1)
