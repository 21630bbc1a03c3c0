"""What a walk (:mod:`.dlq_walk`) learns of a queue before it reads: that it exists, its
depth, and whether it is a quorum queue — one that gives back what was read in another way
than a classic queue.

AMQP 0-9-1 does not tell a queue's type, but a quorum queue (and a stream) refuses a consumer
on a channel with a *global* prefetch — RabbitMQ 3.10 answers 540 NOT_IMPLEMENTED "does not
support global qos" and closes the connection, so the probe has a connection of its own. A
classic queue takes the consumer and sends it one message, which goes back to where it was
when the probe's connection closes (flagged redelivered).
"""

from __future__ import annotations

import logging

import aiormq
import aiormq.abc
from aiormq.abc import DeliveredMessage

from eventrabbit.checks import MAX_PREFETCH_COUNT
from eventrabbit.connection import close_connection, open_connection

from .exits import CommandError, Exit

#: What RabbitMQ says when a quorum queue or a stream refuses a global prefetch.
REFUSAL = "does not support global qos"
#: The most consumers a walk of a quorum queue starts: their returns, one nack each after the
#: last cancel (a synchronous call that leaves the queue's client with nothing in flight),
#: stay under its 32 commands in flight.
MAX_CONSUMERS = 16


async def depth(connection: aiormq.abc.AbstractConnection, queue: str) -> int:
    """The ready messages of ``queue``.

    :raises CommandError: (``USAGE``) there is no such queue.
    """
    probe = await connection.channel(publisher_confirms=False)
    try:
        ok = await probe.queue_declare(queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        raise CommandError(f"queue {queue!r} does not exist", Exit.USAGE) from None
    finally:
        if not probe.is_closed:
            await probe.close()  # a 404 closed it already
    return int(ok.message_count or 0)


async def is_quorum(url: str, queue: str) -> bool:
    """Whether ``queue`` (which exists) is a quorum queue or a stream, not a classic queue."""
    connection = await open_connection(url)
    aiormq_log = logging.getLogger("aiormq")
    level = aiormq_log.level
    try:
        channel = await connection.channel(publisher_confirms=False)
        await channel.basic_qos(prefetch_count=1, global_=True)
        aiormq_log.setLevel(logging.CRITICAL)  # the closed connection is the answer, no news
        try:
            await channel.basic_consume(queue, _drop)
        except aiormq.exceptions.AMQPError as exc:
            if REFUSAL in str(exc):
                return True
            raise
        return False
    finally:
        try:
            await close_connection(connection)
        finally:
            aiormq_log.setLevel(level)


async def _drop(message: DeliveredMessage) -> None:
    """The probe's consumer: the message it gets goes back when its connection closes."""


def too_deep(queue: str, depth: int, window: int) -> str:
    """Why a quorum queue this deep cannot be walked with this read-ahead, and what to do."""
    need = -(-depth // MAX_CONSUMERS)
    fix = (
        f"give --read-ahead {need} or more"
        if need <= MAX_PREFETCH_COUNT
        else "move or purge part of it by filter first"
    )
    return (
        f"{queue} is a quorum queue of {depth} messages: it keeps its order only when read "
        f"whole, which takes {MAX_CONSUMERS} x --read-ahead ({window}) >= {depth}: {fix}"
    )
