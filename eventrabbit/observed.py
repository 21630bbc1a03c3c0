"""What hooks are told: the work observed (a delivery, a publish, a call, a failure decision,
a connection change), how it ended, and the enums naming both. See :mod:`eventrabbit.hooks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How a delivery, a publish or an RPC call ended (the value is the log field's)."""

    #: A delivery was handled and acked.
    ACKED = "acked"
    #: A delivery failed; its retry copy was confirmed and it was acked.
    RETRIED = "retried"
    #: A delivery failed for good or was bad input; its dead letter was confirmed, it was acked.
    DEAD_LETTERED = "dead-lettered"
    #: A delivery was left unacked: the broker redelivers it (its copy could not be published,
    #: or the service stopped while it ran).
    LEFT_UNACKED = "left-unacked"
    #: A publish was confirmed by the broker and reached a queue.
    CONFIRMED = "confirmed"
    #: A publish was confirmed but reached no queue; a call's request reached no queue.
    UNROUTABLE = "unroutable"
    #: A publish the broker did not take (or that timed out); a call that failed otherwise.
    FAILED = "failed"
    #: A reply that was not published at all: its address cannot be delivered to.
    DROPPED = "dropped"
    #: A call got its result.
    REPLIED = "replied"
    #: A call got no reply within its timeout.
    TIMED_OUT = "timed-out"


class PublishKind(StrEnum):
    """What a publish is."""

    #: An event: ``events.publish``, a producer, a function's result.
    EVENT = "event"
    #: An RPC call's request (``events.call``).
    REQUEST = "request"
    #: A reply to a request that carried ``reply_to``.
    REPLY = "reply"


class ConnectionState(StrEnum):
    """What happened to a connection."""

    #: It opened: a consumer consumes for the first time, a publisher or RPC client connected.
    CONNECTED = "connected"
    #: It was lost (a consumer's channel too); it is reopened (a consumer's with backoff).
    LOST = "lost"
    #: It works again after a loss.
    RECONNECTED = "reconnected"
    #: The broker stopped reading its publishes: a resource alarm (``reason`` says which).
    BLOCKED = "blocked"
    #: The alarm cleared.
    UNBLOCKED = "unblocked"


class ConnectionRole(StrEnum):
    """Whose connection an event is about."""

    #: A ``consume`` (its replies and retry copies use the same connection).
    CONSUMER = "consumer"
    #: The publisher of ``events`` (producers, functions' results, ``events.publish``).
    PUBLISHER = "publisher"
    #: The RPC client of ``events`` (``events.call``).
    RPC = "rpc"


@dataclass(slots=True)  # not frozen: built per message (see "Read-only")
class Delivery:
    """A consumed message, as a hook is told about it.

    :param queue: the queue it was consumed from.
    :param exchange: the exchange it was published to (``""``: the default exchange).
    :param routing_key: its routing key.
    :param action: its event type; ``None`` when the body could not be read as an event.
    :param message_id: its ``message_id`` property, if any.
    :param correlation_id: its ``correlation_id`` property, if any.
    :param retry_count: the retries done before this delivery (its ``x-retry-count``).
    :param redelivered: the broker delivered it before (the redelivered flag).
    :param headers: its headers as they arrived (read-only).
    :param delivery_tag: its delivery tag on the consumer's channel.
    :param server_address: the host of the broker node it came from.
    :param server_port: that node's port.
    """

    queue: str
    exchange: str
    routing_key: str
    action: str | None
    message_id: str | None
    correlation_id: str | None
    retry_count: int
    redelivered: bool
    headers: Mapping[str, Any]
    delivery_tag: int = 0
    server_address: str | None = None
    server_port: int | None = None


@dataclass(slots=True)  # not frozen: built per message (see "Read-only")
class Publish:
    """A message being published with a confirm.

    :param kind: an event, a request or a reply.
    :param exchange: the exchange (``""``: the default exchange).
    :param routing_key: the routing key (a reply's: the caller's address).
    :param action: the event's or request's action; ``None`` for a reply.
    :param message_id: its ``message_id`` (replies have none).
    :param correlation_id: its ``correlation_id`` (requests and replies).
    :param server_address: the host of the broker node it goes to, when a connection is open
        as it starts (``None``: it opens one first).
    :param server_port: that node's port.
    """

    kind: PublishKind
    exchange: str
    routing_key: str
    action: str | None
    message_id: str | None
    correlation_id: str | None
    server_address: str | None = None
    server_port: int | None = None


@dataclass(slots=True, frozen=True)
class Call:
    """An RPC call (``events.call``): its request is published inside it.

    :param action: the requested action.
    :param exchange: where the request is published.
    :param routing_key: its routing key.
    :param correlation_id: what the reply is matched by.
    """

    action: str
    exchange: str
    routing_key: str
    correlation_id: str


@dataclass(slots=True)  # not frozen: built per message (see "Read-only")
class Result:
    """How a delivery, publish or call ended.

    :param outcome: see :class:`Outcome`.
    :param duration: seconds from its start (a delivery's arrival) to its end.
    :param error: the exception: what the handler raised (a delivery retried or
        dead-lettered), why a publish or call failed, why a delivery was left unacked.
    """

    outcome: Outcome
    duration: float
    error: BaseException | None = None


@dataclass(slots=True, frozen=True)
class FailureDecision:
    """A failed delivery is retried or dead-lettered; told before its copy is published.

    :param queue: the queue it failed on.
    :param action: its action, if the body could be read.
    :param message_id: its ``message_id``.
    :param retry_count: the retries done before this delivery.
    :param outcome: :attr:`Outcome.RETRIED` or :attr:`Outcome.DEAD_LETTERED`.
    :param target: where the copy goes: ``<queue>.delay`` or ``<queue>.dlq``.
    :param reason: what ``x-eventrabbit-error`` says (the exception or the bad input).
    :param error: the exception.
    """

    queue: str
    action: str | None
    message_id: str | None
    retry_count: int
    outcome: Outcome
    target: str
    reason: str
    error: BaseException


@dataclass(slots=True, frozen=True)
class ConnectionEvent:
    """A connection changed (a consumer's: one event per ``consume`` using it).

    :param state: see :class:`ConnectionState`.
    :param queue: the queue the ``consume`` consumes; ``None`` for the publisher and RPC client.
    :param broker: the broker's URL (or URLs), censored.
    :param reason: why it was lost (``LOST``) or blocked (``BLOCKED``).
    :param role: whose connection it is.
    """

    state: ConnectionState
    queue: str | None
    broker: str
    reason: str | None = None
    role: ConnectionRole = ConnectionRole.CONSUMER
