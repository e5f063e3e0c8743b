"""Confidence intervals and ranking metrics (pure Python).

Example:
    >>> lo, hi = wilson_ci(40, 50)
    >>> round(lo, 3), round(hi, 3)
    (0.67, 0.888)
    >>> pairwise_auc([3.0], [1.0, 2.0, 3.0])
    0.8333333333333334
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def wilson_ci(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default). ``(nan, nan)`` when ``n == 0``."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pairwise_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(positive score > negative score), ties counted 1/2 (Mann–Whitney AUC)."""
    if not positives or not negatives:
        return math.nan
    wins = 0.0
    for p in positives:
        for q in negatives:
            wins += 1.0 if p > q else 0.5 if p == q else 0.0
    return wins / (len(positives) * len(negatives))


def bootstrap_ci(
    items: Sequence[T], stat: Callable[[Sequence[T]], float], *, n_boot: int = 1000, seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat`` over ``items`` (resampled with replacement, seeded)."""
    if not items:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    n = len(items)
    vals = sorted(stat([items[rng.randrange(n)] for _ in range(n)]) for _ in range(n_boot))
    lo = vals[math.floor(alpha / 2 * (n_boot - 1))]
    hi = vals[math.ceil((1 - alpha / 2) * (n_boot - 1))]
    return (lo, hi)
