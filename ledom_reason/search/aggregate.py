"""Aggregators: choose one candidate from answers and (optional) rewards. Pure functions.

* ``reward``   — argmax of the reward (ties: lowest index).
* ``forward``  — argmax of the forward-only reward (λ = 0); the caller computes those rewards.
* ``majority`` — most frequent extracted answer; ties between answers go to the higher best reward
  when rewards are given, then to the answer seen first; within the answer, the best-reward (or
  first) candidate.
* ``weighted`` — per answer, the sum of ``softmax(reward / temperature)`` over its candidates; ties
  as for ``majority``.
* ``random``   — a seeded uniform pick (baseline).

Candidates whose answer is ``None`` do not vote (if no candidate has an answer, every candidate
votes for ``None``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Aggregator = Literal["reward", "majority", "weighted", "random", "forward"]
AGGREGATORS: tuple[str, ...] = ("reward", "majority", "weighted", "random", "forward")
SCORE_FREE_AGGREGATORS: frozenset[str] = frozenset({"majority", "random"})


@dataclass(frozen=True)
class Choice:
    """What an aggregator chose.

    Attributes:
        index: Index of the chosen candidate.
        order: All candidate indices, most preferred first (the ranking).
        votes: Per answer ``{"count", "weight"}`` (``weight`` = summed softmax weight for
            ``weighted``, else equal to ``count``). The key ``None`` collects answer-less candidates
            only when no candidate has an answer.
    """

    index: int
    order: list[int]
    votes: dict[str | None, dict[str, float]]


def softmax(values: Sequence[float], temperature: float = 1.0) -> list[float]:
    """Numerically stable softmax of ``values / temperature``."""
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature}")
    if not values:
        return []
    m = max(values)
    ex = [math.exp((v - m) / temperature) for v in values]
    z = sum(ex)
    return [e / z for e in ex]


def _vote_table(
    answers: Sequence[str | None], weights: Sequence[float] | None
) -> dict[str | None, dict[str, float]]:
    voting = [i for i, a in enumerate(answers) if a is not None] or list(range(len(answers)))
    table: dict[str | None, dict[str, float]] = {}
    for i in voting:
        row = table.setdefault(answers[i], {"count": 0.0, "weight": 0.0})
        row["count"] += 1
        row["weight"] += weights[i] if weights is not None else 1.0
    return table


def aggregate(
    answers: Sequence[str | None],
    rewards: Sequence[float] | None,
    aggregator: str,
    *,
    temperature: float = 1.0,
    rng: random.Random | None = None,
) -> Choice:
    """Pick one candidate.

    Args:
        answers: Extracted final answer per candidate (``None`` = no answer).
        rewards: Reward per candidate (required for ``reward``, ``forward`` and ``weighted``; optional
            tie-breaker for ``majority``).
        aggregator: One of :data:`AGGREGATORS`.
        temperature: Softmax temperature for ``weighted``.
        rng: Random source for ``random`` (default ``random.Random(0)``).

    Raises:
        ValueError: unknown aggregator, no candidates, length mismatch, or missing rewards.
    """
    n = len(answers)
    if n == 0:
        raise ValueError("`answers` is empty: nothing to choose from")
    if aggregator not in AGGREGATORS:
        raise ValueError(f"`aggregator` must be one of {AGGREGATORS}, got {aggregator!r}")
    if rewards is not None and len(rewards) != n:
        raise ValueError(f"`rewards` has {len(rewards)} values for {n} answers")
    if rewards is None and aggregator not in SCORE_FREE_AGGREGATORS:
        raise ValueError(f"aggregator {aggregator!r} needs `rewards`")
    if rewards is not None and any(not math.isfinite(r) for r in rewards):
        raise ValueError("`rewards` contains NaN or infinite values")

    if aggregator in ("reward", "forward"):
        assert rewards is not None
        order = sorted(range(n), key=lambda i: (-rewards[i], i))
        return Choice(order[0], order, _vote_table(answers, None))

    if aggregator == "random":
        r = rng if rng is not None else random.Random(0)
        pick = r.randrange(n)
        order = [pick] + [i for i in range(n) if i != pick]
        return Choice(pick, order, _vote_table(answers, None))

    weights = softmax(list(rewards), temperature) if aggregator == "weighted" and rewards is not None else None
    table = _vote_table(answers, weights)
    first_seen: dict[str | None, int] = {}
    for i, a in enumerate(answers):
        first_seen.setdefault(a, i)
    best_reward: dict[str | None, float] = {}
    if rewards is not None:
        for i, a in enumerate(answers):
            best_reward[a] = max(best_reward.get(a, -math.inf), rewards[i])
    key_field = "weight" if aggregator == "weighted" else "count"

    def answer_key(a: str | None) -> tuple[float, float, int]:
        return (-table[a][key_field] if a in table else math.inf, -best_reward.get(a, 0.0), first_seen[a])

    def cand_key(i: int) -> tuple[float, float, int, float, int]:
        return (*answer_key(answers[i]), -(rewards[i] if rewards is not None else 0.0), i)

    order = sorted(range(n), key=cand_key)
    return Choice(order[0], order, table)
