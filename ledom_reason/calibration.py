"""Calibrated verifier scores: a monotone map from the reward to P(correct), fitted on a discrimination set.

Raw log-probs have no scale a user can guess (a per-token reward of −2.2 may be good for one model and bad
for another), so a threshold like ``reward >= -2`` means nothing. A :class:`Calibration` states the reward it
was fitted on — λ and normalisation of :func:`~ledom_reason.reward.reverse_reward`, and which models produced
the log-probs — and maps that reward to the probability that the candidate is correct, as measured on labelled
data (gold vs corrupted solutions, ``ledom-reason make-discrimination``). A scorer carrying one sets
:attr:`~ledom_reason.types.PairScore.p_correct`, and ``0.5`` becomes a threshold with a meaning.

Two maps, both monotone non-decreasing in the reward (so ranking by ``p_correct`` = ranking by the reward):

* ``platt`` (default): ``p = sigmoid(a · reward + b)``, two parameters fitted by maximum likelihood with
  Platt's smoothed targets (``(N₊+1)/(N₊+2)`` and ``1/(N₋+2)``, which keep the fit finite on separable data).
  Smooth, needs little data, extrapolates sensibly.
* ``isotonic``: the pool-adjacent-violators fit of the labels on the reward, a non-decreasing step function
  (interpolated linearly between steps, clipped outside the fitted range). No shape assumption, but needs
  more data and can be over-confident at the ends.

Fitting is a few lines of numpy (Newton's method on a 2-parameter log-loss; PAV); applying a map is pure
Python, so scorers, the server and clients use it with no extra dependency. The map lives in a JSON file
next to the model (:data:`CALIBRATION_FILE`), one entry per scoring setup (reverse only, or with a given
forward model), each with fingerprints of the model files it was fitted on, so a retrained or different
model never silently uses a stale map.

``p_correct`` is calibrated to the fit set's mix of correct and incorrect candidates (stated as
``base_rate``): 1 correct in 5 for a k = 4 discrimination set. Read it as "how likely this candidate is
correct, among candidates like those", not as an absolute guarantee.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ledom_reason.reward import Normalize, reverse_reward, validate_reward_args
from ledom_reason.types import PairScore

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
"""File name of a model folder's calibrations."""

