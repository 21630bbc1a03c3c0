"""A delivery whose frames are all in the buffer, handed to its consumer without aiormq's hop.

Theory of operation
-------------------
aiormq's reader loop puts every frame of a channel into that channel's ``frames`` queue; the
channel's reader task wakes, takes the ``Basic.Deliver``, then (awaiting the queue twice more)
the content header and the body, joins the body in a ``BytesIO`` and starts a task for the
consumer callback. That is three queue hand-offs, a wake-up of the channel's task and an event
loop iteration between the socket and the handler, per message.

When the :class:`~eventrabbit.frame_source.FrameSource` decodes a ``Basic.Deliver``,
:func:`deliver` takes the content header and body frames that follow it from the wire reader's
buffer — the frame source waits for the socket when they are not all there yet: a read may end
inside a message — and starts the consumer's task itself, exactly as the channel's reader
would (``channel.create_task(consumer(message))``, its done callback), but only when nothing
can come before it:

- the channel is aiormq's own ``Channel``, open, with a consumer for the delivery's tag;
- its ``frames`` queue is empty: a frame queued before this delivery (an earlier delivery, a
  ``Basic.Cancel``, a ``Channel.Close``) is handled by the channel's reader first, in order, so
  this one must wait its turn there too. With the queue empty and a ``Basic.Deliver`` next on
  the wire for the channel, its reader is between messages: the frames of one message are
  contiguous on a channel.

Once one delivery went aiormq's way, the next ones would too — a read that ends inside a
message leaves frames queued whenever the next read is decoded — so when frames are queued
before a ``Basic.Deliver``, the frame source first gives the event loop one turn
(:func:`queued_before`): the channel's reader, woken when they were queued, takes them all, and
the delivery can then go straight to its consumer after all.

Otherwise the frames go aiormq's way, in their order: the ``Basic.Deliver`` first, then any
frame :func:`deliver` took from the buffer already (``pending``); so do they when the stream
ends before the content is whole. While the frame source waits for the rest of a message,
nothing else can be put in the channel's queue (the frame source's loop is the only one that
puts there), so the condition still holds when it is whole; the channel's state and the
consumer are looked at again then. A delivery handed over
directly counts as a frame received for aiormq's heartbeat check, as the reader loop would
have counted it.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any, cast

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from .frame_decode import Received, decode
from .wire import WireReader

#: aiormq's reader loop notes when it last received a frame here (private, name-mangled;
#: tests/unit/test_connection.py fails if aiormq renames it).
LAST_FRAME_TIME = "_Connection__last_frame_time"


def queued_before(connection: aiormq.abc.AbstractConnection, received: Received) -> bool:
    """Whether ``received`` is a ``Basic.Deliver`` with frames of its channel still queued for
    the channel's reader (which a turn of the event loop lets it take)."""
    if type(received[2]) is not spec.Basic.Deliver:
        return False
    channel = connection.channels.get(received[1])
    return type(channel) is aiormq.Channel and not channel.frames.empty()


def deliver(
    connection: aiormq.abc.AbstractConnection,
    reader: WireReader,
    received: Received,
    pending: deque[Received],
) -> bool | None:
    """Start the consumer's task for the ``Basic.Deliver`` in ``received`` if nothing can come
    before it (see the module), once its content is whole.

    :param pending: the frames of its content taken from ``reader`` so far (empty at first).
    :returns: ``True`` once handed over; ``None`` while its content is not whole yet (call
        again, with the same ``pending``, when more has arrived); ``False`` if it must go
        aiormq's way, followed by what is left in ``pending``.
    """
    number, frame = received[1], received[2]
    channel = connection.channels.get(number)
    if (
        type(channel) is not aiormq.Channel
        or channel.is_closed
        or not channel.frames.empty()
        or type(frame) is not spec.Basic.Deliver
    ):
        return False
    consumer = channel.consumers.get(frame.consumer_tag) if frame.consumer_tag else None
    if consumer is None:
        return False
    if not pending:
        data = reader.next_frame()
        if data is None:
            return None
        pending.append(decode(data))
    head = pending[0]
    header = head[2]
    if head[1] != number or type(header) is not ContentHeader:
        return False
    size = header.body_size or 0
    parts: list[bytes] = []
    if len(pending) > 1:  # what earlier calls took: body frames of this channel, checked then
        parts += (cast(ContentBody, piece[2]).value for piece in itertools.islice(pending, 1, None))
    got = sum(map(len, parts))
    while got < size:
        data = reader.next_frame()
        if data is None:
            return None
        piece = decode(data)
        pending.append(piece)
        content = piece[2]
        if piece[1] != number or type(content) is not ContentBody:
            return False
        parts.append(content.value)
        got += len(content.value)
    pending.clear()
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    message = DeliveredMessage(delivery=frame, header=header, body=body, channel=channel)
    task: Any = channel.create_task(consumer(message))
    task.add_done_callback(channel._on_consumer_done)
    setattr(connection, LAST_FRAME_TIME, connection.loop.time())
    return True
