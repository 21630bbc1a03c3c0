"""eventrabbit.contrib.opentelemetry's pure parts, without a broker: ``error.type`` as a table,
context read from headers whose strings arrived as bytes, spans for synthetic work, and
``import eventrabbit`` leaving OpenTelemetry unimported."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from eventrabbit import Delivery, InvalidMessage, Outcome, Publish, PublishKind, Result
from eventrabbit.contrib.opentelemetry import OpenTelemetryHooks, error_type


class Custom(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "outcome", "expected"),
    [
        (ValueError("x"), Outcome.RETRIED, "ValueError"),
        (InvalidMessage("x"), Outcome.DEAD_LETTERED, "eventrabbit.errors.InvalidMessage"),
        (Custom(), Outcome.FAILED, f"{__name__}.Custom"),
        (None, Outcome.TIMED_OUT, "timed-out"),
        (None, Outcome.DROPPED, "dropped"),
    ],
)
def test_error_type(error: BaseException | None, outcome: Outcome, expected: str) -> None:
    assert error_type(error, outcome) == expected


@pytest.fixture
def traced() -> Iterator[tuple[OpenTelemetryHooks, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield OpenTelemetryHooks(provider), exporter
    provider.shutdown()


def delivery(headers: dict[str, object]) -> Delivery:
    return Delivery("q", "ex", "k", "A", "m-1", None, 0, False, headers, delivery_tag=7)


def test_a_publish_context_is_read_back_from_str_and_bytes_headers(
    traced: tuple[OpenTelemetryHooks, InMemorySpanExporter],
) -> None:
    hooks, exporter = traced
    headers: dict[str, object] = {}
    publish = Publish(PublishKind.EVENT, "ex", "k", "A", "m-1", None)
    state = hooks.publish_started(publish, headers)
    hooks.publish_finished(state, publish, Result(Outcome.CONFIRMED, 0.001))
    assert isinstance(headers["traceparent"], str)
    as_bytes = {key: str(value).encode() for key, value in headers.items()}
    for carried in (headers, as_bytes):  # another client may send the header as bytes
        done = delivery(carried)
        hooks.delivery_finished(hooks.delivery_started(done), done, Result(Outcome.ACKED, 0.0))
    sent, *processed = exporter.get_finished_spans()
    assert sent.kind is SpanKind.PRODUCER
    assert sent.name == "publish ex"
    assert sent.context is not None
    for span in processed:
        assert span.kind is SpanKind.CONSUMER
        assert span.parent is not None
        assert span.parent.span_id == sent.context.span_id
        assert dict(span.attributes or {})["messaging.rabbitmq.message.delivery_tag"] == 7


def test_a_delivery_without_context_starts_a_trace(
    traced: tuple[OpenTelemetryHooks, InMemorySpanExporter],
) -> None:
    hooks, exporter = traced
    for headers in ({}, {"traceparent": "garbage"}, {"traceparent": 17}):
        done = delivery(headers)
        hooks.delivery_finished(hooks.delivery_started(done), done, Result(Outcome.ACKED, 0.0))
    for span in exporter.get_finished_spans():
        assert span.parent is None
        assert not span.links


def test_importing_eventrabbit_does_not_import_opentelemetry() -> None:
    code = "import sys, eventrabbit; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