Method = Literal["platt", "isotonic"]
METHODS: tuple[str, ...] = ("platt", "isotonic")
FORMAT_VERSION = 1


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True)
class Calibration:
    """A monotone map ``reward -> P(correct)`` and the reward it applies to.

    Attributes:
        method: ``"platt"`` or ``"isotonic"``.
        lam: λ of the reward the map was fitted on.
        normalize: ``"sum"`` or ``"mean"`` log-probs of that reward.
        params: ``{"a", "b"}`` (Platt) or ``{"x", "y"}`` (isotonic knots, ``x`` non-decreasing).
        forward_model: Name of the forward model of the reward (``None``: reverse only, λ = 1).
        fingerprints: ``{"model": …, "forward_model": …}`` of the model folders it was fitted with
            (:func:`model_fingerprint`); used to refuse a map on other weights.
        base_rate: Share of correct candidates in the fit set (what ``p_correct`` is relative to).
        fitted_on: Provenance: file, rows, pairs, ECE, date, versions.

    Example:
        >>> cal = Calibration("platt", lam=1.0, normalize="mean", params={"a": 2.0, "b": 6.0})
        >>> round(cal.p_of_reward(-3.0), 3)
        0.5
        >>> round(cal(PairScore.build(-8.0, 4)), 3)  # reverse_mean = -2.0
        0.881
    """

    method: Method
    lam: float
    normalize: Normalize
    params: dict[str, Any]
    forward_model: str | None = None
    fingerprints: dict[str, str | None] = field(default_factory=dict)
    base_rate: float | None = None
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, got {self.method!r}")
        validate_reward_args(self.lam, self.normalize)
        if self.lam < 1 and self.forward_model is None:
            raise ValueError(f"a calibration with lam={self.lam} < 1 needs the `forward_model` it was fitted with")
        if self.method == "platt":
            a, b = self.params.get("a"), self.params.get("b")
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in (a, b)):
                raise ValueError(f"platt `params` need finite `a` and `b`, got {self.params!r}")
            if a < 0:  # type: ignore[operator]
                raise ValueError(f"platt slope `a` must be >= 0 (a monotone non-decreasing map), got {a}")
        else:
            x, y = self.params.get("x"), self.params.get("y")
            if not isinstance(x, list) or not isinstance(y, list) or not x or len(x) != len(y):
                raise ValueError("isotonic `params` need non-empty lists `x` and `y` of equal length")
            if any(b < a for a, b in itertools.pairwise(x)) or any(b < a for a, b in itertools.pairwise(y)):
                raise ValueError("isotonic knots must be non-decreasing in `x` and `y`")
            if not all(0.0 <= v <= 1.0 for v in y):
                raise ValueError("isotonic `y` values must be probabilities in [0, 1]")

    # ------------------------------------------------------------------ applying
    def reward(self, score: PairScore | Mapping[str, Any]) -> float:
        """The reward this map applies to (raises ``ValueError`` without the forward score it needs)."""
        return reverse_reward(score, lam=self.lam, normalize=self.normalize)

    def p_of_reward(self, reward: float) -> float:
        """P(correct) of a reward value."""
        if not math.isfinite(reward):
            raise ValueError(f"reward is not finite ({reward})")
        if self.method == "platt":
            return _sigmoid(float(self.params["a"]) * reward + float(self.params["b"]))
        x, y = self.params["x"], self.params["y"]
        if reward <= x[0]:
            return float(y[0])
        if reward >= x[-1]:
            return float(y[-1])
        j = bisect.bisect_right(x, reward)  # x[j-1] <= reward < x[j]
        x0, x1, y0, y1 = x[j - 1], x[j], y[j - 1], y[j]
        return float(y0 if x1 == x0 else y0 + (y1 - y0) * (reward - x0) / (x1 - x0))

    def __call__(self, score: PairScore | Mapping[str, Any]) -> float:
        """P(correct) of one score."""
        return self.p_of_reward(self.reward(score))

    def apply(self, scores: Iterable[PairScore]) -> list[PairScore]:
        """The scores with :attr:`~ledom_reason.types.PairScore.p_correct` set."""
        return [replace(s, p_correct=self(s)) for s in scores]

    # ------------------------------------------------------------------ serialisation
    @property
    def key(self) -> str | None:
        """Which scoring setup the map belongs to: the forward model's name, ``None`` for reverse only."""
        return self.forward_model

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view."""
        return {"method": self.method, "lam": self.lam, "normalize": self.normalize, "params": self.params,
                "forward_model": self.forward_model, "fingerprints": self.fingerprints,
                "base_rate": self.base_rate, "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict` (validates the map)."""
        try:
            return cls(method=d["method"], lam=float(d["lam"]), normalize=d["normalize"], params=dict(d["params"]),
                       forward_model=d.get("forward_model"), fingerprints=dict(d.get("fingerprints") or {}),
                       base_rate=d.get("base_rate"), fitted_on=dict(d.get("fitted_on") or {}))
        except KeyError as e:
            raise ValueError(f"calibration entry is missing {e.args[0]!r}") from None


