"""The results as a markdown table, JSON and a PNG chart of the ratios to the reference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .metrics import METRICS, Metric
from .settings import REFERENCE
from .spread import NOISY_SPREAD, Spread
from .suite import Results, noise_of

#: The mark of a noisy figure (see :func:`benchmarks.spread.is_noisy`), explained under the table.
NOISY_MARK = "⚠"
#: Between the lowest and highest round of a range.
DASH = "\N{EN DASH}"


def number(value: float) -> str:
    """Three or so significant digits, thousands separated."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def plus_minus(spread: Spread) -> str:
    """Half the range of the rounds as a percentage of their median: ``±8%``.

    Half, so that the noise rule's ``(max - min) / median`` above 20 % reads as "wider than
    ±10 %" in the table. A median of 0 has no percentage: the lowest and highest round then.
    """
    if spread.median == 0:
        return f"({number(spread.low)}{DASH}{number(spread.high)})"
    return f"±{50 * (spread.high - spread.low) / abs(spread.median):.0f}%"


def cell(
    value: float | None,
    ratio: float | None,
    ratio_spread: Spread | None,
    own_spread: Spread | None,
    noisy: bool,
) -> str:
    """One figure: its median, ratio and the range of its per-round ratios; ⚠ if noisy.

    ``9,123 (1.34x, 1.21 to 1.48)`` (with an en dash for "to"), or ``9,742 ±8%`` without a
    ratio (the reference). A figure measured in one round only has no range or ± (the table
    says why under it).
    """
    if value is None:
        return "-"
    if ratio is not None:
        spread = ""
        if ratio_spread is not None and ratio_spread.count > 1:
            spread = f", {ratio_spread.low:.2f}{DASH}{ratio_spread.high:.2f}"
        text = f"{number(value)} ({ratio:.2f}x{spread})"
    elif own_spread is not None and own_spread.count > 1:
        text = f"{number(value)} {plus_minus(own_spread)}"
    else:
        text = number(value)
    return f"{text} {NOISY_MARK}" if noisy else text


@dataclass(slots=True, frozen=True)
class _Tables:
    """What the markdown table is made of, computed once from the results."""

    medians: dict[str, dict[str, float]]
    ratios: dict[str, dict[str, float]]
    spreads: dict[str, dict[str, Spread]]
    ratio_spreads: dict[str, dict[str, Spread]]
    noise: dict[str, dict[str, Spread]]

    @classmethod
    def of(cls, results: Results) -> _Tables:
        """Every table of ``results``."""
        spreads, ratio_spreads = results.spreads(), results.ratio_spreads()
        noise = noise_of(spreads, ratio_spreads)
        return cls(results.medians(), results.ratios(), spreads, ratio_spreads, noise)


def _cell(metric: Metric, client: str, results: _Tables) -> str:
    key = metric.key
    noise = results.noise.get(client, {}).get(key)
    return cell(
        results.medians.get(client, {}).get(key),
        None if client == REFERENCE else results.ratios.get(client, {}).get(key),
        results.ratio_spreads.get(client, {}).get(key),
        results.spreads.get(client, {}).get(key),
        noise is not None and noise.noisy,
    )


def notes(shown: list[Spread]) -> list[str]:
    """The lines under the table: what the brackets mean, the flag, single-round figures.

    :param shown: the spreads the flags of the table's cells were decided on.
    """
    if not any(spread.count > 1 for spread in shown):
        return [
            f"(x) = ratio to the `{REFERENCE}` aiormq loop of the same run.",
            "",
            "**Single round**: no figure has a spread, so none can be flagged as noisy. "
            "A smoke test: quote only runs of 3 or more rounds.",
        ]
    lines = [
        f"(1.34x, 1.21{DASH}1.48) = the ratio of the medians to the `{REFERENCE}` aiormq loop "
        "of the same run, then the lowest and highest per-round ratio (round i ÷ "
        f"`{REFERENCE}`'s round i, measured side by side); `{REFERENCE}`'s ±% = half the range "
        "of its rounds, as a percentage of its median.",
        "",
        f"{NOISY_MARK} = noisy: the rounds spread over more than {NOISY_SPREAD:.0%} of their "
        f"median (±{NOISY_SPREAD / 2:.0%}), of the per-round ratios (of the values for "
        f"`{REFERENCE}` and figures without a ratio). Do not quote it: rerun on a quieter "
        "machine or with more rounds.",
    ]
    if any(spread.count == 1 for spread in shown):
        lines += [
            "",
            "A figure without a range was measured once (the memory workload runs once per "
            "client, in a fresh process; or the other rounds failed): no spread, never flagged.",
        ]
    return lines


