"""How a figure varied across rounds, and when that is too much to quote its median."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: A figure is *noisy* when its rounds spread over more than this fraction of their median:
#: ``(max - min) / median``. The targets the suite is read against are set in steps of 10 %
#: (publish ≥ 0.9x, RPC p50 ≤ 1.1x, hooks ≤ +10 % CPU): rounds spread wider than ±10 % around
#: their median cannot say on which side of such a target a figure lies. For a client it is
#: applied to the per-round ratios, which cancel most of the drift of a shared machine (its
#: absolute rates swing ±15 % between rounds), so a flag there means the ratio itself moved.
NOISY_SPREAD = 0.20


def relative_spread(values: Sequence[float]) -> float | None:
    """``(max - min) / |median|`` of ``values``; ``None`` with fewer than two (no spread).

    A spread around a median of 0 is infinite (and no spread at all is 0).
    """
    if len(values) < 2:
        return None
    width = max(values) - min(values)
    middle = abs(statistics.median(values))
    if middle == 0:
        return 0.0 if width == 0 else math.inf
    return width / middle


def is_noisy(values: Sequence[float], threshold: float = NOISY_SPREAD) -> bool:
    """Whether rounds ``values`` spread too much to quote their median (see :data:`NOISY_SPREAD`).

    One value (one round) has no spread, so it is never flagged: the report says instead that
    its figures are single-round.
    """
    spread = relative_spread(values)
    return spread is not None and spread > threshold


@dataclass(slots=True, frozen=True)
class Spread:
    """How a figure, or a ratio, varied across rounds."""

    low: float
    high: float
    median: float
    #: The round each value came from, in order, and the values.
    rounds: tuple[int, ...]
    values: tuple[float, ...]

    @classmethod
    def of(cls, by_round: dict[int, float]) -> Spread:
        """The spread of one value per round (at least one)."""
        rounds = tuple(sorted(by_round))
        values = tuple(by_round[r] for r in rounds)
        return cls(min(values), max(values), statistics.median(values), rounds, values)

    @property
    def count(self) -> int:
        """How many rounds measured it."""
        return len(self.values)

    @property
    def relative(self) -> float | None:
        """:func:`relative_spread` of the values."""
        return relative_spread(self.values)

    @property
    def noisy(self) -> bool:
        """:func:`is_noisy` of the values."""
        return is_noisy(self.values)

    def as_json(self) -> dict[str, Any]:
        """The spread for ``latest.json``."""
        relative = self.relative
        return {
            "min": self.low,
            "max": self.high,
            "median": self.median,
            # None for one round; JSON has no infinity, so a spread around 0 is None too.
            "relative": None if relative is None or math.isinf(relative) else relative,
            "noisy": self.noisy,
            "rounds": list(self.rounds),
            "values": list(self.values),
        }
