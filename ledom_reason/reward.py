"""The reverse reward: ``(1 − λ)·log P_fwd(y|x) + λ·log P_rev(x|y)``.

Pure functions over :class:`~ledom_reason.types.PairScore`. ``normalize="sum"`` uses summed
log-probs; ``"mean"`` uses per-token means (length-normalised), which removes the bias of sums
towards short candidates. The paper does not report λ or the normalisation; sweep both.

Example:
    >>> from ledom_reason.types import PairScore
    >>> s = PairScore.build(-4.0, 2, forward_logprob=-10.0, candidate_tokens=5)
    >>> reverse_reward(s)  # λ = 1: reverse only
    -4.0
    >>> reverse_reward(s, lam=0.5, normalize="mean")
    -2.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ledom_reason.types import PairScore

Normalize = Literal["sum", "mean"]
NORMALIZE_CHOICES: tuple[str, ...] = ("sum", "mean")


def validate_reward_args(lam: float, normalize: str) -> None:
    """Raise ``ValueError`` for λ outside [0, 1] (or NaN) and unknown normalisations."""
    if isinstance(lam, bool) or not isinstance(lam, int | float):
        raise TypeError(f"`lam` must be a number, got {type(lam).__name__}")
    if not math.isfinite(lam) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"`lam` must be in [0, 1], got {lam}")
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(f"`normalize` must be one of {NORMALIZE_CHOICES}, got {normalize!r}")


def _get(score: PairScore | Mapping[str, Any], key: str) -> Any:
    return score.get(key) if isinstance(score, Mapping) else getattr(score, key)


def reverse_reward(
    score: PairScore | Mapping[str, Any], lam: float = 1.0, normalize: Normalize = "sum"
) -> float:
    """Combine forward and reverse log-probs into one reward.

    Args:
        score: A :class:`PairScore` (or its ``to_dict()``).
        lam: Weight λ of the reverse term, in [0, 1]. ``1`` = reverse only, ``0`` = forward only.
        normalize: ``"sum"`` (total log-prob) or ``"mean"`` (per-token mean) for each term.

    Raises:
        ValueError: bad λ/normalisation, or λ < 1 and the score has no forward log-prob
            (configure the scorer with ``forward_model=``).
    """
    validate_reward_args(lam, normalize)
    rev = _get(score, "reverse_logprob" if normalize == "sum" else "reverse_mean")
    if lam == 1.0:
        return float(rev)
    fwd = _get(score, "forward_logprob" if normalize == "sum" else "forward_mean")
    if fwd is None:
        raise ValueError(
            f"lam={lam} < 1 needs a forward log-prob, but the score has none: "
            "build the scorer with `forward_model=` (or use lam=1.0)"
        )
    if lam == 0.0:
        return float(fwd)
    return (1.0 - lam) * float(fwd) + lam * float(rev)


def rewards(
    scores: Iterable[PairScore | Mapping[str, Any]], lam: float = 1.0, normalize: Normalize = "sum"
) -> list[float]:
    """:func:`reverse_reward` over many scores."""
    return [reverse_reward(s, lam=lam, normalize=normalize) for s in scores]


@dataclass(frozen=True)
class RewardSettings:
    """A λ and normalisation to compute :func:`reverse_reward` with (e.g. a model's validated setting).

    Example:
        >>> RewardSettings(lam=0.9, normalize="mean").lam
        0.9
    """

    lam: float = 1.0
    normalize: Normalize = "sum"

    def __post_init__(self) -> None:
        validate_reward_args(self.lam, self.normalize)

    def __call__(self, score: PairScore | Mapping[str, Any]) -> float:
        """The reward of ``score`` under these settings."""
        return reverse_reward(score, lam=self.lam, normalize=self.normalize)


def reward_settings_for(scorer: object, lam: float | None = None, normalize: Normalize | None = None, *,
                        default_normalize: Normalize = "mean") -> RewardSettings:
    """The reward settings to use with ``scorer``: what the caller gave, else the scorer's
    ``recommended_reward`` (a model's validated setting from its metadata, e.g. λ = 0.9 for
    ``ReverseScorer.default(forward=True)``), else λ = 1 (reverse only) and ``default_normalize``.
    """
    rec = getattr(scorer, "recommended_reward", None)
    rec = rec if isinstance(rec, RewardSettings) else None
    return RewardSettings(lam if lam is not None else rec.lam if rec else 1.0,
                          normalize if normalize is not None else rec.normalize if rec else default_normalize)
