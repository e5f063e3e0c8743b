"""Calibrated verifier scores: the fits against scikit-learn, the ECE against a plain reference, the file
format, and scorers that attach a calibration (p_correct on every score) only when it fits their weights."""

from __future__ import annotations

import itertools
import json
import math
import shutil

import numpy as np
import pytest

from ledom_reason.calibration import (
    Calibration,
    expected_calibration_error,
    fit_calibration,
    fit_isotonic,
    fit_platt,
    load_calibrations,
    model_fingerprint,
    save_calibration,
    select_calibration,
)
from ledom_reason.types import PairScore


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    x = -3.5 + 0.6 * y + rng.normal(0, 0.4, n)
    return x, y


def test_platt_equals_sklearn_logistic_regression_on_platts_targets():
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    got = fit_platt(x.tolist(), y.tolist())
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))  # Platt's smoothed targets
    # soft targets as weights on a duplicated set; C huge = no penalty
    lr = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(
        np.concatenate([x, x])[:, None], np.r_[np.ones(len(x)), np.zeros(len(x))], sample_weight=np.r_[t, 1 - t])
    assert got["a"] == pytest.approx(lr.coef_[0, 0], rel=1e-5)
    assert got["b"] == pytest.approx(lr.intercept_[0], rel=1e-5)


def test_isotonic_equals_sklearn_isotonic_regression():
    from sklearn.isotonic import IsotonicRegression

    x, y = _data(seed=1)
    x = np.round(x, 2)  # ties: equal rewards must share one value
    cal = Calibration("isotonic", 1.0, "mean", fit_isotonic(x.tolist(), y.tolist()))
    ref = IsotonicRegression(out_of_bounds="clip").fit(x, y)
    grid = np.linspace(x.min() - 1, x.max() + 1, 1001)
    assert max(abs(cal.p_of_reward(float(v)) - float(ref.predict([v])[0])) for v in grid) < 1e-12


def test_ece_matches_a_plain_reference():
    rng = np.random.default_rng(2)
    p = rng.random(500)
    y = (rng.random(500) < p ** 2).astype(int)
    idx = np.minimum((p * 10).astype(int), 9)
    ref = sum(abs(y[idx == b].mean() - p[idx == b].mean()) * (idx == b).mean() for b in range(10) if (idx == b).any())
    assert expected_calibration_error(p.tolist(), y.tolist(), bins=10) == pytest.approx(ref, abs=1e-12)
    assert expected_calibration_error([0.3] * 10, [1, 1, 1] + [0] * 7) == pytest.approx(0.0)


def test_calibration_maps_are_monotone_and_validated():
    x, y = _data(seed=3)
    for method in ("platt", "isotonic"):
        cal = fit_calibration(x.tolist(), y.tolist(), method=method)
        ps = [cal.p_of_reward(v) for v in np.linspace(-6, -1, 200)]
        assert all(b >= a for a, b in itertools.pairwise(ps)) and 0 <= ps[0] <= ps[-1] <= 1
        assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    with pytest.raises(ValueError, match="forward_model"):
        Calibration("platt", 0.5, "mean", {"a": 1.0, "b": 0.0})
    with pytest.raises(ValueError, match="slope"):
        Calibration("platt", 1.0, "mean", {"a": -1.0, "b": 0.0})
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration("isotonic", 1.0, "mean", {"x": [0.0, 1.0], "y": [0.6, 0.2]})
    with pytest.raises(ValueError, match="both correct and incorrect"):
        fit_platt([1.0, 2.0], [1, 1])
    # anti-correlated data: the best monotone map is flat at the base rate, not a decreasing one
    flat = fit_platt([-1.0, -2.0, -3.0, -4.0], [0, 0, 1, 1])
    assert flat["a"] == 0.0 and Calibration("platt", 1.0, "sum", flat).p_of_reward(0.0) == pytest.approx(0.5)