# ---------------------------------------------------------------------- fitting
def _check_xy(rewards: Sequence[float], labels: Sequence[int | bool]) -> tuple[Any, Any]:
    import numpy as np

    x = np.asarray(rewards, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"`rewards` and `labels` must be non-empty and of equal length, got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("`rewards` contains NaN or infinite values")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("`labels` must be 0/1")
    if y.min() == y.max():
        raise ValueError("`labels` are all the same: a calibration needs both correct and incorrect examples")
    return x, y


def fit_platt(rewards: Sequence[float], labels: Sequence[int | bool], *, max_iter: int = 100,
              tol: float = 1e-10) -> dict[str, float]:
    """Platt scaling: ``a, b`` maximising the likelihood of ``sigmoid(a·r + b)`` under Platt's smoothed targets.

    Newton's method with step halving on the (convex) log-loss; converges in a handful of iterations.
    """
    import numpy as np

    x, y = _check_xy(rewards, labels)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    mu, sd = float(x.mean()), float(x.std()) or 1.0
    z = (x - mu) / sd  # fit on standardised rewards, then map back: well conditioned at any scale

    def loss(w: Any) -> float:
        s = w[0] * z + w[1]
        return float(np.sum(np.logaddexp(0.0, s) - t * s))

    w = np.array([0.0, math.log((n_pos + 1) / (n_neg + 1))])
    cur = loss(w)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(w[0] * z + w[1])))
        g = np.array([np.sum((p - t) * z), np.sum(p - t)])
        v = p * (1 - p)
        h = np.array([[np.sum(v * z * z), np.sum(v * z)], [np.sum(v * z), np.sum(v)]]) + 1e-12 * np.eye(2)
        step = np.linalg.solve(h, g)
        k, improved = 1.0, False
        while k > 1e-8:  # step halving: Newton's full step can overshoot far from the optimum
            cand = w - k * step
            new = loss(cand)
            if new <= cur:
                improved = True
                break
            k /= 2
        if not improved:
            break
        gain = cur - new
        w, cur = cand, new
        if gain < tol * max(1.0, abs(cur)):
            break
    a, b = float(w[0] / sd), float(w[1] - w[0] * mu / sd)
    if a < 0:  # the reward is anti-correlated with correctness on this set: the best monotone map is flat
        logger.warning("the reward does not increase with correctness on this set (Platt slope %.3g < 0): "
                       "using the flat map p = base rate", a)
        a, b = 0.0, math.log(n_pos / n_neg)
    return {"a": a, "b": b}


def fit_isotonic(rewards: Sequence[float], labels: Sequence[int | bool]) -> dict[str, list[float]]:
    """Isotonic regression (pool adjacent violators) of the labels on the rewards.

    Returns knots ``x`` (each block's lowest and highest reward) and ``y`` (its share of correct candidates).
    """
    import numpy as np

    x, y = _check_xy(rewards, labels)
    order = np.argsort(x, kind="mergesort")
    xs, ys = x[order], y[order]
    # equal rewards form one initial block (a map cannot tell them apart)
    uniq, start = np.unique(xs, return_index=True)
    sums = np.add.reduceat(ys, start)
    counts = np.diff(np.append(start, len(xs))).astype(np.float64)
    blocks: list[list[float]] = []  # [sum, count, x_lo, x_hi]
    for s, c, u in zip(sums.tolist(), counts.tolist(), uniq.tolist(), strict=True):
        blocks.append([s, c, u, u])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s2, c2, _, hi = blocks.pop()
            blocks[-1][0] += s2
            blocks[-1][1] += c2
            blocks[-1][3] = hi
    kx: list[float] = []
    ky: list[float] = []
    for s, c, lo, hi in blocks:
        kx += [lo, hi] if hi > lo else [lo]
        ky += [s / c] * (2 if hi > lo else 1)
    return {"x": kx, "y": ky}


def fit_calibration(rewards: Sequence[float], labels: Sequence[int | bool], *, method: Method = "platt",
                    lam: float = 1.0, normalize: Normalize = "mean", forward_model: str | None = None,
                    fingerprints: Mapping[str, str | None] | None = None,
                    fitted_on: Mapping[str, Any] | None = None) -> Calibration:
    """Fit a :class:`Calibration` of ``rewards`` (computed with ``lam``/``normalize``) to 0/1 ``labels``."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    params: dict[str, Any] = fit_platt(rewards, labels) if method == "platt" else fit_isotonic(rewards, labels)
    base = sum(int(v) for v in labels) / len(labels)
    return Calibration(method, lam, normalize, params, forward_model, dict(fingerprints or {}), base,
                       dict(fitted_on or {}))


# ---------------------------------------------------------------------- measuring
def reliability_bins(probs: Sequence[float], labels: Sequence[int | bool], bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width bins over [0, 1]: per bin ``lo``, ``hi``, ``count``, ``mean_p`` and ``frac_correct``.

    Empty bins are kept (``count`` 0, means ``None``) so that plots and tables line up.
    """
    if len(probs) != len(labels) or not probs:
        raise ValueError("`probs` and `labels` must be non-empty and of equal length")
    if bins < 1:
        raise ValueError(f"`bins` must be >= 1, got {bins}")
    acc: list[list[float]] = [[0.0, 0.0, 0.0] for _ in range(bins)]  # count, sum p, sum y
    for p, y in zip(probs, labels, strict=True):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability outside [0, 1]: {p}")
        b = min(int(p * bins), bins - 1)
        acc[b][0] += 1
        acc[b][1] += p
        acc[b][2] += int(y)
    return [{"lo": i / bins, "hi": (i + 1) / bins, "count": int(c),
             "mean_p": sp / c if c else None, "frac_correct": sy / c if c else None}
            for i, (c, sp, sy) in enumerate(acc)]


