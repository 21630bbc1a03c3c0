"""OpenTelemetry tracing for an eventrabbit service: a :class:`~eventrabbit.Hooks` subclass.

.. code-block:: python

    from eventrabbit.contrib.opentelemetry import OpenTelemetryHooks

    events, handle = build_event_dependencies(URL, hooks=[OpenTelemetryHooks()])

Theory of operation
-------------------
- **Spans, by the messaging conventions.** A publish is a ``PRODUCER`` span ``publish
  <exchange>`` (``amq.default`` for the default exchange; operation type ``send``); a
  delivery's handling a ``CONSUMER`` span ``process <queue>`` (type ``process``); an RPC call a
  ``CLIENT`` span ``call <action>``. Attributes follow the OpenTelemetry messaging semantic
  conventions for RabbitMQ (``messaging.system=rabbitmq``, ``messaging.operation.name`` and
  ``.type``, ``messaging.destination.name`` — the exchange, ``""`` for the default one —
  ``messaging.rabbitmq.destination.routing_key``, ``messaging.rabbitmq.message.delivery_tag``,
  ``messaging.message.id``, ``messaging.message.conversation_id``, ``server.address`` and
  ``.port``, ``error.type``); ``messaging.destination.subscription.name`` is the queue a
  delivery was consumed from, and ``eventrabbit.*`` attributes add the action, the retry count
  and the outcome. No settle spans: an ack is a frame, not an operation worth a span.
- **Context on the wire.** A publish injects its span's context into the message's headers
  (W3C ``traceparent``/``tracestate`` with the default propagator); a delivery extracts it. By
  default the process span is a *child* of the producer's span and also *links* to it, so one
  message's whole life is one trace; ``link_only=True`` starts a new trace per delivery that
  only links to the producer's (for very long-lived traces, e.g. a fan-out to many services).
- **Retries keep the original context.** A retry copy and a dead letter carry the original's
  headers byte for byte, ``traceparent`` included: every attempt's process span is a child of
  the first publish, and its retry or dead-letter decision is an event on the failing attempt's
  span (``eventrabbit.retry``/``eventrabbit.dead_letter``, with the target queue and reason).
- **Current while the work runs.** A process span and a call span are made current for their
  task, so whatever the handler or the call does — a function's publish, a reply, a nested
  call, spans of other instrumentations — is their child. The hooks run in the task doing the
  work (``eventrabbit.hooks``), which is what makes attaching and detaching safe here.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from eventrabbit import Call, Delivery, FailureDecision, Hooks, Outcome, Publish, Result

#: Outcomes that end a span with an error status.
FAILED = frozenset(
    {
        Outcome.RETRIED,
        Outcome.DEAD_LETTERED,
        Outcome.LEFT_UNACKED,
        Outcome.FAILED,
        Outcome.TIMED_OUT,
        Outcome.DROPPED,
    }
)
#: The name RabbitMQ gives the default exchange, used in span names (never as an attribute).
DEFAULT_EXCHANGE_NAME = "amq.default"


def _version() -> str | None:
    try:
        return version("eventrabbit")
    except PackageNotFoundError:
        return None


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads propagation fields from AMQP headers, whose strings may arrive as bytes."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("utf-8", "replace")
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


def error_type(error: BaseException | None, outcome: Outcome) -> str:
    """``error.type``: the exception's qualified class name (builtins bare), else the outcome."""
    if error is None:
        return outcome.value
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class OpenTelemetryHooks(Hooks):
    """Traces publishes, deliveries and RPC calls with the OpenTelemetry API.

    :param tracer_provider: where spans go (default: the global provider).
    :param propagator: how context is written to and read from headers (default: the global
        propagator — W3C trace context and baggage unless configured otherwise).
    :param link_only: a delivery's process span starts a new trace linked to the producer's
        instead of continuing it.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        propagator: TextMapPropagator | None = None,
        link_only: bool = False,
    ) -> None:
        self.tracer = trace.get_tracer("eventrabbit", _version(), tracer_provider)
        self._propagator = propagator
        self.link_only = link_only

    @property
    def propagator(self) -> TextMapPropagator:
        """The propagator in use (the global one is looked up each time: it may be set later)."""
        return self._propagator or propagate.get_global_textmap()

    # ------------------------------------------------------------------ publishes

    def publish_started(self, publish: Publish, headers: dict[str, Any]) -> Any:
        attributes = _common("publish", "send", publish.exchange, publish.routing_key)
        _message(attributes, publish.message_id, publish.correlation_id, publish.action)
        attributes["eventrabbit.publish.kind"] = publish.kind.value
        _server(attributes, publish.server_address, publish.server_port)
        destination = publish.exchange or DEFAULT_EXCHANGE_NAME
        span = self.tracer.start_span(
            f"publish {destination}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        self.propagator.inject(headers, context=trace.set_span_in_context(span))
        return span

    def publish_finished(self, state: Any, publish: Publish, result: Result) -> None:
        _end(state, result)

    # ------------------------------------------------------------------ calls

    def call_started(self, call: Call) -> Any:
        attributes = _common("call", "send", call.exchange, call.routing_key)
        attributes["messaging.message.conversation_id"] = call.correlation_id
        attributes["eventrabbit.action"] = call.action
        span = self.tracer.start_span(
            f"call {call.action}", kind=SpanKind.CLIENT, attributes=attributes
        )
        return span, otel_context.attach(trace.set_span_in_context(span))

    def call_finished(self, state: Any, call: Call, result: Result) -> None:
        span, token = state
        otel_context.detach(token)
        _end(span, result)

    # ------------------------------------------------------------------ deliveries

    def delivery_started(self, delivery: Delivery) -> Any:
        produced = self.propagator.extract(delivery.headers, getter=_GETTER)
        producer = trace.get_current_span(produced).get_span_context()
        links = [Link(producer)] if producer.is_valid else None
        parent = otel_context.Context() if self.link_only else produced
        attributes = _common("process", "process", delivery.exchange, delivery.routing_key)
        attributes["messaging.destination.subscription.name"] = delivery.queue
        attributes["messaging.rabbitmq.message.delivery_tag"] = delivery.delivery_tag
        _message(attributes, delivery.message_id, delivery.correlation_id, delivery.action)
        attributes["eventrabbit.retry_count"] = delivery.retry_count
        _server(attributes, delivery.server_address, delivery.server_port)
        span = self.tracer.start_span(
            f"process {delivery.queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )
        return span, otel_context.attach(trace.set_span_in_context(span))

    def delivery_finished(self, state: Any, delivery: Delivery, result: Result) -> None:
        span, token = state
        otel_context.detach(token)
        _end(span, result)

    def failure_decided(self, decision: FailureDecision) -> None:
        # Told in the failing delivery's task, with its process span current.
        span = trace.get_current_span()
        name = (
            "eventrabbit.retry"
            if decision.outcome is Outcome.RETRIED
            else "eventrabbit.dead_letter"
        )
        span.add_event(
            name,
            {
                "eventrabbit.target": decision.target,
                "eventrabbit.reason": decision.reason,
                "eventrabbit.retry_count": decision.retry_count,
            },
        )


def _common(operation: str, kind: str, exchange: str, routing_key: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "rabbitmq",
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
        "messaging.destination.name": exchange,
    }
    _put(attributes, "messaging.rabbitmq.destination.routing_key", routing_key or None)
    return attributes


def _message(
    attributes: dict[str, Any],
    message_id: str | None,
    correlation_id: str | None,
    action: str | None,
) -> None:
    _put(attributes, "messaging.message.id", message_id)
    _put(attributes, "messaging.message.conversation_id", correlation_id)
    _put(attributes, "eventrabbit.action", action)


def _put(attributes: dict[str, Any], key: str, value: str | None) -> None:
    if value is not None:
        attributes[key] = value


def _server(attributes: dict[str, Any], address: str | None, port: int | None) -> None:
    _put(attributes, "server.address", address)
    if port is not None:
        attributes["server.port"] = port


def _end(span: Span, result: Result) -> None:
    span.set_attribute("eventrabbit.outcome", result.outcome.value)
    if result.outcome in FAILED:
        span.set_attribute("error.type", error_type(result.error, result.outcome))
        if result.error is not None:
            span.record_exception(result.error)
        span.set_status(Status(StatusCode.ERROR, _description(result)))
    span.end()


def _description(result: Result) -> str:
    if result.error is None:
        return result.outcome.value
    return f"{result.outcome.value}: {type(result.error).__name__}: {result.error}"[:500]
