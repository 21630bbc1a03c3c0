"""The figures the suite reports: their keys, labels, units and which way is better."""

from __future__ import annotations

from dataclasses import dataclass

from .settings import LATENCY_RATES, LATENCY_SHARE, LATENCY_SHARE_KEY

#: A round's figures for one client in one workload, keyed by :attr:`Metric.key`.
Figures = dict[str, float]


@dataclass(slots=True, frozen=True)
class Metric:
    """One reported figure.

    :param higher_is_better: rates are; latencies, CPU and memory are not.
    :param ratio: whether a ratio to the reference means anything (not for a growth near 0).
    """

    key: str
    label: str
    unit: str
    higher_is_better: bool
    ratio: bool = True
    #: Whether the targets of the benchmark issue are about this figure (drawn in the chart).
    headline: bool = False
    #: Whether the markdown table shows it (the JSON has every figure).
    table: bool = True


_SHARE_LABEL = f"{LATENCY_SHARE:.0%} of raw max"
#: The latency workload's figure prefixes and how the labels name their rates.
_LATENCY_RATES = (
    *((f"lat{rate}", f"{rate}/s") for rate in LATENCY_RATES),
    (LATENCY_SHARE_KEY, _SHARE_LABEL),
)

METRICS: tuple[Metric, ...] = (
    Metric("consume_msgs_s", "consume", "msgs/s", True, headline=True),
    Metric("consume_cpu_us", "consume CPU", "µs/msg", False, headline=True),
    Metric("consume_startup_ms", "consume start-up", "ms", False),
    Metric("publish_seq_msgs_s", "publish sequential", "msgs/s", True, headline=True),
    Metric("publish_seq_cpu_us", "publish sequential CPU", "µs/msg", False, headline=True),
    Metric("publish_conc_msgs_s", "publish concurrent x100", "msgs/s", True, headline=True),
    Metric("publish_conc_cpu_us", "publish concurrent CPU", "µs/msg", False, headline=True),
    Metric("publish_bulk_msgs_s", "publish pipelined (publish_many)", "msgs/s", True),
    Metric("publish_bulk_cpu_us", "publish pipelined CPU", "µs/msg", False),
    *(
        metric
        for prefix, at in _LATENCY_RATES
        for metric in (
            Metric(f"{prefix}_p50_ms", f"latency at {at}, p50", "ms", False, headline=True),
            Metric(f"{prefix}_p99_ms", f"latency at {at}, p99", "ms", False, headline=True),
            Metric(f"{prefix}_p999_ms", f"latency at {at}, p99.9", "ms", False),
            Metric(f"{prefix}_rate", f"rate achieved at {at}", "msgs/s", True),
        )
    ),
    Metric(
        f"{LATENCY_SHARE_KEY}_offered",
        f"rate offered at {_SHARE_LABEL}",
        "msgs/s",
        True,
        ratio=False,
    ),
    Metric("rpc_p50_ms", "RPC p50", "ms", False, headline=True),
    Metric("rpc_p99_ms", "RPC p99", "ms", False),
    Metric("rpc_cpu_us", "RPC CPU (caller + server)", "µs/call", False, headline=True),
    Metric("memory_baseline_mb", "RSS before consuming (imports)", "MB", False),
    Metric("memory_peak_mb", "peak RSS while consuming N", "MB", False),
    Metric("memory_rss_n_mb", "RSS at event N", "MB", False, table=False),
    Metric("memory_rss_2n_mb", "RSS at event 2N", "MB", False, table=False),
    Metric("memory_growth_mb", "RSS growth N→2N", "MB", False, ratio=False),
    Metric("memory_peak_2n_mb", "peak RSS while consuming 2N", "MB", False, table=False),
    Metric("memory_after_mb", "RSS after stop", "MB", False),
    Metric("memory_cpu_us", "memory run CPU", "µs/msg", False),
)

BY_KEY = {metric.key: metric for metric in METRICS}
