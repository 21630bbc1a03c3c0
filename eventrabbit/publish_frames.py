"""A confirmed publish written straight to the socket when nothing can come between.

Theory of operation
-------------------
aiormq's ``Channel.basic_publish`` builds three pamqp frame objects per message, marshals them
through pamqp's generic walk into a ``BytesIO``, enters two async context managers and the
channel's lock, and hands the bytes to the connection's writer task through a queue — which
wakes that task once per message to write them. For a pipelined publish that is about half of
what the whole publish costs.

:func:`encode` writes the same bytes (``Basic.Publish``, the content header, the body frames
split at the channel's ``max_content_size``) in straight-line code; :func:`send` then does
what ``basic_publish`` does under its lock — the next delivery tag, a confirmation future in
the channel's own future store (so that closing the channel rejects it) and, for a returned
message, the ``message_id`` → tag entry aiormq's ``Basic.Return`` handler looks up — and writes
the bytes to the connection's transport itself.

That is only right when nothing else can come between the tag and the bytes on the wire, so
:func:`send` does it only when all of these hold, and otherwise returns ``None`` (the caller
then uses ``basic_publish``):

- the channel is aiormq's own ``Channel`` in confirm mode on a connection of
  :mod:`eventrabbit.amqp_connection` (it keeps the transport's writer as ``stream_writer``);
- no one holds the channel's lock: aiormq numbers a publish under it and may wait, still
  holding it, for room in the write queue — a publish numbered after it but written before it
  would have the broker confirm each under the other's tag;
- the connection's write queue has room. If it is empty the bytes go to the transport at once;
  if not, a frame queued before this publish must be written before it (another publish, an
  ack, a ``Channel.Close``), so they join the queue behind it, for aiormq's writer task.

A channel, connection or transport that is closed or closing fails the publish at once
(``ChannelInvalidStateError``, which the caller treats as a lost channel and sends again on the
next): between the transport closing and aiormq marking the channel closed, ``basic_publish``
would queue the frames for a writer task that has stopped, and wait there until the deadline.

Under these conditions the order of tags is the order of the bytes, which is all the broker's
confirms rely on; the frames written are the very ones aiormq would write
(``tests/unit/test_publish_frames.py`` compares them).
"""

from __future__ import annotations

import asyncio
import functools
import struct
from random import getrandbits
from typing import Any

import aiormq
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp import constants

_METHOD_HEAD = struct.Struct(">BHIHHH").pack  # frame type 1, channel, size, class 60, method 40
_HEADER_HEAD = struct.Struct(">BHIHHQ").pack  # frame type 2, channel, size, class 60, weight
_BODY_HEAD = struct.Struct(">BHI").pack  # frame type 3, channel, size
_END = b"\xce"
_METHOD, _HEADER, _BODY = 1, 2, 3
_BASIC, _PUBLISH = 60, 40
_EXCHANGE_NAME = constants.DOMAIN_REGEX["exchange-name"]
_EXCHANGE_MAX = 127


def encode(
    channel: int,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    properties: spec.Basic.Properties,
    body: bytes,
    max_content_size: int,
) -> bytes | None:
    """The frames of one ``Basic.Publish``; ``None`` for an exchange name pamqp refuses or a
    routing key too long for a short string (``basic_publish`` then says what is wrong)."""
    ex, key = exchange.encode(), routing_key.encode()
    if len(key) > 255 or not _exchange_ok(exchange):
        return None
    # 2 + 2 + 2 (class, method, reserved) + both short strings + the bits octet.
    method_size = 9 + len(ex) + len(key)
    props = properties.marshal()
    parts = [
        _METHOD_HEAD(_METHOD, channel, method_size, _BASIC, _PUBLISH, 0),
        bytes((len(ex),)),
        ex,
        bytes((len(key),)),
        key,
        b"\x01\xce" if mandatory else b"\x00\xce",
        _HEADER_HEAD(_HEADER, channel, 12 + len(props), _BASIC, 0, len(body)),
        props,
        _END,
    ]
    if body:
        if len(body) < max_content_size:
            parts += (_BODY_HEAD(_BODY, channel, len(body)), body, _END)
        else:
            for start in range(0, len(body), max_content_size):
                chunk = body[start : start + max_content_size]
                parts += (_BODY_HEAD(_BODY, channel, len(chunk)), chunk, _END)
    return b"".join(parts)


