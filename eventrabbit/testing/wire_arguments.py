"""Binding arguments as the in-memory broker receives them: through the wire, as on RabbitMQ.

aiormq encodes a ``queue.bind``'s arguments with pamqp before anything is sent, so a value
pamqp cannot encode (a ``set``, ``bytes``, an ``int`` beyond 64 bits) raises its
``TypeError`` in the caller and the channel stays open (:func:`as_sent`). What is sent is
what the broker holds: keys cut to 128 bytes, floats as 32 bits, datetimes as whole seconds.

A NaN or an infinity encodes, but RabbitMQ 3.10 cannot parse it (Erlang has no such floats):
it drops the whole connection, which aiormq reports as a reset (:func:`check_parsable`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiormq.exceptions import AMQPConnectionError
from pamqp import decode, encode

from .field_values import is_finite, to_value


def as_sent(arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """``arguments`` through pamqp's codec and back.

    :raises TypeError: what pamqp raises for a value it cannot encode (``OverflowError`` for
        a float beyond 32 bits), exactly as aiormq raises it.
    """
    if not arguments:
        return {}
    return dict(decode.field_table(encode.field_table(dict(arguments)))[1])


def check_parsable(arguments: Mapping[str, Any]) -> None:
    """:raises aiormq.exceptions.AMQPConnectionError: a float RabbitMQ cannot parse, at any
    depth (the broker resets the connection)."""
    if not is_finite(to_value(dict(arguments))):
        raise AMQPConnectionError(
            "Server connection reset: ConnectionResetError(104, 'Connection reset by peer')"
        )
