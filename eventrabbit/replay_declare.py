"""Capture: declaring a stream: its exchange, the stream, its bindings, and (for a replay that
dead-letters) ``<stream>.dlq``.

Idempotent, so a reader declares again after every reconnect. What cannot work — a queue of
that name that is not a stream, other retention arguments, a missing exchange, a permission —
is a :class:`~eventrabbit.errors.TopologyError`, never retried.
"""

from __future__ import annotations

from typing import Any

import aiormq
import aiormq.abc

from .common import ConsumeChannel
from .connection import Endpoints, close_connection
from .permissions import CONNECTION_REFUSALS, connection_refused, declare_refused, refused
from .streams import StreamChannel, stream_arguments
from .topology import dead_letter_queue_name, declare_exchange


async def capture(stream: StreamChannel) -> None:
    """Declare ``stream`` and bind it to its exchange: from now on it records every event
    published there. Idempotent; ``replay`` and ``follow`` declare it too.

    :raises TopologyError: it cannot be declared or bound as asked.
    :raises BrokerUnavailable: no node of ``stream.url`` answered.
    """
    connection = await Endpoints(stream.urls).connect()
    try:
        channel = await connection.channel(publisher_confirms=False)
        await declare_stream(channel, stream)
    finally:
        await close_connection(connection)


async def declare_stream(
    channel: aiormq.abc.AbstractChannel, source: StreamChannel, *, dead_letters: bool = False
) -> None:
    """Declare ``source``'s exchange (as ``consume`` does), its stream, and bind it.

    :param dead_letters: declare ``<stream>.dlq`` too (a durable classic queue).
    :raises TopologyError: see the module's docstring.
    """
    stream = source.stream_name
    try:
        if source.exchange_name:
            # The exchange is declared exactly as a work queue's is (same reuse rules).
            as_queue = ConsumeChannel(
                source.url,
                stream,
                source.exchange_name,
                source.exchange_type,
                exchange_durable=source.exchange_durable,
            )
            await declare_exchange(channel, as_queue, source.exchange_name)
        await _declare(channel, stream, stream_arguments(source), stream)
        if dead_letters:
            await _declare(channel, dead_letter_queue_name(stream), None, stream)
        if source.exchange_name:
            for key in source.routing_keys():
                try:
                    await channel.queue_bind(stream, source.exchange_name, routing_key=key)
                except aiormq.exceptions.ChannelAccessRefused as exc:
                    raise refused(
                        exc, "bind", queue=stream, exchange=source.exchange_name
                    ) from None
    except CONNECTION_REFUSALS as exc:
        raise connection_refused(exc, queue=stream) from None


async def _declare(
    channel: aiormq.abc.AbstractChannel, name: str, arguments: dict[str, Any] | None, stream: str
) -> None:
    try:
        await channel.queue_declare(name, durable=True, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise declare_refused(exc, name, queue=stream) from None
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise refused(exc, "declare", queue=stream, permission="configure") from None
