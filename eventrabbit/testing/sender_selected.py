"""Sender-selected distribution: the ``CC`` and ``BCC`` headers, RabbitMQ 3.10's way.

Theory of operation
-------------------
A message is routed with its routing key and, after it, every routing key its ``CC`` and
``BCC`` headers name — at every exchange it passes, alternate and bound exchanges included.
Each header must be an array: its ``longstr`` elements are routing keys, its other elements
are ignored. Any other type (a plain string too) makes the message invalid: the publish is
refused with 406 and the channel closes — ``CC`` is looked at before ``BCC``. The queues get
the message without its ``BCC`` header (``CC`` stays, so its receivers see who else got it);
the routing key they see is the one it was published with.

A dead letter is routed with the message's routing key, its ``CC`` keys and the ``BCC`` keys
it was published with (kept beside it, :attr:`~.messages.StoredMessage.blind_keys`); its
``x-death`` ``routing-keys`` name the routing key and the ``CC`` keys. A queue's
``x-dead-letter-routing-key`` replaces them all, and the dead letter loses its ``CC``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .field_values import type_name
from .messages import decode_properties, encode_properties
from .refusals import precondition_failed

#: The headers whose routing keys a message is routed with too, in the order RabbitMQ reads
#: them.
ROUTING_HEADERS = ("CC", "BCC")
#: The header the queues never see.
BLIND = "BCC"


def invalid_header(headers: Mapping[str, Any] | None) -> str | None:
    """Why RabbitMQ refuses a message with these ``headers``, or ``None``."""
    for name in ROUTING_HEADERS:
        if headers and name in headers and not isinstance(headers[name], list):
            kind = type_name(headers[name])
            return f'invalid message: {{unacceptable_type_in_header,"{name}",{kind}}}'
    return None


def copied_keys(headers: Mapping[str, Any] | None) -> list[str]:
    """The routing keys ``CC`` and ``BCC`` add, in order (the ``longstr`` ones of each).

    :raises aiormq.exceptions.ChannelPreconditionFailed: a ``CC`` or ``BCC`` that is not
        an array.
    """
    why = invalid_header(headers)
    if why is not None:
        raise precondition_failed(why)
    return [key for name in ROUTING_HEADERS for key in keys_of(headers, name)]


def keys_of(headers: Mapping[str, Any] | None, name: str) -> list[str]:
    """The routing keys of header ``name`` (``CC`` or ``BCC``): its ``longstr`` elements
    when it is an array, else none."""
    value = (headers or {}).get(name)
    return [key for key in value if isinstance(key, str)] if isinstance(value, list) else []


def without_blind(headers: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The headers the queues get: ``None`` if they are the same, else without ``BCC``."""
    if not headers or BLIND not in headers:
        return None
    return {name: value for name, value in headers.items() if name != BLIND}


def hide_blind(header: bytes, body_size: int) -> bytes:
    """The encoded content header the queues get: ``header`` without its ``BCC``."""
    properties = decode_properties(header)
    shown = without_blind(properties.headers)
    if shown is None:
        return header
    properties.headers = shown
    return encode_properties(properties, body_size)
