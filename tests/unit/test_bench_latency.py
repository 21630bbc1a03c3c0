"""The latency workload's offered rates and the figures they report, without a broker."""

from __future__ import annotations

from benchmarks.latency import offered_rates
from benchmarks.metrics import BY_KEY
from benchmarks.settings import LATENCY_SHARE_KEY, Settings


def test_every_offered_rate_has_its_figures() -> None:
    settings = Settings("amqp://unused/", raw_max_rate=6755.0)
    rates = offered_rates(settings)
    assert rates == {"lat1000": 1000.0, "lat5000": 5000.0, LATENCY_SHARE_KEY: 4728.0}
    for prefix in rates:
        for figure in ("p50_ms", "p99_ms", "p999_ms", "rate"):
            assert f"{prefix}_{figure}" in BY_KEY
    assert not BY_KEY[f"{LATENCY_SHARE_KEY}_offered"].ratio
    assert LATENCY_SHARE_KEY not in offered_rates(Settings("amqp://unused/"))