def header(meta: dict[str, Any]) -> list[str]:
    """The lines that say when, where and how much."""
    machine = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    sizes = meta["sizes"]
    load = machine.get("load_average_at_start")
    model = machine.get("cpu_model")
    cpus = f"{machine['cpu_count']} CPUs" + (f" ({model})" if model else "")
    return [
        f"**{meta['date']}** · {cpus}, {machine['platform']} "
        f"({machine['processor']}), load average at start {load} · {meta['python']} · "
        f"loop: {meta['loop']} · broker: {meta['broker']}",
        "",
        f"Versions: {versions}",
        "",
        f"N: consume {sizes['consume_n']:,} events · publish {sizes['publish_n']:,} messages "
        f"per mode · RPC {sizes['rpc_n']:,} calls · memory 2 x {sizes['memory_n']:,} events · "
        f"prefetch {sizes['prefetch']} · median of {meta['rounds']} round(s)"
        + (" · **--quick**" if meta["quick"] else ""),
    ]


def markdown(results: Results) -> str:
    """The table: one row per figure, one column per client, ratios to the reference."""
    tables = _Tables.of(results)
    medians = tables.medians
    clients = [c for c in results.meta["clients"] if c in medians] + [
        c for c in medians if c not in results.meta["clients"]
    ]
    lines = [
        "## eventrabbit benchmarks",
        "",
        *header(results.meta),
        "",
        "| figure | unit | better | " + " | ".join(clients) + " |",
        "|---|---|:-:|" + "---:|" * len(clients),
    ]
    shown: list[Spread] = []
    for metric in METRICS:
        if not metric.table or not any(metric.key in medians.get(c, {}) for c in clients):
            continue
        arrow = "↑" if metric.higher_is_better else "↓"
        cells = " | ".join(_cell(metric, c, tables) for c in clients)
        lines.append(f"| {metric.label} | {metric.unit} | {arrow} | {cells} |")
        shown += [m[metric.key] for c in clients if metric.key in (m := tables.noise.get(c, {}))]
    lines += ["", *notes(shown)]
    if results.errors:
        lines += ["", "Failures:", "", *(f"- {e}" for e in results.errors)]
    return "\n".join(lines) + "\n"


def advantage(metric: Metric, ratio: float) -> float:
    """How many times better than the reference: > 1 is better whichever way the figure goes."""
    return ratio if metric.higher_is_better else 1.0 / ratio


def chart(results: Results, path: Path) -> None:
    """Grouped bars from 1.0: each client's advantage over the reference, per headline figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ratios = results.ratios()
    clients = [c for c in results.meta["clients"] if c != REFERENCE and c in ratios]
    metrics = [m for m in METRICS if m.headline and any(m.key in ratios[c] for c in clients)]
    if not metrics or not clients:
        return
    height = 0.8 / len(clients)
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.32 * len(metrics) * len(clients)))
    for index, client in enumerate(clients):
        for row, metric in enumerate(metrics):
            ratio = ratios[client].get(metric.key)
            if ratio is None:
                continue
            x = advantage(metric, ratio)
            y = row + index * height
            ax.barh(y, x - 1.0, left=1.0, height=height, color=f"C{index}")
            ax.annotate(
                f"{x:.2f}",
                (x, y),
                xytext=(3 if x >= 1 else -3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                ha="left" if x >= 1 else "right",
            )
    ax.set_yticks([row + 0.4 - height / 2 for row in range(len(metrics))])
    ax.set_yticklabels([m.label for m in metrics])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_xlim(0.2, 5)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel(f"times better than the {REFERENCE} aiormq loop (right is better)")
    handles = [Patch(color=f"C{i}") for i in range(len(clients))]
    ax.legend(handles, clients, loc="lower right", fontsize=8)
    meta = results.meta
    ax.set_title(
        f"eventrabbit benchmarks, {meta['date']}, {meta['broker']}, loop {meta['loop']}"
        + (" (quick)" if meta["quick"] else ""),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: Results, out: Path) -> str:
    """Write ``latest.md``, ``latest.json`` and ``latest.png`` under ``out``; the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(results)
    (out / "latest.md").write_text(text, encoding="utf-8")
    (out / "latest.json").write_bytes(
        orjson.dumps(results.as_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    chart(results, out / "latest.png")
    return text
