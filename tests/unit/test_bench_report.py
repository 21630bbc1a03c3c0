"""The benchmark report's spread across rounds and its noise flag, from hand-built results.

No broker: ``Results`` is filled directly, as the suite's rounds would fill it.
"""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks.environment import cpu_model
from benchmarks.report import NOISY_MARK, markdown
from benchmarks.spread import NOISY_SPREAD, is_noisy, relative_spread
from benchmarks.suite import Results

EN_DASH = "\N{EN DASH}"


def meta(rounds: int, cpu: str | None = "Test CPU 9000") -> dict[str, Any]:
    """What ``environment.describe`` reports, with fixed values."""
    machine: dict[str, Any] = {
        "cpu_count": 2,
        "platform": "Linux-test",
        "processor": "x86_64",
        "load_average_at_start": [0.5, 0.4, 0.3],
    }
    if cpu is not None:
        machine["cpu_model"] = cpu
    return {
        "date": "2026-12-03 12:00 UTC",
        "machine": machine,
        "python": "CPython 3.11.7",
        "loop": "asyncio",
        "broker": "RabbitMQ 3.10.8",
        "versions": {"eventrabbit": "0.1.0", "uvloop": None},
        "sizes": {
            "consume_n": 20_000,
            "publish_n": 5_000,
            "rpc_n": 2_000,
            "memory_n": 100_000,
            "prefetch": 100,
        },
        "rounds": rounds,
        "quick": rounds == 1,
        "clients": ["raw", "eventrabbit", "aio-pika"],
    }


def three_rounds() -> Results:
    """Three alternating rounds and one memory run.

    - consume rate: raw ±5 %; eventrabbit's per-round ratios 1.5, 1.6, 1.4 (steady);
      aio-pika's 0.7, 1.0, 0.6 (noisy).
    - consume CPU: raw swings (100, 150, 80: noisy), eventrabbit is 0.7x raw in every round,
      so its ratio is steady although its own values swing as much as raw's.
    - memory: measured once per client.
    """
    results = Results(meta=meta(rounds=3))
    rounds = {
        "raw": [(1000.0, 100.0), (1050.0, 150.0), (950.0, 80.0)],
        "eventrabbit": [(1500.0, 70.0), (1680.0, 105.0), (1330.0, 56.0)],
        "aio-pika": [(700.0, 130.0), (1050.0, 195.0), (570.0, 104.0)],
    }
    for number in (1, 2, 3):
        for client, figures in rounds.items():
            rate, cpu = figures[number - 1]
            results.add(client, {"consume_msgs_s": rate, "consume_cpu_us": cpu}, number)
    for client, baseline in (("raw", 28.0), ("eventrabbit", 29.4), ("aio-pika", 29.4)):
        results.add(client, {"memory_baseline_mb": baseline, "memory_growth_mb": 0.0}, 1)
    return results


def row(text: str, label: str) -> list[str]:
    """The cells of the table row ``label`` (figure, unit, arrow, then one per client)."""
    for line in text.splitlines():
        if line.startswith(f"| {label} |"):
            return [cell.strip() for cell in line.strip("|").split("|")]
    raise AssertionError(f"no row {label!r} in:\n{text}")


@pytest.mark.parametrize(
    ("values", "spread", "noisy"),
    [
        pytest.param([], None, False, id="no rounds"),
        pytest.param([100.0], None, False, id="one round has no spread"),
        pytest.param([100.0, 100.0, 100.0], 0.0, False, id="identical"),
        pytest.param([90.0, 100.0, 110.0], 0.20, False, id="at the threshold"),
        pytest.param([89.0, 100.0, 110.0], 0.21, True, id="just above"),
        pytest.param([100.0, 150.0, 80.0], 0.70, True, id="wide"),
        pytest.param([1.0, 1.1], 0.1 / 1.05, False, id="two rounds: median is their mean"),
        pytest.param([-90.0, -100.0, -110.0], 0.20, False, id="negative: relative to |median|"),
        pytest.param([0.0, 0.0], 0.0, False, id="zero and flat"),
        pytest.param([0.0, 0.0, 0.04], math.inf, True, id="any spread around a zero median"),
    ],
)
def test_noise_rule(values: list[float], spread: float | None, noisy: bool) -> None:
    assert NOISY_SPREAD == 0.20
    measured = relative_spread(values)
    if spread is None:
        assert measured is None
    else:
        assert measured == pytest.approx(spread)
    assert is_noisy(values) is noisy


def test_noise_rule_takes_a_threshold() -> None:
    assert is_noisy([1.0, 1.1], threshold=0.05)
    assert not is_noisy([1.0, 1.1], threshold=0.10)


def test_per_round_ratio_spread() -> None:
    results = three_rounds()
    spreads = results.ratio_spreads()

    steady = spreads["eventrabbit"]["consume_msgs_s"]
    assert steady.values == pytest.approx((1.5, 1.6, 1.4))
    assert steady.rounds == (1, 2, 3)
    assert (steady.low, steady.high, steady.median) == pytest.approx((1.4, 1.6, 1.5))
    assert not steady.noisy

    wide = spreads["aio-pika"]["consume_msgs_s"]
    assert (wide.low, wide.high) == pytest.approx((0.6, 1.0))
    assert wide.noisy

    # The reference has no ratio to itself, and a growth near 0 has none at all.
    assert "raw" not in spreads
    assert "memory_growth_mb" not in spreads["eventrabbit"]
    # The memory workload runs once: one ratio, no spread.
    assert spreads["eventrabbit"]["memory_baseline_mb"].values == pytest.approx((1.05,))