def test_calibration_file_keeps_one_entry_per_setup(tmp_path):
    rev = Calibration("platt", 1.0, "mean", {"a": 1.0, "b": 3.0}, fingerprints={"model": "m1", "forward_model": None})
    pair = Calibration("platt", 0.9, "mean", {"a": 2.0, "b": 5.0}, forward_model="fwd",
                       fingerprints={"model": "m1", "forward_model": "f1"})
    save_calibration(tmp_path, rev)
    save_calibration(tmp_path, pair)
    save_calibration(tmp_path, Calibration("platt", 1.0, "mean", {"a": 3.0, "b": 1.0}, fingerprints={"model": "m1"}))
    entries = load_calibrations(tmp_path)
    assert len(entries) == 2 and {e.forward_model for e in entries} == {None, "fwd"}
    assert select_calibration(entries, forward_model=None, fingerprints={"model": "m1"}).params["a"] == 3.0
    assert select_calibration(entries, forward_model="elsewhere/fwd", fingerprints={"model": "m1",
                                                                                     "forward_model": "f1"}) == pair
    # other weights: never a silent stale map
    assert select_calibration(entries, forward_model="fwd", fingerprints={"model": "m2", "forward_model": "f1"}) is None
    (tmp_path / "calibration.json").write_text('{"format": 99}')
    with pytest.raises(ValueError, match=r"calibration\.json"):
        load_calibrations(tmp_path)


def test_pair_score_round_trip_stays_backwards_compatible():
    old = {"reverse_logprob": -4.0, "question_tokens": 2, "reverse_mean": -2.0, "truncated_tokens": 0,
           "input_tokens": 9}
    s = PairScore.from_dict(old)
    assert s.p_correct is None and s.to_dict() == {**old, "forward_logprob": None, "candidate_tokens": None,
                                                   "forward_mean": None}
    c = Calibration("platt", 1.0, "mean", {"a": 1.0, "b": 3.0}).apply([s])[0]
    assert c.p_correct == pytest.approx(1 / (1 + math.exp(-(-2.0 + 3.0))))
    assert PairScore.from_dict(c.to_dict()) == c


@pytest.fixture()
def model_copy(tmp_path, tiny_model_dir):
    return shutil.copytree(tiny_model_dir, tmp_path / "rev")


def test_scorer_attaches_the_matching_calibration_and_sets_p_correct(model_copy):
    from ledom_reason import ReverseScorer

    pairs = [("What is 2+3?", "2+3 = 5. #### 5"), ("What is 2+3?", "It is 7. #### 7")]
    plain = ReverseScorer.from_pretrained(model_copy, device="cpu")
    assert plain.calibration is None and all(s.p_correct is None for s in plain.score(pairs))
    cal = Calibration("platt", 1.0, "mean", {"a": 0.5, "b": 2.0},
                      fingerprints={"model": model_fingerprint(model_copy), "forward_model": None})
    save_calibration(model_copy, cal)
    scorer = ReverseScorer.from_pretrained(model_copy, device="cpu")
    for s, raw in zip(scorer.score(pairs), plain.score(pairs), strict=True):
        assert s.p_correct == pytest.approx(1 / (1 + math.exp(-(0.5 * raw.reverse_mean + 2.0))), abs=1e-9)
        assert s.reverse_logprob == raw.reverse_logprob
    assert ReverseScorer.from_pretrained(model_copy, device="cpu", calibration=None).calibration is None
    # retrained weights in the same folder: the stale map is not used
    weights = next(model_copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1000:] = bytes(1000)
    weights.write_bytes(bytes(data))
    assert ReverseScorer.from_pretrained(model_copy, device="cpu").calibration is None


def test_a_calibration_for_a_pair_needs_the_forward_model(model_copy):
    from ledom_reason import ReverseScorer

    cal = Calibration("platt", 0.5, "mean", {"a": 1.0, "b": 0.0}, forward_model="fwd")
    with pytest.raises(ValueError, match="forward model"):
        ReverseScorer.from_pretrained(model_copy, device="cpu", calibration=cal)
