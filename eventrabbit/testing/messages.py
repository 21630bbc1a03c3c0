"""Messages as the in-memory broker holds them (:class:`StoredMessage`) and as a test sees
them (:class:`Message`), and their properties on the wire.

Properties go through pamqp's wire encoding on the way in and again on every delivery, as
they would through a real socket: a header value AMQP cannot carry fails at publish time,
timestamps lose their sub-second part, and no two deliveries share a mutable object.

A message's ``expiration`` is its TTL in milliseconds, read as RabbitMQ 3.10 reads it
(Erlang's ``string:to_integer``): an optional sign and ASCII digits, nothing before or after
them, at least 0 and at most ten years (:func:`expiration_error`). Anything else is refused
with 406, which closes the publishing channel (:func:`ttl_of`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from pamqp import commands as spec
from pamqp.header import ContentHeader

from .. import envelope
from .refusals import precondition_failed

#: The longest TTL RabbitMQ takes: ten years, in milliseconds.
MAX_EXPIRATION = 315_360_000_000
#: What ``string:to_integer`` reads: a sign and ASCII digits, then whatever is left over.
_INTEGER = re.compile(r"([+-]?[0-9]+)(.*)", re.ASCII | re.DOTALL)


def encode_properties(properties: spec.Basic.Properties, body_size: int) -> bytes:
    """The content header as it goes on the wire.

    :raises TypeError: a property or header value AMQP cannot encode.
    """
    return ContentHeader(properties=properties, body_size=body_size).marshal()


def decode_properties(header: bytes) -> spec.Basic.Properties:
    """Fresh properties from an encoded content header."""
    content = ContentHeader()
    content.unmarshal(header)
    return content.properties


@dataclass(slots=True, eq=False)
class StoredMessage:
    """One copy of a message in one queue.

    :param exchange: the exchange it was published (or dead-lettered) to.
    :param routing_key: the routing key it came with.
    :param seq: the broker-wide arrival order; a requeued message goes back to its place.
    :param deadline: ``time.monotonic()`` at which it expires, if it has a TTL.
    :param returns: how often it was requeued (the delivery count of quorum queues).
    :param blind_keys: the routing keys of the ``BCC`` header it was published with: the
        queues get it without that header, but a dead letter of it is routed with them too.
    """

    body: bytes
    header: bytes
    exchange: str
    routing_key: str
    seq: int
    redelivered: bool = False
    deadline: float | None = None
    returns: int = 0
    blind_keys: tuple[str, ...] = ()

    @property
    def properties(self) -> spec.Basic.Properties:
        """A fresh decoded copy of the properties."""
        return decode_properties(self.header)


@dataclass(slots=True, frozen=True)
class Message:
    """A message as a test sees it: in a queue (:meth:`MemoryBroker.messages`) or published
    (:attr:`MemoryBroker.published`).

    :param exchange: the exchange it was published to (``""`` for the default exchange).
    :param routing_key: the routing key it was published with.
    :param body: the raw body.
    :param properties: the AMQP properties (``headers``, ``reply_to``, ``message_id``, ...).
    :param queues: the queues it reached (for a published message; a direct reply names the
        ``amq.rabbitmq.reply-to.*`` address it went to); empty when it was unroutable.
    :param redelivered: it was delivered before and came back (for a queued message).
    :param rejected: the queues among ``queues`` that refused it, being full
        (``x-overflow`` ``reject-publish``): the publisher gets a ``basic.nack``.
    """

    exchange: str
    routing_key: str
    body: bytes
    properties: spec.Basic.Properties
    queues: tuple[str, ...] = ()
    redelivered: bool = False
    rejected: tuple[str, ...] = ()

    @property
    def headers(self) -> dict[str, Any]:
        """The message's headers (an empty dict if it has none)."""
        return dict(self.properties.headers or {})

    def json(self) -> Any:
        """The body parsed as JSON, e.g. ``{"action": ..., "data": ...}``."""
        return orjson.loads(self.body)

    @classmethod
    def of(cls, stored: StoredMessage) -> Message:
        """The snapshot of a queued message."""
        return cls(
            exchange=stored.exchange,
            routing_key=stored.routing_key,
            body=stored.body,
            properties=stored.properties,
            redelivered=stored.redelivered,
        )


def body_of(body: Any, action: str | None = None) -> bytes:
    """A body as a test gives it, as it goes on the wire (see ``MemoryBroker.publish``).

    With ``action``: the event envelope ``{"action": action, "data": body}``. Without:
    ``bytes`` as they are, a ``str`` as UTF-8, anything else as JSON.
    """
    if action is not None:
        return envelope.encode(action, body)
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body)


def expiration_error(expiration: str) -> str | None:
    """Why RabbitMQ refuses ``expiration``, in its words, or ``None`` for a valid one."""
    match = _INTEGER.fullmatch(expiration)
    if match is None:
        return "no_integer"
    digits, leftover = match.groups()
    if leftover:
        return f'{{leftover_string,"{leftover}"}}'
    milliseconds = int(digits)
    if milliseconds < 0:
        return f"{{value_negative,{milliseconds}}}"
    if milliseconds > MAX_EXPIRATION:
        return f"{{value_too_large,{milliseconds}}}"
    return None


def ttl_of(properties: spec.Basic.Properties) -> float | None:
    """The per-message TTL in seconds from the ``expiration`` property, if it has one.

    :raises aiormq.exceptions.ChannelPreconditionFailed: an invalid ``expiration``.
    """
    expiration = properties.expiration
    if not expiration:  # pamqp sends an empty one as none at all
        return None
    error = expiration_error(expiration)
    if error is not None:
        raise precondition_failed(f"invalid expiration '{expiration}': {error}")
    return int(expiration) / 1000
