"""Messages as the in-memory broker holds them, and the headers it adds when one dies.

Properties go through pamqp's wire encoding on the way in and again on every delivery, as
they would through a real socket: a header value AMQP cannot carry fails at publish time,
timestamps lose their sub-second part, and no two deliveries share a mutable object.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field
from typing import Any

import orjson
from pamqp import commands as spec
from pamqp.header import ContentHeader

#: RabbitMQ's dead-letter history header: a list of tables, newest first.
X_DEATH = "x-death"
#: Why a message was dead-lettered.
EXPIRED = "expired"
REJECTED = "rejected"
DELIVERY_LIMIT = "delivery_limit"


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
    """

    body: bytes
    header: bytes
    exchange: str
    routing_key: str
    seq: int
    redelivered: bool = False
    deadline: float | None = None
    returns: int = 0
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def properties(self) -> spec.Basic.Properties:
        """A fresh decoded copy of the properties."""
        return decode_properties(self.header)

    def cancel_timer(self) -> None:
        """Forget its expiry timer (it left the queue)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


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
    """

    exchange: str
    routing_key: str
    body: bytes
    properties: spec.Basic.Properties
    queues: tuple[str, ...] = ()
    redelivered: bool = False

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


def ttl_of(properties: spec.Basic.Properties) -> float | None:
    """The per-message TTL in seconds from the ``expiration`` property, if it has a valid one."""
    try:
        milliseconds = int(properties.expiration) if properties.expiration else None
    except ValueError:
        return None
    return None if milliseconds is None or milliseconds < 0 else milliseconds / 1000


def record_death(
    properties: spec.Basic.Properties, message: StoredMessage, queue: str, reason: str
) -> spec.Basic.Properties:
    """Add RabbitMQ's dead-letter headers to ``properties`` and drop its ``expiration``.

    ``x-death`` gets an entry per (queue, reason), newest first, counting repeats;
    ``x-first-death-*`` is set once, ``x-last-death-*`` every time.
    """
    headers: dict[str, Any] = dict(properties.headers or {})
    deaths: list[dict[str, Any]] = [dict(d) for d in headers.get(X_DEATH) or [] if d]
    entry = next((d for d in deaths if d.get("queue") == queue and d.get("reason") == reason), None)
    if entry is not None:
        deaths.remove(entry)
        entry["count"] = int(entry.get("count", 0)) + 1
    else:
        entry = {
            "count": 1,
            "reason": reason,
            "queue": queue,
            "time": datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0),
            "exchange": message.exchange,
            "routing-keys": [message.routing_key],
        }
        if properties.expiration:
            entry["original-expiration"] = properties.expiration
    headers[X_DEATH] = [entry, *deaths]
    for prefix, only_first in (("x-first-death-", True), ("x-last-death-", False)):
        for name, value in (("reason", reason), ("queue", queue), ("exchange", message.exchange)):
            if not only_first or prefix + name not in headers:
                headers[prefix + name] = value
    properties.headers = headers
    properties.expiration = None
    return properties


def died_in(properties: spec.Basic.Properties, queue: str) -> bool:
    """Whether dead-lettering into ``queue`` would be a cycle RabbitMQ drops.

    That is: the message already died in ``queue`` and was never rejected since (only
    expiries and limits moved it), so it would go round forever without a consumer's say.
    """
    headers: dict[str, Any] = dict(properties.headers or {})
    for death in headers.get(X_DEATH) or []:
        if death.get("reason") == REJECTED:
            return False
        if death.get("queue") == queue:
            return True
    return False
