"""The results as a markdown table, JSON and a PNG chart of the ratios to the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from .metrics import METRICS, Metric
from .settings import REFERENCE
from .suite import Results


def number(value: float) -> str:
    """Three or so significant digits, thousands separated."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(metric: Metric, client: str, medians: dict[str, Any], ratios: dict[str, Any]) -> str:
    value = medians.get(client, {}).get(metric.key)
    if value is None:
        return "-"
    ratio = ratios.get(client, {}).get(metric.key)
    if client == REFERENCE or ratio is None:
        return number(value)
    return f"{number(value)} ({ratio:.2f}x)"


def header(meta: dict[str, Any]) -> list[str]:
    """The lines that say when, where and how much."""
    machine = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    sizes = meta["sizes"]
    load = machine.get("load_average_at_start")
    return [
        f"**{meta['date']}** · {machine['cpu_count']} CPUs, {machine['platform']} "
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
    medians, ratios = results.medians(), results.ratios()
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
    for metric in METRICS:
        if not metric.table or not any(metric.key in medians.get(c, {}) for c in clients):
            continue
        arrow = "↑" if metric.higher_is_better else "↓"
        cells = " | ".join(_cell(metric, c, medians, ratios) for c in clients)
        lines.append(f"| {metric.label} | {metric.unit} | {arrow} | {cells} |")
    lines += ["", f"(x) = ratio to the `{REFERENCE}` aiormq loop of the same run."]
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