def new_id() -> str:
    """A random 128-bit id as 32 hex digits (no system call, unlike ``uuid4``): message ids,
    correlation ids (:mod:`eventrabbit.confirm` hands it on)."""
    return f"{getrandbits(128):032x}"


@functools.lru_cache(maxsize=1024)
def _exchange_ok(name: str) -> bool:
    """Whether pamqp's ``Basic.Publish`` takes ``name`` (it checks length and characters)."""
    return len(name) <= _EXCHANGE_MAX and _EXCHANGE_NAME.fullmatch(name) is not None


def _route(channel: aiormq.abc.AbstractChannel) -> asyncio.StreamWriter | asyncio.Queue[Any] | None:
    """Where :func:`send` may put this channel's publish now: the transport's writer, the
    connection's write queue, or nowhere (``None``: ``basic_publish`` must).

    :raises ChannelInvalidStateError: the channel, its connection or the transport is closed
        or closing: ``basic_publish`` would queue the frames for a writer task that has
        stopped, and wait there until its deadline.
    """
    if type(channel) is not aiormq.Channel or not channel.publisher_confirms:
        return None
    connection = channel.connection
    writer: asyncio.StreamWriter | None = getattr(connection, "stream_writer", None)
    if writer is None:
        return None
    if channel.is_closed or connection.is_closed or writer.transport.is_closing():
        raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} is closed or closing")
    # aiormq's ``lock`` property makes a context manager per use; the lock itself is private
    # (tests/unit/test_publish_frames.py fails if aiormq renames it).
    lock: asyncio.Lock | None = getattr(channel, "_Channel__lock", None)
    if lock is None or lock.locked():
        return None
    queue: asyncio.Queue[Any] = channel.write_queue
    if queue.empty():
        return writer
    return None if queue.full() else queue


def send(
    channel: aiormq.abc.AbstractChannel,
    *,
    exchange: str,
    routing_key: str,
    properties: spec.Basic.Properties,
    body: bytes,
    mandatory: bool,
) -> asyncio.Future[Any] | None:
    """Write the publish and return its confirmation, or ``None`` where it may not (see the
    module). The confirmation is aiormq's: a ``Basic.Ack``; ``DeliveryError`` for a nack;
    ``PublishError`` for a returned message; the channel's close reason when it closes.

    :raises ChannelInvalidStateError: the channel or its connection is closing (see
        :func:`_route`).
    """
    route = _route(channel)
    if route is None:
        return None
    assert isinstance(channel, aiormq.Channel)  # _route checked it; for the type checker
    if not properties.message_id:
        # As basic_publish does: a returned message is matched to its publish by this id.
        properties.message_id = new_id()
    payload = encode(
        channel.number,
        exchange,
        routing_key,
        mandatory,
        properties,
        body,
        channel.max_content_size,
    )
    if payload is None:
        return None
    channel.delivery_tag += 1
    tag = channel.delivery_tag
    confirmation = channel.create_future()
    channel.confirmations[tag] = confirmation
    message_id = properties.message_id
    if mandatory:
        # aiormq finds a returned message's confirmation by its message_id; the entry goes
        # when the confirmation is done, unless a later publish took the id over.
        tags = channel.message_id_delivery_tag
        tags[message_id] = tag

        def forget(_: asyncio.Future[Any]) -> None:
            if tags.get(message_id) == tag:
                del tags[message_id]

        confirmation.add_done_callback(forget)
    if isinstance(route, asyncio.StreamWriter):
        route.write(payload)
    else:
        route.put_nowait(ChannelFrame(payload=payload, should_close=False))
    return confirmation
