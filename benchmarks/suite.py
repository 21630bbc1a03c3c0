"""Rounds that alternate the clients (A B C D, A B C D, ...), then medians and ratios."""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import clients, memory
from .clients.base import Client
from .metrics import BY_KEY, Figures
from .settings import REFERENCE, Settings
from .workloads import ROUND_WORKLOADS, Workload


@dataclass(slots=True)
class Results:
    """Every figure of a run: per client, per metric, one value per round."""

    meta: dict[str, Any]
    values: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    errors: list[str] = field(default_factory=list)

    def add(self, client: str, figures: Figures) -> None:
        """Record one round's figures of ``client``."""
        for key, value in figures.items():
            self.values[client][key].append(value)

    def medians(self) -> dict[str, dict[str, float]]:
        """The median over rounds of every figure."""
        return {
            client: {key: statistics.median(values) for key, values in metrics.items()}
            for client, metrics in self.values.items()
        }

    def ratios(self) -> dict[str, dict[str, float]]:
        """Each client's median ÷ the reference's median, where a ratio means something."""
        medians = self.medians()
        reference = medians.get(REFERENCE, {})
        out: dict[str, dict[str, float]] = {}
        for client, figures in medians.items():
            out[client] = {
                key: value / reference[key]
                for key, value in figures.items()
                if BY_KEY[key].ratio and reference.get(key)
            }
        return out

    def as_json(self) -> dict[str, Any]:
        """Everything, for ``latest.json``."""
        return {
            "meta": self.meta,
            "medians": self.medians(),
            "ratios_to_raw": self.ratios(),
            "rounds": {c: dict(m) for c, m in self.values.items()},
            "errors": self.errors,
        }


def log(text: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    print(text, file=sys.stderr, flush=True)


async def _one(results: Results, name: str, workload: Workload, settings: Settings) -> None:
    try:
        figures = await workload(clients.get(name), settings)
    except Exception as exc:  # noqa: BLE001 — one client failing must not end the suite
        results.errors.append(f"{workload.__name__} / {name}: {type(exc).__name__}: {exc}")
        log(f"    {name:<12} FAILED: {type(exc).__name__}: {exc}")
        return
    results.add(name, figures)
    log(f"    {name:<12} " + "  ".join(f"{k}={v:,.1f}" for k, v in figures.items()))


async def run_rounds(results: Results, settings: Settings) -> None:
    """Every round runs every workload once per client, the clients in alternation."""
    for number in range(1, settings.rounds + 1):
        for name, workloads in ROUND_WORKLOADS.items():
            if name not in settings.workloads:
                continue
            for workload in workloads:
                log(f"round {number}/{settings.rounds}: {workload.__name__}")
                for client in settings.clients:
                    await _one(results, client, workload, settings)


async def run_memory(results: Results, settings: Settings) -> None:
    """The memory workload, once per client, each in a fresh process."""
    if "memory" not in settings.workloads:
        return
    log(f"memory: 2 x {settings.memory_n:,} events per client, each in its own process")

    async def in_subprocess(client: Client, _: Settings) -> Figures:
        return await memory.run_in_subprocess(client.name, settings)

    in_subprocess.__name__ = "memory"
    for client in settings.memory_clients:
        await _one(results, client, in_subprocess, settings)
