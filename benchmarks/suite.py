"""Rounds that alternate the clients (A B C D, A B C D, ...), then medians, ratios and spreads."""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from . import clients, memory
from .clients.base import Client
from .latency import saturation
from .metrics import BY_KEY, Figures
from .settings import REFERENCE, Settings
from .spread import NOISY_SPREAD, Spread
from .workloads import ROUND_WORKLOADS, Workload


@dataclass(slots=True)
class Results:
    """Every figure of a run: per client, per metric, one value per round.

    ``round_numbers`` runs parallel to ``values``: the round each value was measured in, so a
    client's round *i* is divided by the reference's round *i* even when a failed round left a
    client with fewer values.
    """

    meta: dict[str, Any]
    values: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    round_numbers: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    errors: list[str] = field(default_factory=list)

    def add(self, client: str, figures: Figures, round_number: int | None = None) -> None:
        """Record ``client``'s figures of round ``round_number`` (default: its next round)."""
        for key, value in figures.items():
            values = self.values[client][key]
            numbers = self.round_numbers[client][key]
            numbers.append(len(values) + 1 if round_number is None else round_number)
            values.append(value)

    def by_round(self, client: str, key: str) -> dict[int, float]:
        """``client``'s values of ``key``, by round number."""
        numbers = self.round_numbers.get(client, {}).get(key, [])
        return dict(zip(numbers, self.values.get(client, {}).get(key, []), strict=True))

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

    def spreads(self) -> dict[str, dict[str, Spread]]:
        """Every figure's lowest and highest round value."""
        return {
            client: {key: Spread.of(self.by_round(client, key)) for key in metrics}
            for client, metrics in self.values.items()
        }

    def round_ratios(self, client: str, key: str) -> dict[int, float]:
        """``client``'s round *i* ÷ the reference's round *i*, for the rounds both measured.

        Rounds alternate the clients, so round *i* of both ran side by side and the ratio
        cancels the machine's drift between rounds. Empty where a ratio means nothing.
        """
        if not BY_KEY[key].ratio:
            return {}
        reference = self.by_round(REFERENCE, key)
        return {
            number: value / reference[number]
            for number, value in self.by_round(client, key).items()
            if reference.get(number)
        }

    def ratio_spreads(self) -> dict[str, dict[str, Spread]]:
        """The spread of every per-round ratio to the reference (not of the reference's own)."""
        out: dict[str, dict[str, Spread]] = {}
        for client, metrics in self.values.items():
            if client == REFERENCE:
                continue
            per_key = {key: self.round_ratios(client, key) for key in metrics}
            out[client] = {key: Spread.of(ratios) for key, ratios in per_key.items() if ratios}
        return out

    def noise(self) -> dict[str, dict[str, Spread]]:
        """The spread each figure's noise flag is decided on.

        A client's per-round ratios to the reference where there are any (the drift of the
        machine cancels in them, so what is left is the client's own); otherwise — the
        reference itself, figures without a ratio — the per-round values.
        """
        return noise_of(self.spreads(), self.ratio_spreads())

    def noisy(self) -> dict[str, list[str]]:
        """Per client, the keys of its noisy figures (see :func:`is_noisy`)."""
        return {
            client: [key for key, spread in metrics.items() if spread.noisy]
            for client, metrics in self.noise().items()
        }

    def as_json(self) -> dict[str, Any]:
        """Everything, for ``latest.json``."""
        return {
            "meta": self.meta,
            "medians": self.medians(),
            "ratios_to_raw": self.ratios(),
            "rounds": {c: dict(m) for c, m in self.values.items()},
            "round_numbers": {c: dict(m) for c, m in self.round_numbers.items()},
            "spread": _json(self.spreads()),
            "ratio_spread_to_raw": _json(self.ratio_spreads()),
            "noisy": self.noisy(),
            "noisy_threshold": NOISY_SPREAD,
            "errors": self.errors,
        }


def noise_of(
    spreads: dict[str, dict[str, Spread]], ratio_spreads: dict[str, dict[str, Spread]]
) -> dict[str, dict[str, Spread]]:
    """:meth:`Results.noise` from its two spreads, where they are at hand already."""
    out = {client: dict(metrics) for client, metrics in spreads.items()}
    for client, ratios in ratio_spreads.items():
        out[client].update(ratios)
    return out


def _json(spreads: dict[str, dict[str, Spread]]) -> dict[str, dict[str, Any]]:
    return {c: {k: s.as_json() for k, s in m.items()} for c, m in spreads.items()}


def log(text: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    print(text, file=sys.stderr, flush=True)


async def _one(
    results: Results,
    name: str,
    workload: Workload,
    settings: Settings,
    round_number: int | None = None,
) -> None:
    try:
        figures = await workload(clients.get(name), settings)
    except Exception as exc:  # noqa: BLE001 — one client failing must not end the suite
        results.errors.append(f"{workload.__name__} / {name}: {type(exc).__name__}: {exc}")
        log(f"    {name:<12} FAILED: {type(exc).__name__}: {exc}")
        return
    results.add(name, figures, round_number)
    log(f"    {name:<12} " + "  ".join(f"{k}={v:,.1f}" for k, v in figures.items()))


async def with_raw_max(settings: Settings) -> Settings:
    """``settings`` with :attr:`~Settings.raw_max_rate` measured, for the latency workload."""
    if settings.raw_max_rate:
        return settings
    log(f"latency: the {REFERENCE} loop's rate with the producer sending flat out")
    rate = await saturation(clients.get(REFERENCE), settings)
    log(f"    {REFERENCE:<12} {rate:,.0f}/s")
    return replace(settings, raw_max_rate=rate)


async def run_rounds(results: Results, settings: Settings) -> None:
    """Every round runs every workload once per client, the clients in alternation."""
    for number in range(1, settings.rounds + 1):
        for name, workloads in ROUND_WORKLOADS.items():
            if name not in settings.workloads:
                continue
            if name == "latency":
                settings = await with_raw_max(settings)
            for workload in workloads:
                log(f"round {number}/{settings.rounds}: {workload.__name__}")
                started = time.perf_counter()
                for client in settings.clients:
                    await _one(results, client, workload, settings, number)
                # Set-up included: what a workload costs the run, to size ``--quick`` by.
                log(f"    {workload.__name__} took {time.perf_counter() - started:.1f} s")


async def run_memory(results: Results, settings: Settings) -> None:
    """The memory workload, once per client, each in a fresh process."""
    if "memory" not in settings.workloads:
        return
    log(f"memory: 2 x {settings.memory_n:,} events per client, each in its own process")

    async def in_subprocess(client: Client, _: Settings) -> Figures:
        return await memory.run_in_subprocess(client.name, settings)

    in_subprocess.__name__ = "memory"
    started = time.perf_counter()
    for client in settings.memory_clients:
        # Measured once, after the rounds: round 1 of every client, so ratios still pair up.
        await _one(results, client, in_subprocess, settings, 1)
    log(f"    memory took {time.perf_counter() - started:.1f} s")
