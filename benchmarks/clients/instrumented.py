"""eventrabbit with instrumentation on: what the hooks cost (issue 12's figures).

``eventrabbit+prometheus`` adds ``PrometheusHooks`` (a registry of its own per build);
``eventrabbit+otel`` adds ``OpenTelemetryHooks`` on the OpenTelemetry SDK, spans going through
a ``BatchSpanProcessor`` to an exporter that drops them — the work a traced service does per
message short of the network.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventrabbit import Hooks

from .base import Client
from .eventrabbit_client import hooked


def _prometheus() -> list[Hooks]:
    from prometheus_client import CollectorRegistry

    from eventrabbit.contrib.prometheus import PrometheusHooks

    return [PrometheusHooks(CollectorRegistry())]


def _otel() -> list[Hooks]:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from eventrabbit.contrib.opentelemetry import OpenTelemetryHooks

    class Dropped(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    return [OpenTelemetryHooks(provider)]


PROMETHEUS = hooked("eventrabbit+prometheus", _prometheus)
OTEL = hooked("eventrabbit+otel", _otel)
__all__ = ["OTEL", "PROMETHEUS", "Client"]
