"""Time limits on handling a delivery: eventrabbit's own (``QueueConfig.handler_timeout``) and
the broker's (``consumer_timeout``), and what happens when either runs out.

Theory of operation
-------------------
- **handler_timeout.** :func:`bounded` runs a handler under :func:`asyncio.timeout`. When the
  limit runs out the handler is cancelled and the delivery fails with
  :class:`~eventrabbit.errors.HandlerTimeout`, retried and dead-lettered like any failure. A
  ``TimeoutError`` the handler raises itself stays what it is.
- **consumer_timeout.** RabbitMQ up to 4.2 (and 4.3 for a quorum queue's consumer that cannot
  take a ``basic.cancel``) closes the channel with ``406 PRECONDITION_FAILED - delivery
  acknowledgement on channel N timed out`` when a delivery stays unacked longer than its
  consumer timeout (30 minutes by default). Every unacked delivery of that channel goes back to
  the queue, and closing the channel cancels their handlers. Left alone, the slow message comes
  back, runs again, and closes the next channel: forever.
- **Which message.** The broker's reply does not name the delivery. Acks go out within a
  millisecond of a handler's end (:mod:`eventrabbit.acks`), so the oldest delivery the broker
  still waits for is the oldest one still being handled: the first of the consumer's open
  deliveries (they are kept in arrival order). :class:`ConsumerTimeouts` counts, per message,
  the closes it was the oldest open delivery of.
- **The same message again.** A message is known by its ``message_id`` (every message
  eventrabbit publishes has one), or for one without by a digest of its body. A requeued message
  comes back with the ``redelivered`` flag set, so only redelivered messages are looked up, and
  only while anything is remembered: one truth test per delivery otherwise. A message that
  caused :data:`CONSUMER_TIMEOUT_LIMIT` closes is dead-lettered with
  :class:`~eventrabbit.errors.ConsumerTimeout` instead of being handled again.
- **Closing.** aiormq sends ``channel.close`` and then waits for the delivery tasks it
  cancelled: a handler that swallows its cancellation would hold that wait forever, so
  :func:`close_channel` abandons it after :data:`CLOSE_TIMEOUT` seconds.
- **Bounds.** The memory belongs to one ``consume`` (it outlives the channels it replaces),
  holds at most :data:`MEMORY_SIZE` messages (the least recently marked are forgotten first)
  and lives in this process only: a message redelivered to another process starts counting
  afresh there. Quorum queues' ``x-delivery-limit`` is the fleet-wide backstop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import aiormq.abc
from aiormq.abc import DeliveredMessage

from .errors import ConsumerTimeout, HandlerTimeout

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A message that caused this many consumer-timeout closes is dead-lettered when it comes back.
CONSUMER_TIMEOUT_LIMIT = 2
#: How many messages the memory of one ``consume`` holds at most.
MEMORY_SIZE = 1024
#: Seconds a channel close may take once the grace time is over (handlers that ignore their
#: cancellation would otherwise hold it forever).
CLOSE_TIMEOUT = 1.0

# RabbitMQ's reply (rabbit_channel, 3.8 to 4.2): "PRECONDITION_FAILED - delivery
# acknowledgement on channel 1 timed out. Timeout value used: 1800000 ms. ..."
_CONSUMER_TIMEOUT = re.compile(r"delivery acknowledgement on channel \d+ timed out")
_TIMEOUT_USED = re.compile(r"Timeout value used: (\d+) ms")

#: A delivery still being handled: when it arrived (``time.monotonic()``) and the message.
Opened = tuple[float, DeliveredMessage]


async def bounded(running: Coroutine[Any, Any, T], seconds: float, queue: str) -> T:
    """Await ``running`` (a handler), cancelling it after ``seconds``.

    :raises HandlerTimeout: it ran longer; it was cancelled.
    """
    limit = asyncio.timeout(seconds)
    try:
        async with limit:
            return await running
    except TimeoutError:
        if not limit.expired():
            raise  # the handler's own TimeoutError: a failure of its own
        raise HandlerTimeout(
            f"the handler ran longer than QueueConfig.handler_timeout ({seconds:g} s) on queue "
            f"{queue!r} and was cancelled",
            queue=queue,
            seconds=seconds,
        ) from None


async def close_channel(
    channel: aiormq.abc.AbstractChannel, queue: str, running: Callable[[], int]
) -> None:
    """Close the channel consuming ``queue``; give up waiting for the ``running()`` handlers
    it cancelled after :data:`CLOSE_TIMEOUT` seconds."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await channel.close()
    except TimeoutError:
        log.error(
            "%d handler(s) on queue %r ignored their cancellation; abandoned (they may still "
            "run); their messages were not acked and go back to the queue",
            running(),
            queue,
        )


