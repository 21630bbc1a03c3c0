"""Streams in the in-memory broker (``x-queue-type: stream``), as RabbitMQ 3.10 serves them
over AMQP 0.9.1 — made of plain queues, by composition.

Theory of operation
-------------------
A stream is a queue (the one declared, bound and deleted by name) whose only consumer is its
:class:`StreamLog`: the log takes every message routed to the stream at once, keeps it with
the next offset (from 0) in its ``x-stream-offset`` header and the second it arrived, and
hands a copy to each reader. A reader — a ``basic.consume`` on the stream — gets a *cursor*:
a private queue of its own, filled from the offset it asked for and fed what comes later, which
it consumes like any queue (prefetch, acks, its channel's close). What RabbitMQ does, this does:

- a stream is durable, never exclusive or auto-delete (406 otherwise);
- a reader must ack manually (540, which closes the connection) and have a prefetch count
  (406); an ack only gives it credit: nothing leaves the stream;
- the consumer argument ``x-stream-offset`` picks where it starts: ``"first"``, ``"last"`` (the
  last chunk), ``"next"`` (the default), an offset, or a timestamp (the first chunk written at
  or after it). Like RabbitMQ, a reader starts at the start of the *chunk* holding that
  position — here every :data:`CHUNK` messages make a chunk — so it gets messages before an
  offset it asked for and must skip them.

Not emulated: retention (declared and compared, not applied); ``basic.get``, ``queue.purge``
and ``basic.nack`` find nothing to do instead of being refused; the log counts as the stream's
consumer in a declare's ``consumer_count``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiormq.exceptions import ConnectionNotImplemented

from .messages import StoredMessage, decode_properties, encode_properties
from .queues import Consumer, MemoryQueue
from .refusals import precondition_failed

#: Messages per chunk: a reader starts at the start of the chunk holding its offset.
CHUNK = 8
#: The consumer argument naming where to start, and the header naming a delivery's offset.
OFFSET = "x-stream-offset"


def stream_refusal(name: str, durable: bool, exclusive: bool, auto_delete: bool) -> str | None:
    """Why RabbitMQ refuses to declare stream ``name`` with these flags, or ``None``."""
    for refused, flag in (
        (not durable, "non-durable"),
        (exclusive, "exclusive-owner"),
        (auto_delete, "auto-delete"),
    ):
        if refused:
            return f"invalid property '{flag}' for queue '{name}' in vhost '/'"
    return None


@dataclass(eq=False)
class StreamLog:
    """The log of one stream, and the cursors of its readers (the stream queue's
    :class:`~.queues.Receiver`)."""

    stream: MemoryQueue
    #: The messages, offset = index, each with its ``x-stream-offset`` header.
    log: list[StoredMessage] = field(default_factory=list)
    #: The second each message was written.
    stamps: list[int] = field(default_factory=list)
    #: One private queue per reader.
    cursors: list[MemoryQueue] = field(default_factory=list)

    # ------------------------------------------------------- the stream queue's Receiver

    def can_receive(self, consumer: Consumer) -> bool:
        """Always: a stream takes every message at once."""
        return True

    def receive(
        self, consumer: Consumer, queue: MemoryQueue | None, message: StoredMessage
    ) -> None:
        """Append ``message`` with the next offset and hand it to every reader."""
        properties = decode_properties(message.header)
        properties.headers = {**(properties.headers or {}), OFFSET: len(self.log)}
        header = encode_properties(properties, len(message.body))
        offset = len(self.log)  # as the seq: a cursor keeps its messages in stream order
        kept = StoredMessage(message.body, header, message.exchange, message.routing_key, offset)
        self.log.append(kept)
        self.stamps.append(int(time.time()))
        self.cursors = [cursor for cursor in self.cursors if cursor.consumers]  # readers gone
        for cursor in self.cursors:
            cursor.enqueue(_copy(kept), None)

    def cancel_by_broker(self, consumer: Consumer) -> None:
        """The stream was deleted: its readers are cancelled too."""
        for cursor in self.cursors:
            for reader in list(cursor.consumers):
                reader.receiver.cancel_by_broker(reader)
        self.cursors.clear()

    # ----------------------------------------------------------------------- readers

    def open(self, reader: Consumer) -> MemoryQueue:
        """A cursor for ``reader``, filled from where it asks to start.

        :raises aiormq.exceptions.AMQPError: no manual ack (540) or no prefetch count (406).
        """
        where = f"queue '{self.stream.name}' in vhost '/'"
        if reader.no_ack:
            unsupported = "automatic acknowledgement not supported by stream queues"
            raise ConnectionNotImplemented(f"NOT_IMPLEMENTED - {unsupported} {where}")
        if not reader.prefetch:
            raise precondition_failed(f"consumer prefetch count is not set for '{where}'")
        stream = self.stream
        cursor = MemoryQueue(stream.name, True, {}, stream.on_dead, stream.changes)
        for message in self.log[self.start(reader.arguments.get(OFFSET, "next")) :]:
            cursor.enqueue(_copy(message), None)
        self.cursors.append(cursor)
        reader.queue = cursor
        return cursor

    def start(self, requested: Any) -> int:
        """The offset a reader asking for ``requested`` starts at (a chunk's first)."""
        end = len(self.log)
        if requested == "first":
            return 0
        if requested == "last":
            return _chunk(end - 1) if end else 0
        if isinstance(requested, bool) or requested == "next":
            return end
        if isinstance(requested, int):
            return _chunk(min(max(requested, 0), end))
        if isinstance(requested, datetime):
            moment = requested if requested.tzinfo else requested.replace(tzinfo=UTC)
            second = int(moment.timestamp())
            return _chunk(next((i for i, at in enumerate(self.stamps) if at >= second), end))
        return end


def attach_log(queue: MemoryQueue) -> None:
    """Make a newly declared stream queue a stream: its log consumes it."""
    log = StreamLog(queue)
    queue.add_consumer(Consumer("amq.stream-log", log, _never_called, queue, no_ack=True))


def admit(queue: MemoryQueue, consumer: Consumer) -> MemoryQueue:
    """The queue ``consumer`` consumes: ``queue``, or for a stream a cursor of its own."""
    for one in queue.consumers:
        if isinstance(one.receiver, StreamLog):
            return one.receiver.open(consumer)
    return queue


def _copy(message: StoredMessage) -> StoredMessage:
    """One reader's copy: a requeue (its channel closed) changes only the copy."""
    return StoredMessage(
        message.body, message.header, message.exchange, message.routing_key, message.seq
    )


def _chunk(offset: int) -> int:
    return offset - offset % CHUNK


def _never_called(message: Any) -> None:  # the log receives, no callback runs
    raise AssertionError("a stream's log has no callback")
