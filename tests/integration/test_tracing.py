"""eventrabbit.contrib.opentelemetry end to end, on both brokers, read from the OpenTelemetry
SDK's in-memory exporter: a message published, failing once, retried after its delay and
handled is one trace; so is one failing for good up to its dead letter; an RPC call's client
span is an ancestor of the server's processing and of the reply. A second hook records what
ended, so the test waits on events, never on time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from yarl import URL

from eventrabbit import Delivery, Hooks, QueueConfig, Result, RetryConfig
from eventrabbit.common import ConsumeChannel
from eventrabbit.contrib.opentelemetry import OpenTelemetryHooks
from tests.conftest import Services
from tests.helpers import Calls

WAIT = 15.0
#: The retry delay of the service under test: a retry's span starts at least this much later.
DELAY = 0.3


class Ended(Hooks):
    """Listed after the tracing hook, so it is told first that a delivery ended; the tracing
    hook ends its span in the same call."""

    def __init__(self) -> None:
        self.deliveries: Calls[tuple[Delivery, Result]] = Calls()

    def delivery_finished(self, state: Any, delivery: Delivery, result: Result) -> None:
        self.deliveries.add((delivery, result))


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    made = InMemorySpanExporter()
    yield made
    made.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(exporter))
    yield made
    made.shutdown()


class Traced:
    """A consuming service with tracing: FLAKY fails its first try, BAD always, ECHO answers."""

    def __init__(self, services: Services, provider: TracerProvider, **options: Any) -> None:
        self.ended = Ended()
        self.events, self.handle = services.build(
            retry_config=RetryConfig(max_retries=1, retry_delay_seconds=DELAY),
            queue_config=QueueConfig(prefetch_count=5, grace_timeout=2),
            hooks=[OpenTelemetryHooks(provider, **options), self.ended],
        )
        self.target: ConsumeChannel = services.target("otel")
        tried: set[int] = set()

        @self.events.consumer("FLAKY")
        async def flaky(n: int) -> None:
            if n not in tried:
                tried.add(n)
                raise ValueError(f"first try of {n}")

        @self.events.consumer("BAD")
        async def bad(n: int) -> None:
            raise KeyError(n)

        @self.events.consumer("ECHO")
        async def echo(n: int) -> dict[str, int]:
            return {"n": n}


@pytest.fixture
async def traced(services: Services, provider: TracerProvider) -> AsyncIterator[Traced]:
    made = Traced(services, provider)
    await services.consume(made.handle, made.target)
    return made


def by_kind(spans: list[ReadableSpan], kind: SpanKind) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.kind is kind), key=lambda s: s.start_time or 0)


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> set[int]:
    """The span ids above ``span`` among ``spans``."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    found: set[int] = set()
    current: ReadableSpan | None = span
    while current is not None and (parent := parent_of(current)) is not None:
        found.add(parent)
        current = by_id.get(parent)
    return found


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_a_retried_message_is_one_trace(
    traced: Traced, exporter: InMemorySpanExporter
) -> None:
    q = traced.target.queue_name
    broker = URL(str(traced.target.url))
    await traced.events.publish("", "FLAKY", {"n": 1}, key=q)
    await traced.ended.deliveries.count(2, timeout=WAIT)

    spans = list(exporter.get_finished_spans())
    [publish] = by_kind(spans, SpanKind.PRODUCER)
    first, second = by_kind(spans, SpanKind.CONSUMER)
    assert publish.name == "publish amq.default"
    # The first publish opens the connection: no node is known as its span starts.
    assert attributes(publish) | {"messaging.message.id": "?"} == {
        "messaging.system": "rabbitmq",
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        "messaging.destination.name": "",
        "messaging.rabbitmq.destination.routing_key": q,
        "messaging.message.id": "?",
        "eventrabbit.action": "FLAKY",
        "eventrabbit.publish.kind": "event",
        "eventrabbit.outcome": "confirmed",
    }
    assert publish.context is not None
    trace_id, publish_id = publish.context.trace_id, publish.context.span_id
    for attempt in (first, second):
        assert attempt.name == f"process {q}"
        assert attempt.context is not None
        assert attempt.context.trace_id == trace_id  # one trace
        assert parent_of(attempt) == publish_id  # a child of the publish ...
        assert [link.context.span_id for link in attempt.links] == [publish_id]  # ... linked
        got = attributes(attempt)
        assert got["messaging.system"] == "rabbitmq"
        assert got["messaging.operation.type"] == "process"
        assert got["messaging.destination.subscription.name"] == q
        assert got["messaging.message.id"] == attributes(publish)["messaging.message.id"]
        assert got["messaging.rabbitmq.message.delivery_tag"] >= 1
        assert got["eventrabbit.action"] == "FLAKY"
        assert got["server.address"] == broker.host
        assert got.get("server.port") == broker.port  # the memory broker has none

    assert attributes(first)["eventrabbit.retry_count"] == 0
    assert attributes(first)["eventrabbit.outcome"] == "retried"
    assert attributes(first)["error.type"] == "ValueError"
    assert first.status.status_code is StatusCode.ERROR
    retry = [e for e in first.events if e.name == "eventrabbit.retry"]
    assert len(retry) == 1
    assert dict(retry[0].attributes or {})["eventrabbit.target"] == f"{q}.delay"
    assert dict(retry[0].attributes or {})["eventrabbit.reason"] == "ValueError: first try of 1"

    assert attributes(second)["eventrabbit.retry_count"] == 1
    assert attributes(second)["eventrabbit.outcome"] == "acked"
    assert second.status.status_code is StatusCode.UNSET
    assert "error.type" not in attributes(second)
    # Retried after the delay, not at once.
    assert first.end_time is not None
    assert second.start_time is not None
    assert second.start_time - first.end_time >= DELAY * 0.9 * 1e9


