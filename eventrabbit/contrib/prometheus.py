"""Prometheus metrics for an eventrabbit service: a :class:`~eventrabbit.Hooks` subclass.

.. code-block:: python

    from eventrabbit.contrib.prometheus import PrometheusHooks

    events, handle = build_event_dependencies(URL, hooks=[PrometheusHooks()])

Theory of operation
-------------------
- **Only the public seam.** Every metric is updated from a hook method, in the task doing the
  work; nothing is polled and nothing is exported here (serve ``registry`` yourself, e.g.
  ``prometheus_client.start_http_server``).
- **When it counts.** A delivery is counted in ``delivery_finished``, once its ack, retry
  copy or dead letter is confirmed; so are its retry and dead letter. A delivery left unacked
  (its copy could not be published) is counted as ``left-unacked`` and, when redelivered,
  again with how that ended. The in-flight gauge covers a handler from
  ``delivery_started`` (right before its body runs) to ``delivery_finished``.
- **Bounded labels.** No label takes free text: not a message id, a routing key, an error's
  message. ``reason`` is an exception's class name (``InvalidMessage`` for bad input). An
  ``action`` label is an action whose handler ran, one the service published or called, or
  one of the ``actions`` given; the action a bad message names is used only when it is one of
  those, else it is ``unknown`` (as is an unreadable body's and a reply's). At most
  ``max_actions`` distinct actions are labelled; later new ones are ``other``.
- **One instance per registry.** The metrics are registered when the hook is built; a second
  hook on the same registry (and namespace) raises ``ValueError`` (duplicated timeseries).
- **Cheap per message.** The metrics updated for every message are plain numbers exposed at
  scrape time (:mod:`.prometheus_tallies`); only the rare ones (retries, dead letters,
  connections) are prometheus_client's own objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from eventrabbit import (
    Call,
    ConnectionEvent,
    ConnectionState,
    Delivery,
    Hooks,
    InvalidMessage,
    Outcome,
    Publish,
    Result,
)

from .prometheus_tallies import Exposition, Tally, Timings

#: The label of an action that is unreadable, untrusted (named by bad input only) or absent.
UNKNOWN = "unknown"
#: The label of a new action once ``max_actions`` are labelled.
OTHER = "other"
#: How many distinct action labels a hook uses at most, by default.
MAX_ACTIONS = 200


class ActionLabels:
    """Turns actions into bounded label values.

    :param known: actions trusted from the start (e.g. those of the service's handlers).
    :param limit: the most distinct actions labelled; a new one past it is :data:`OTHER`.
    """

    def __init__(self, known: Iterable[str] = (), limit: int = MAX_ACTIONS) -> None:
        self.limit = limit
        self.known: set[str] = set()
        for action in known:
            self.label(action, trusted=True)

    def label(self, action: str | None, *, trusted: bool) -> str:
        """The label of ``action``; a ``trusted`` one (a handler ran for it, the service
        published it) is learnt, an untrusted one is used only if already known."""
        if action is None:
            return UNKNOWN
        if action in self.known:
            return action
        if not trusted:
            return UNKNOWN
        if len(self.known) >= self.limit:
            return OTHER
        self.known.add(action)
        return action


def reason_class(error: BaseException | None) -> str:
    """A dead letter's ``reason`` label: ``InvalidMessage`` for bad input, else the class name
    of the exception (never its message)."""
    if error is None:
        return UNKNOWN
    if isinstance(error, InvalidMessage):
        return "InvalidMessage"
    return type(error).__name__


class PrometheusHooks(Hooks):
    """Counts, times and gauges a service's deliveries, publishes, calls and connections.

    :param registry: where the metrics are registered (default: prometheus_client's global).
    :param namespace: the metric names' prefix.
    :param actions: action names to label from the start (see the module's docstring).
    :param max_actions: the most distinct ``action`` label values.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        namespace: str = "eventrabbit",
        actions: Iterable[str] = (),
        max_actions: int = MAX_ACTIONS,
    ) -> None:
        self.actions = ActionLabels(actions, max_actions)
        common: dict[str, Any] = {"namespace": namespace, "registry": registry}
        prefix = f"{namespace}_" if namespace else ""
        # Updated for every message: plain numbers, exposed at scrape time (prometheus_tallies).
        self.consumed = Tally(
            f"{prefix}messages_consumed",
            "Deliveries that ended, by queue, action and outcome.",
            ["queue", "action", "outcome"],
        )
        self.handler_duration = Timings(
            f"{prefix}handler_duration_seconds",
            "Seconds from a delivery's arrival to its end (handler, then ack or copy).",
            ["queue", "action"],
        )
        self.in_flight = Tally(
            f"{prefix}messages_in_flight", "Handlers running, by queue.", ["queue"], gauge=True
        )
        self.published = Tally(
            f"{prefix}messages_published",
            "Publishes that ended, by exchange, action, kind and outcome.",
            ["exchange", "action", "kind", "outcome"],
        )
        self.publish_duration = Timings(
            f"{prefix}publish_duration_seconds",
            "Seconds from a publish's start to its confirm (or failure).",
            ["exchange", "kind"],
        )
        self.calls = Tally(
            f"{prefix}rpc_calls",
            "RPC calls that ended, by action and outcome.",
            ["action", "outcome"],
        )
        self.call_duration = Timings(
            f"{prefix}rpc_duration_seconds", "Seconds an RPC call took.", ["action"]
        )
        hot: list[Tally | Timings] = [
            self.consumed,
            self.handler_duration,
            self.in_flight,
            self.published,
            self.publish_duration,
            self.calls,
            self.call_duration,
        ]
        if registry is not None:
            registry.register(Exposition(hot))
        # Rare: prometheus_client's own metric objects.
        self.retries = Counter(
            "retries", "Deliveries retried (copy confirmed).", ["queue", "action"], **common
        )
        self.dead_letters = Counter(
            "dead_letters",
            "Deliveries dead-lettered (dead letter confirmed), by reason class.",
            ["queue", "action", "reason"],
            **common,
        )
        self.reconnects = Counter(
            "reconnects",
            "Connections that work again after a loss, by role (consumer, publisher, rpc) and "
            "queue (a consumer's; empty for the others).",
            ["role", "queue"],
            **common,
        )
        self.connected = Gauge(
            "connected",
            "1: the connection is open; 0: it was lost.",
            ["role", "queue"],
            **common,
        )
        self.blocked = Gauge(
            "blocked",
            "1: the broker blocks the connection's publishes (a resource alarm); 0: it does not.",
            ["role", "queue"],
            **common,
        )

    # The two methods below run for every message: the tallies' dicts are updated inline and
    # the outcome is a key as it is (a StrEnum; its text is taken at scrape time).
    def delivery_started(self, delivery: Delivery) -> Any:
        values, key = self.in_flight.values, (delivery.queue,)
        values[key] = values.get(key, 0) + 1
        return key  # what delivery_finished takes back out of the in-flight gauge

    def delivery_finished(self, state: Any, delivery: Delivery, result: Result) -> None:
        queue, action = delivery.queue, delivery.action
        if state is not None:
            self.in_flight.values[state] -= 1
        if action is None or action not in self.actions.known:
            # Bad input names an action no handler ran for: trusted only if already known.
            trusted = not isinstance(result.error, InvalidMessage)
            action = self.actions.label(action, trusted=trusted)
        outcome, values = result.outcome, self.consumed.values
        key = (queue, action, outcome)
        values[key] = values.get(key, 0) + 1
        self.handler_duration.observe((queue, action), result.duration)
        if outcome is Outcome.RETRIED:
            self.retries.labels(queue, action).inc()
        elif outcome is Outcome.DEAD_LETTERED:
            self.dead_letters.labels(queue, action, reason_class(result.error)).inc()

    def publish_finished(self, state: Any, publish: Publish, result: Result) -> None:
        action = self.actions.label(publish.action, trusted=True)
        kind = publish.kind.value
        self.published.add((publish.exchange, action, kind, result.outcome.value))
        self.publish_duration.observe((publish.exchange, kind), result.duration)

    def call_finished(self, state: Any, call: Call, result: Result) -> None:
        action = self.actions.label(call.action, trusted=True)
        self.calls.add((action, result.outcome.value))
        self.call_duration.observe((action,), result.duration)

    def connection_changed(self, event: ConnectionEvent) -> None:
        labels = (event.role.value, event.queue or "")
        state = event.state
        if state in (ConnectionState.BLOCKED, ConnectionState.UNBLOCKED):
            self.blocked.labels(*labels).set(1 if state is ConnectionState.BLOCKED else 0)
            return
        self.connected.labels(*labels).set(0 if state is ConnectionState.LOST else 1)
        if state is ConnectionState.LOST:
            self.blocked.labels(*labels).set(0)  # a new connection starts unblocked
        if state is ConnectionState.RECONNECTED:
            self.reconnects.labels(*labels).inc()
