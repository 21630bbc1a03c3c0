"""The per-message metrics of :mod:`eventrabbit.contrib.prometheus`, kept as plain numbers and
exposed by a collector at scrape time.

Theory of operation
-------------------
prometheus_client's metric objects take a lock and validate on every update; on a consumer's
hot path that costs more than the rest of the instrumentation together. The metrics updated
for every message (consumed, handler duration, in flight, published, publish duration, RPC
calls and their duration) are therefore dicts of plain numbers keyed by label values, updated
in the event loop's thread without locks, and turned into metric families only when the
registry is scraped (:class:`Exposition`). A scrape, in another thread, copies each dict
(atomic in CPython) before reading it; it may see a histogram's count one observation ahead
of its sum, which Prometheus tolerates like any race between two scrapes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

#: prometheus_client's default histogram buckets (seconds), +Inf implied.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# The ``le`` label values, written as prometheus_client writes them ("0.005", "1.0", "+Inf").
_BOUNDS = [*(repr(bound) for bound in BUCKETS), "+Inf"]

Key = tuple[str, ...]


class Tally:
    """A counter (or, with :meth:`add` of negative amounts, a gauge) by label values."""

    __slots__ = ("doc", "gauge", "labels", "name", "values")

    def __init__(self, name: str, doc: str, labels: list[str], *, gauge: bool = False) -> None:
        self.name, self.doc, self.labels, self.gauge = name, doc, labels, gauge
        self.values: dict[Key, float] = {}

    def add(self, key: Key, amount: float = 1) -> None:
        """Add ``amount`` to the value of ``key``."""
        values = self.values
        values[key] = values.get(key, 0) + amount

    def family(self, empty: bool = False) -> Metric:
        """The metric family, with a sample per key (none when ``empty``)."""
        kind = GaugeMetricFamily if self.gauge else CounterMetricFamily
        family = kind(self.name, self.doc, labels=self.labels)
        for key, value in ({} if empty else self.values.copy()).items():
            family.add_metric([str(label) for label in key], value)  # an Outcome is a StrEnum
        return family


class Timings:
    """A histogram by label values: per key, the count of each bucket and the sum."""

    __slots__ = ("doc", "labels", "name", "values")

    def __init__(self, name: str, doc: str, labels: list[str]) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        #: key -> [count of bucket 0, ..., count of +Inf, sum]
        self.values: dict[Key, list[float]] = {}

    def observe(self, key: Key, value: float) -> None:
        """Count ``value`` (seconds) for ``key``."""
        counts = self.values.get(key)
        if counts is None:
            counts = self.values[key] = [0.0] * (len(BUCKETS) + 2)
        counts[bisect_left(BUCKETS, value)] += 1
        counts[-1] += value

    def family(self, empty: bool = False) -> Metric:
        """The metric family: cumulative buckets and the sum per key."""
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        for key, counts in ({} if empty else self.values.copy()).items():
            counts = list(counts)
            cumulative, running = [], 0.0
            for bound, count in zip(_BOUNDS, counts[:-1], strict=True):
                running += count
                cumulative.append((bound, running))
            family.add_metric(list(key), cumulative, sum_value=counts[-1])
        return family


class Exposition(Collector):
    """Exposes tallies and timings to a registry, read when it is scraped."""

    def __init__(self, metrics: list[Tally | Timings]) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        # Lets the registry find duplicate names at registration, without any sample.
        for metric in self.metrics:
            yield metric.family(empty=True)

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield metric.family()