def test_figure_spread_is_the_lowest_and_highest_round() -> None:
    spread = three_rounds().spreads()["raw"]["consume_msgs_s"]
    assert (spread.low, spread.high, spread.median, spread.count) == (950.0, 1050.0, 1000.0, 3)


def test_ratios_pair_rounds_by_number_when_a_round_failed() -> None:
    results = Results(meta=meta(rounds=3))
    for number, value in ((1, 100.0), (2, 200.0), (3, 400.0)):
        results.add("raw", {"consume_msgs_s": value}, number)
    # eventrabbit failed in round 2: its second value is round 3's, not round 2's.
    results.add("eventrabbit", {"consume_msgs_s": 150.0}, 1)
    results.add("eventrabbit", {"consume_msgs_s": 400.0}, 3)
    assert results.round_ratios("eventrabbit", "consume_msgs_s") == pytest.approx({1: 1.5, 3: 1.0})


def test_add_without_a_round_number_takes_the_next_round() -> None:
    results = Results(meta=meta(rounds=2))
    results.add("raw", {"consume_msgs_s": 100.0})
    results.add("raw", {"consume_msgs_s": 120.0})
    assert results.by_round("raw", "consume_msgs_s") == {1: 100.0, 2: 120.0}


def test_noise_is_decided_on_ratios_for_clients_and_on_values_for_the_reference() -> None:
    noisy = three_rounds().noisy()
    # raw's CPU swings 100 → 150 → 80; eventrabbit's moves with it (0.7x every round).
    assert "consume_cpu_us" in noisy["raw"]
    assert "consume_cpu_us" not in noisy["eventrabbit"]
    assert noisy["aio-pika"] == ["consume_msgs_s"]
    assert "consume_msgs_s" not in noisy["raw"]


def test_markdown_cells_show_median_ratio_range_and_flag() -> None:
    text = markdown(three_rounds())

    assert row(text, "consume") == [
        "consume",
        "msgs/s",
        "↑",
        "1,000 ±5%",
        f"1,500 (1.50x, 1.40{EN_DASH}1.60)",
        f"700 (0.70x, 0.60{EN_DASH}1.00) {NOISY_MARK}",
    ]
    assert row(text, "consume CPU")[3:] == [
        f"100 ±35% {NOISY_MARK}",
        f"70.0 (0.70x, 0.70{EN_DASH}0.70)",
        f"130 (1.30x, 1.30{EN_DASH}1.30)",
    ]
    # Measured once: no range, no flag.
    assert row(text, "RSS before consuming (imports)")[3:] == [
        "28.0",
        "29.4 (1.05x)",
        "29.4 (1.05x)",
    ]
    assert row(text, "RSS growth N→2N")[3:] == ["0.00", "0.00", "0.00"]

    notes = text.split("\n\n")
    assert any(note.startswith(f"{NOISY_MARK} = noisy:") and "20%" in note for note in notes)
    assert any(note.startswith("A figure without a range was measured once") for note in notes)
    assert "Single round" not in text


def test_markdown_says_single_round_and_flags_nothing() -> None:
    results = Results(meta=meta(rounds=1))
    results.add("raw", {"consume_msgs_s": 1000.0}, 1)
    results.add("eventrabbit", {"consume_msgs_s": 3000.0}, 1)
    results.add("aio-pika", {"consume_msgs_s": 10.0}, 1)
    text = markdown(results)

    assert row(text, "consume")[3:] == ["1,000", "3,000 (3.00x)", "10.0 (0.01x)"]
    assert "**Single round**" in text
    assert NOISY_MARK not in text
    assert EN_DASH not in text


def test_header_names_the_cpu_model() -> None:
    text = markdown(three_rounds())
    assert "2 CPUs (Test CPU 9000), Linux-test (x86_64)" in text
    # A latest.json written before the model was recorded still renders.
    assert "2 CPUs, Linux-test" in markdown(Results(meta=meta(rounds=1, cpu=None)))


def test_json_keeps_its_keys_and_gains_the_spread_and_the_flags() -> None:
    results = three_rounds()
    # Three rounds 0, 0, 0.04: a spread around a median of 0, infinite, which JSON cannot say.
    results.add("raw", {"memory_growth_mb": 0.0}, 2)
    results.add("raw", {"memory_growth_mb": 0.04}, 3)
    document = orjson.loads(orjson.dumps(results.as_json()))

    assert {"meta", "medians", "ratios_to_raw", "rounds", "errors"} <= document.keys()
    assert document["rounds"]["raw"]["consume_msgs_s"] == [1000.0, 1050.0, 950.0]
    assert document["round_numbers"]["eventrabbit"]["consume_msgs_s"] == [1, 2, 3]
    assert document["spread"]["raw"]["consume_msgs_s"]["min"] == 950.0
    assert document["spread"]["raw"]["consume_msgs_s"]["max"] == 1050.0
    ratio = document["ratio_spread_to_raw"]["aio-pika"]["consume_msgs_s"]
    assert (ratio["min"], ratio["max"]) == pytest.approx((0.6, 1.0))
    assert ratio["noisy"] is True
    assert document["noisy"]["aio-pika"] == ["consume_msgs_s"]
    assert document["noisy_threshold"] == NOISY_SPREAD
    growth = document["spread"]["raw"]["memory_growth_mb"]
    assert growth["relative"] is None
    assert growth["noisy"] is True


def test_cpu_model_reads_the_model_name(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\n"
        "model name\t: Intel(R) Xeon(R)   CPU @ 2.20GHz\n\nprocessor\t: 1\n",
        encoding="utf-8",
    )
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) CPU @ 2.20GHz"


def test_cpu_model_falls_back_to_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert cpu_model(tmp_path / "absent") == "arm"
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert cpu_model(tmp_path / "absent") is None
