"""`ledom-reason demo`: its picks, counts and chance level checked against an independent computation."""

from __future__ import annotations

import re

import pytest

from ledom_reason.answers import extract_answer
from ledom_reason.cli import main
from ledom_reason.cli.demo import DEMO_DATA_DIR, candidate_sets
from ledom_reason.eval.datasets import load_dataset
from ledom_reason.reward import reverse_reward

ROW = re.compile(r"^    (\S+)\s+(\S+)\s+(-?\d+\.\d{3})\s+(-?\d+\.\d{3})\s+(-?\d+\.\d{3})(  <- chosen)?$")


@pytest.fixture(scope="module")
def bundled_pair():
    from ledom_reason import ReverseScorer

    return ReverseScorer.from_pretrained("ledom-tiny", forward_model="ledom-tiny-forward", device="cpu")


def test_demo_picks_match_an_independent_computation(capsys, bundled_pair):
    problems, variants, lam = 3, 2, 0.9
    assert main(["demo", "--problems", str(problems), "--variants", str(variants)]) == 0
    out = capsys.readouterr().out

    # independent: the same seeded candidates, scored directly, argmax of each method's reward (ties: first)
    probs = load_dataset("gsm8k", "test", data_dir=DEMO_DATA_DIR, limit=problems)
    sets = candidate_sets([p.solution for p in probs], variants, 0)
    wins = {"reward λ=0.9": 0, "reverse only": 0, "forward only": 0}
    expected_rows, chance = [], 0.0
    for p, cands in zip(probs, sets, strict=True):
        scores = bundled_pair.score([(p.question, t) for _, t in cands])
        answers = [extract_answer(t) for _, t in cands]
        picks = {}
        for m, x in (("reward λ=0.9", lam), ("reverse only", 1.0), ("forward only", 0.0)):
            r = [reverse_reward(s, x, "mean") for s in scores]
            picks[m] = max(range(len(r)), key=lambda j, r=r: (r[j], -j))
            wins[m] += answers[picks[m]] == p.answer
        chance += sum(a == p.answer for a in answers) / len(answers)
        expected_rows.append([(kind, str(a), s.reverse_mean, s.forward_mean, reverse_reward(s, lam, "mean"),
                               j == picks["reward λ=0.9"])
                              for j, ((kind, _), a, s) in enumerate(zip(cands, answers, scores, strict=True))])

    printed = [m.groups() for line in out.splitlines() if (m := ROW.match(line))]
    flat = [r for rows in expected_rows for r in rows]
    assert len(printed) == len(flat)
    for got, exp in zip(printed, flat, strict=True):
        assert got[:2] == exp[:2]
        assert [float(x) for x in got[2:5]] == pytest.approx(exp[2:5], abs=1.5e-3)  # printed to 3 decimals
        assert bool(got[5]) == exp[5]
    m = re.search(r"right answer picked \(of 3 problems, 3 candidates each\): reward λ=0\.9: (\d), "
                  r"reverse only: (\d), forward only: (\d)", out)
    assert m is not None and [int(x) for x in m.groups()] == list(wins.values())
    m = re.search(r"a random pick would get (\d+\.\d) of the 3 right on average", out)
    assert m is not None and float(m.group(1)) == pytest.approx(chance, abs=0.05)
    assert "Loading weights" not in out


def test_demo_lam_option(capsys):
    assert main(["demo", "--problems", "1", "--variants", "2", "--lam", "1"]) == 0
    captured = capsys.readouterr()
    assert "reward λ=1:" in captured.out
    assert "Loading weights" not in captured.err  # library loading bars stay off
