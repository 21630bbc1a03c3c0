"""The instrumentation seam: what a service's hooks are told, and when.

A hook is a subclass of :class:`Hooks` given to ``build_event_dependencies(..., hooks=[...])``;
it overrides only the methods it needs (every one is a no-op here). Tracing, metrics and
health checks are built on it; eventrabbit itself installs none.

Theory of operation
-------------------
- **Started, then finished.** A delivery, a publish and an RPC call are each reported twice:
  ``*_started`` returns a *state* of the hook's choosing (a span, a start time, ``None``), and
  ``*_finished`` gets that state back with the :class:`Result`. Both run in the task doing the
  work — a delivery's in the task that runs its handler, right before the handler's body —
  so a hook may make a span current (a ``contextvars`` token in its state) and end it in
  ``*_finished``. Whatever happens in between (a function's publish, a reply, an RPC call's
  request) sees it. With several hooks, ``*_finished`` runs in the reverse order.
- **Headers.** ``publish_started`` gets the outgoing message's headers as a dict it may add
  to (``traceparent``); a delivery's :attr:`Delivery.headers` are the incoming ones. Retry
  copies and dead letters keep the original's headers as they arrived.
- **A hook cannot break handling.** An exception a hook raises is logged (once per hook and
  method, then at DEBUG) and otherwise ignored; a hook whose ``*_started`` raised is not told
  ``*_finished`` for that piece of work.
- **No hooks, no cost.** Without hooks none of this runs, and no object is built.
- **Read-only.** Every hook is handed the same objects. :class:`Delivery`, :class:`Publish` and
  :class:`Result` are built for every message, so they are plain slotted dataclasses (a frozen
  one costs three times as much to build); a hook must not change them. The others are frozen.
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
    """What happened to a consumer's connection."""

    #: The consumer started consuming for the first time.
    CONNECTED = "connected"
    #: Its channel or connection was lost; it reconnects with backoff.
    LOST = "lost"
    #: It consumes again after a loss.
    RECONNECTED = "reconnected"


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
    """A consumer's connection changed (one event per ``consume``, by queue).

    :param state: see :class:`ConnectionState`.
    :param queue: the queue the ``consume`` consumes.
    :param broker: the broker's URL (or URLs), censored.
    :param reason: why it was lost (``LOST``).
    """

    state: ConnectionState
    queue: str
    broker: str
    reason: str | None = None


class Hooks:
    """The base of every hook: all no-ops; override what you need.

    Methods are plain functions called in the task doing the work: keep them short, and hand
    slow work (an exporter's network call) to a task or thread of your own.
    """

    def delivery_started(self, delivery: Delivery) -> Any:
        """A delivery's handler is about to run (bad input: told just before it ends).

        :returns: a state handed back to :meth:`delivery_finished`.
        """
        return None

    def delivery_finished(self, state: Any, delivery: Delivery, result: Result) -> None:
        """A delivery ended: acked, retried, dead-lettered or left unacked."""

    def publish_started(self, publish: Publish, headers: dict[str, Any]) -> Any:
        """A message is about to be published; add to ``headers`` to send more of them.

        :returns: a state handed back to :meth:`publish_finished`.
        """
        return None

    def publish_finished(self, state: Any, publish: Publish, result: Result) -> None:
        """A publish ended: confirmed, unroutable, failed or (a reply) dropped."""

    def call_started(self, call: Call) -> Any:
        """An RPC call starts; its request is published after this.

        :returns: a state handed back to :meth:`call_finished`.
        """
        return None

    def call_finished(self, state: Any, call: Call, result: Result) -> None:
        """An RPC call ended: replied, timed out, unroutable or failed."""

    def failure_decided(self, decision: FailureDecision) -> None:
        """A failed delivery is about to be retried or dead-lettered."""

    def connection_changed(self, event: ConnectionEvent) -> None:
        """A consumer connected, lost its connection, or reconnected."""
