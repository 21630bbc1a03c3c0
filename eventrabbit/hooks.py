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

from typing import Any

from .observed import Call, ConnectionEvent, Delivery, FailureDecision, Publish, Result


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
        """A connection opened, was lost, reopened, was blocked or unblocked."""
