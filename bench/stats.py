"""Medians and spreads over repeated samples."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Spread", "spread", "summarise"]


@dataclass(frozen=True, slots=True)
class Spread:
    """Median, min/max and interquartile range of one metric over the repetitions."""

    median: float
    low: float
    high: float
    q1: float
    q3: float
    n: int


def spread(values: Sequence[float]) -> Spread:
    """Summarise ``values`` (at least one); quartiles use the inclusive method, so n=1 works."""
    ordered = sorted(values)
    if len(ordered) == 1:
        q1 = q3 = ordered[0]
    else:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Spread(statistics.median(ordered), ordered[0], ordered[-1], q1, q3, len(ordered))


def summarise(samples: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{metric: spread}`` for each metric present (not ``None``) in every sample."""
    out: dict[str, dict[str, float]] = {}
    for metric in metrics:
        values = [s.get(metric) for s in samples]
        if values and all(isinstance(v, int | float) for v in values):
            out[metric] = asdict(spread([float(v) for v in values if v is not None]))
    return out