def is_consumer_timeout(reason: object) -> bool:
    """Whether a channel closed because of the broker's consumer timeout."""
    return isinstance(reason, BaseException) and bool(_CONSUMER_TIMEOUT.search(str(reason)))


def timeout_used(reason: BaseException) -> str:
    """The consumer timeout the broker's reply names (``"1800 s"``), or ``"consumer_timeout"``."""
    found = _TIMEOUT_USED.search(str(reason))
    return f"{int(found.group(1)) / 1000:g} s" if found else "consumer_timeout"


def message_key(message: DeliveredMessage) -> str:
    """What a message is known by when it comes back: its ``message_id``, else its body."""
    message_id = message.header.properties.message_id
    if isinstance(message_id, str) and message_id:
        return "id:" + message_id
    return "body:" + hashlib.blake2b(message.body, digest_size=16).hexdigest()


class ConsumerTimeouts:
    """The messages of one ``consume`` that the broker's consumer timeout took back, and how
    often it closed a channel."""

    __slots__ = ("_marks", "closes", "size")

    def __init__(self, size: int = MEMORY_SIZE) -> None:
        self.size = size
        #: Channel closes by the consumer timeout so far.
        self.closes = 0
        self._marks: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._marks)

    def mark(self, key: str) -> int:
        """The message ``key`` was the oldest open delivery of a close: how often now."""
        times = self._marks.pop(key, 0) + 1
        self._marks[key] = times
        while len(self._marks) > self.size:
            self._marks.popitem(last=False)
        return times

    def times(self, key: str) -> int:
        """How many closes the message ``key`` caused (0: none remembered)."""
        return self._marks.get(key, 0)

    def overdue(self, message: DeliveredMessage, queue: str) -> ConsumerTimeout | None:
        """The failure to dead-letter a redelivered ``message`` with, if it reached the limit
        (it is forgotten then: a re-driven copy starts afresh)."""
        key = message_key(message)
        times = self._marks.get(key, 0)
        if times < CONSUMER_TIMEOUT_LIMIT:
            return None
        del self._marks[key]
        return ConsumerTimeout(
            f"the message was still being handled when the broker's consumer_timeout closed "
            f"the channel of queue {queue!r}, {times} times; dead-lettered instead of handled "
            "again. Set QueueConfig.handler_timeout below the broker's consumer_timeout",
            queue=queue,
            times=times,
        )

    def channel_closed(
        self, reason: BaseException, queue: str, opened: Mapping[int, Opened], now: float
    ) -> bool:
        """The channel consuming ``queue`` closed for ``reason`` with deliveries ``opened``
        (arrival order) still being handled; count and log it if it was the consumer timeout.

        :returns: whether it was.
        """
        if not is_consumer_timeout(reason):
            return False
        self.closes += 1
        limit = timeout_used(reason)
        if not opened:
            log.error(
                "the broker's consumer timeout (%s) closed the channel of queue %r; its unacked "
                "messages go back to the queue",
                limit,
                queue,
                extra={"queue": queue},
            )
            return True
        tag, (since, message) = next(iter(opened.items()))
        times = self.mark(message_key(message))
        message_id = message.header.properties.message_id
        log.error(
            "the broker's consumer timeout (%s) closed the channel of queue %r: delivery %d "
            "(message %s) was still being handled after %.1f s; it and the channel's other "
            "unacked messages go back to the queue. Set QueueConfig.handler_timeout below the "
            "broker's consumer_timeout (or raise consumer_timeout). This message caused %d "
            "such close(s); at %d it is dead-lettered when it comes back",
            limit,
            queue,
            tag,
            message_id,
            now - since,
            times,
            CONSUMER_TIMEOUT_LIMIT,
            extra={"queue": queue, "message_id": message_id},
        )
        return True