async def test_a_dead_lettered_message_is_one_trace(
    traced: Traced, exporter: InMemorySpanExporter
) -> None:
    q = traced.target.queue_name
    await traced.events.publish("", "BAD", {"n": 2}, key=q)
    await traced.ended.deliveries.count(2, timeout=WAIT)

    spans = list(exporter.get_finished_spans())
    [publish] = by_kind(spans, SpanKind.PRODUCER)
    first, last = by_kind(spans, SpanKind.CONSUMER)
    assert publish.context is not None
    for attempt in (first, last):
        assert attempt.context is not None
        assert attempt.context.trace_id == publish.context.trace_id
        assert attributes(attempt)["error.type"] == "KeyError"
    assert [e.name for e in first.events if e.name.startswith("eventrabbit.")] == [
        "eventrabbit.retry"
    ]
    [dead] = [e for e in last.events if e.name == "eventrabbit.dead_letter"]
    assert dict(dead.attributes or {})["eventrabbit.target"] == f"{q}.dlq"
    assert attributes(last)["eventrabbit.outcome"] == "dead-lettered"
    assert any(e.name == "exception" for e in last.events)  # the KeyError, recorded


async def test_an_rpc_call_is_one_trace_from_client_to_reply(
    traced: Traced, exporter: InMemorySpanExporter
) -> None:
    q = traced.target.queue_name
    assert await traced.events.call("ECHO", {"n": 3}, key=q, timeout=WAIT) == {"n": 3}
    await traced.ended.deliveries.count(1, timeout=WAIT)

    spans = list(exporter.get_finished_spans())
    [call] = by_kind(spans, SpanKind.CLIENT)
    request, reply = by_kind(spans, SpanKind.PRODUCER)
    [process] = by_kind(spans, SpanKind.CONSUMER)
    assert call.name == "call ECHO"
    assert call.context is not None
    assert attributes(call)["eventrabbit.outcome"] == "replied"
    assert attributes(request)["eventrabbit.publish.kind"] == "request"
    assert attributes(reply)["eventrabbit.publish.kind"] == "reply"
    assert attributes(reply)["server.address"] == URL(str(traced.target.url)).host
    correlation = attributes(call)["messaging.message.conversation_id"]
    for span in (request, process, reply):
        assert span.context is not None
        assert span.context.trace_id == call.context.trace_id
        assert call.context.span_id in ancestors(span, spans)
        assert attributes(span)["messaging.message.conversation_id"] == correlation
    assert parent_of(request) == call.context.span_id
    assert request.context is not None
    assert process.context is not None
    assert parent_of(process) == request.context.span_id
    assert parent_of(reply) == process.context.span_id


async def test_link_only_starts_a_trace_per_delivery(
    services: Services, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    made = Traced(services, provider, link_only=True)
    await services.consume(made.handle, made.target)
    await made.events.publish("", "ECHO", {"n": 4}, key=made.target.queue_name)
    await made.ended.deliveries.count(1, timeout=WAIT)

    spans = list(exporter.get_finished_spans())
    [publish] = by_kind(spans, SpanKind.PRODUCER)
    [process] = by_kind(spans, SpanKind.CONSUMER)
    assert publish.context is not None
    assert process.context is not None
    assert process.context.trace_id != publish.context.trace_id
    assert process.parent is None
    assert [link.context.span_id for link in process.links] == [publish.context.span_id]
