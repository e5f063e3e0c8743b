"""Fitting and judging a verifier calibration on discrimination sets (gold vs corrupted solutions).

The map itself (:class:`~ledom_reason.calibration.Calibration`, fitting, ECE) is core; this module turns
discrimination rows and their scores into (reward, label) examples, estimates the in-distribution error by
cross-validation over *problems* (a problem's candidates never straddle a fold), and draws reliability plots.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ledom_reason.calibration import (
    Calibration,
    Method,
    brier_score,
    expected_calibration_error,
    fit_calibration,
    reliability_bins,
)
from ledom_reason.reward import Normalize, reverse_reward
from ledom_reason.types import PairScore


def discrimination_examples(
    rows: Sequence[Mapping[str, Any]], scores: Sequence[Sequence[PairScore]], *, lam: float, normalize: Normalize,
) -> tuple[list[float], list[int], list[int]]:
    """``(rewards, labels, problem index)`` per candidate of a discrimination set (label 1 = gold solution)."""
    if len(rows) != len(scores):
        raise ValueError(f"`scores` has {len(scores)} rows for {len(rows)} problems")
    rewards, labels, groups = [], [], []
    for g, (row, sc) in enumerate(zip(rows, scores, strict=True)):
        if len(sc) != len(row["candidates"]) or len(row["labels"]) != len(row["candidates"]):
            raise ValueError(f"row {row.get('id', g)}: candidates, labels and scores differ in length")
        for s, y in zip(sc, row["labels"], strict=True):
            rewards.append(reverse_reward(s, lam=lam, normalize=normalize))
            labels.append(int(y))
            groups.append(g)
    return rewards, labels, groups


def cross_validated_probs(rewards: Sequence[float], labels: Sequence[int], groups: Sequence[int], *,
                          method: Method = "platt", folds: int = 5, seed: int = 0) -> list[float]:
    """Out-of-fold P(correct) for every example: fit on the other folds' problems, predict this fold's."""
    if folds < 2:
        raise ValueError(f"`folds` must be >= 2, got {folds}")
    problems = sorted(set(groups))
    random.Random(seed).shuffle(problems)
    fold_of = {g: i % folds for i, g in enumerate(problems)}
    out = [math.nan] * len(rewards)
    for f in range(folds):
        train = [i for i, g in enumerate(groups) if fold_of[g] != f]
        test = [i for i, g in enumerate(groups) if fold_of[g] == f]
        if not test:
            continue
        cal = fit_calibration([rewards[i] for i in train], [labels[i] for i in train], method=method)
        for i in test:
            out[i] = cal.p_of_reward(rewards[i])
    return out


def ranking_auc(values: Sequence[float], labels: Sequence[int]) -> float:
    """ROC AUC over all examples: P(a correct example's value > an incorrect one's), ties ½ (rank formula)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    if not n_pos or not n_neg:
        return math.nan
    return (sum(r for r, y in zip(ranks, labels, strict=True) if y) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def calibration_metrics(probs: Sequence[float], labels: Sequence[int], *, bins: int = 10) -> dict[str, Any]:
    """ECE (equal-width ``bins``), Brier score (and the Brier of always predicting the base rate), log-loss,
    ROC AUC (a map that always says the base rate has ECE ≈ 0 but AUC 0.5), the spread of the predictions,
    and the reliability bins."""
    eps = 1e-12
    n = len(probs)
    base = sum(labels) / len(labels)
    log_loss = -sum(math.log(max(p, eps)) if y else math.log(max(1 - p, eps))
                    for p, y in zip(probs, labels, strict=True)) / n
    return {"n": n, "base_rate": base, "mean_p": sum(probs) / n, "min_p": min(probs), "max_p": max(probs),
            "ece": expected_calibration_error(probs, labels, bins), "brier": brier_score(probs, labels),
            "brier_base_rate": base * (1 - base), "log_loss": log_loss, "auc": ranking_auc(probs, labels),
            "bins": reliability_bins(probs, labels, bins)}


def evaluate_calibration(cal: Calibration, rows: Sequence[Mapping[str, Any]],
                         scores: Sequence[Sequence[PairScore]], *, bins: int = 10) -> dict[str, Any]:
    """:func:`calibration_metrics` of ``cal`` on a (held-out) discrimination set."""
    rewards, labels, _ = discrimination_examples(rows, scores, lam=cal.lam, normalize=cal.normalize)
    return calibration_metrics([cal.p_of_reward(r) for r in rewards], labels, bins=bins)


def reliability_plot(curves: Mapping[str, Mapping[str, Any]], path: str | Path, *, title: str = "") -> Path:
    """Reliability diagram: per curve, share correct vs mean predicted P(correct) per bin (marker area ∝
    count), the diagonal of perfect calibration, and the histogram of predictions below.

    Args:
        curves: ``label -> calibration_metrics(...)`` (its ``bins`` and ``ece`` are drawn).
        path: PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    for label, m in curves.items():
        pts = [b for b in m["bins"] if b["count"]]
        total = sum(b["count"] for b in pts)
        xs, ys = [b["mean_p"] for b in pts], [b["frac_correct"] for b in pts]
        line = ax.plot(xs, ys, marker="", linewidth=1.5, label=f"{label} (ECE {m['ece']:.3f}, n = {total})")[0]
        ax.scatter(xs, ys, s=[20 + 400 * b["count"] / total for b in pts], color=line.get_color(), alpha=0.7)
        centers = [(b["lo"] + b["hi"]) / 2 for b in m["bins"]]
        width = (m["bins"][0]["hi"] - m["bins"][0]["lo"]) / (len(curves) + 0.5)
        k = list(curves).index(label)
        hist.bar([c - width * len(curves) / 2 + width * (k + 0.5) for c in centers],
                 [b["count"] / total for b in m["bins"]], width=width, color=line.get_color(), alpha=0.7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share correct (gold solution)")
    ax.set_title(title or "reliability")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    hist.set_xlabel("predicted P(correct)")
    hist.set_ylabel("share of candidates")
    hist.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
