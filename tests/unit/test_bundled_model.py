"""The bundled default `ledom-tiny` (and its forward twin) load offline and carry real signal."""

from __future__ import annotations

import pytest

from ledom_reason import ReverseScorer
from ledom_reason.models import BUNDLED, resolve_model_name
from ledom_reason.training.synthetic_math import generate_problems


@pytest.fixture(scope="module")
def tiny_default():
    return ReverseScorer.default(device="cpu", forward_model="ledom-tiny-forward")


def test_bundled_files_are_small_and_present():
    total = 0
    for name in BUNDLED:
        path = resolve_model_name(name)
        assert path is not None and (path / "config.json").exists() and (path / "tokenizer.json").exists()
        total += sum(f.stat().st_size for f in path.iterdir())
    assert total <= 20_000_000  # the 20 MB cap for the embedded default
    assert resolve_model_name("no-such-model") is None


def test_default_loads_by_name(tiny_default):
    assert tiny_default.name == "ledom-tiny"
    assert tiny_default.forward_model is not None
    s = tiny_default.score([("What is 7 times 8?", "7*8=<<7*8=56>>56\n#### 56")])[0]
    assert s.question_tokens > 0 and s.forward_logprob is not None


def test_reverse_model_prefers_the_matching_solution(tiny_default):
    """Held-out synthetic problems (a seed never used in training): log P_rev(q | own solution) beats
    log P_rev(q | another problem's solution) almost always. A random or broken model gets ~50%."""
    rows = generate_problems(24, seed=987_654)
    pairs = []
    for i, r in enumerate(rows):
        other = rows[(i + 1) % len(rows)]["answer"]
        pairs += [(r["question"], r["answer"]), (r["question"], other)]
    s = tiny_default.score(pairs)
    wins = sum(s[2 * i].reverse_logprob > s[2 * i + 1].reverse_logprob for i in range(len(rows)))
    assert wins >= 0.9 * len(rows)


def test_default_pair_uses_its_metadata_lambda_and_shipped_calibration():
    import json
    import math

    from ledom_reason.reward import reverse_reward

    folder = resolve_model_name("ledom-tiny")
    meta = json.loads((folder / "ledom.json").read_text())
    shipped = {e["forward_model"]: e for e in json.loads((folder / "calibration.json").read_text())["calibrations"]}
    pair = [("What is 7 times 8?", "7*8=<<7*8=56>>56\n#### 56")]
    for forward, key, spec in ((True, "ledom-tiny-forward", meta["reward"]), (False, None, meta["reverse_only_reward"])):
        scorer = ReverseScorer.default(forward=forward, device="cpu")
        assert (scorer.forward_model is not None) is forward
        assert (scorer.recommended_reward.lam, scorer.recommended_reward.normalize) == (spec["lam"], spec["normalize"])
        entry = shipped[key]
        assert (entry["lam"], entry["normalize"]) == (spec["lam"], spec["normalize"])  # fitted at the validated λ
        s = scorer.score(pair)[0]
        z = entry["params"]["a"] * reverse_reward(s, entry["lam"], entry["normalize"]) + entry["params"]["b"]
        assert s.p_correct == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-12)