def expected_calibration_error(probs: Sequence[float], labels: Sequence[int | bool], bins: int = 10) -> float:
    """ECE: the count-weighted mean over equal-width bins of ``|share correct − mean predicted p|``."""
    n = len(probs)
    return sum(b["count"] / n * abs(b["frac_correct"] - b["mean_p"])
               for b in reliability_bins(probs, labels, bins) if b["count"])


def brier_score(probs: Sequence[float], labels: Sequence[int | bool]) -> float:
    """Mean squared error of the probabilities."""
    if len(probs) != len(labels) or not probs:
        raise ValueError("`probs` and `labels` must be non-empty and of equal length")
    return sum((p - int(y)) ** 2 for p, y in zip(probs, labels, strict=True)) / len(probs)


# ---------------------------------------------------------------------- files
def model_fingerprint(folder: str | os.PathLike[str]) -> str:
    """A cheap identity of a model folder's weights: SHA-256 of ``config.json`` and, per weight file, its
    name, size and first and last MiB (hashing a 7B checkpoint whole at every load would take minutes)."""
    root = Path(folder)
    h = hashlib.sha256()
    cfg = root / "config.json"
    if cfg.is_file():
        h.update(cfg.read_bytes())
    for f in sorted(list(root.glob("*.safetensors")) + list(root.glob("*.bin"))):
        size = f.stat().st_size
        h.update(f"{f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def calibration_path(target: str | os.PathLike[str]) -> Path:
    """``target`` itself if it is a ``.json`` file path, else ``<target>/calibration.json``."""
    p = Path(target)
    return p if p.suffix == ".json" else p / CALIBRATION_FILE


def load_calibrations(target: str | os.PathLike[str]) -> list[Calibration]:
    """Every calibration in a model folder's (or a given) calibration file; ``[]`` when there is none.

    Raises:
        ValueError: the file exists but is not a valid calibration file (names the file).
    """
    path = calibration_path(target)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown format {data.get('format')!r} (expected {FORMAT_VERSION})")
        return [Calibration.from_dict(e) for e in data["calibrations"]]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a valid calibration file ({e})") from None


def save_calibration(target: str | os.PathLike[str], cal: Calibration) -> Path:
    """Add ``cal`` to the calibration file (replacing the entry for the same scoring setup); returns its path."""
    from ledom_reason.io import atomic_open

    path = calibration_path(target)
    entries = [c for c in load_calibrations(path) if c.key != cal.key] + [cal]
    with atomic_open(path) as f:
        json.dump({"format": FORMAT_VERSION, "calibrations": [c.to_dict() for c in entries]}, f, indent=2)
        f.write("\n")
    return path


def select_calibration(entries: Sequence[Calibration], *, forward_model: str | None,
                       fingerprints: Mapping[str, str | None]) -> Calibration | None:
    """The entry for this scoring setup whose fingerprints match the loaded models (else ``None``, logged)."""
    for cal in entries:
        if (cal.forward_model is None) != (forward_model is None):
            continue
        stale = [k for k, v in cal.fingerprints.items() if v is not None and fingerprints.get(k) not in (None, v)]
        if stale:
            logger.warning("calibration for forward model %s was fitted on other weights (%s differ): not used; "
                           "refit it with `ledom-reason calibrate`", cal.forward_model, ", ".join(stale))
            continue
        if forward_model is not None and cal.forward_model != forward_model and not cal.fingerprints.get("forward_model"):
            continue  # no fingerprint to compare: the names must agree
        return cal
    return None
