"""Verifier-discrimination set: corruptions are valid and distinct, metrics are right, CLI round trip."""

from __future__ import annotations

import json
import random
import re

import pytest

from ledom_reason.answers import extract_answer
from ledom_reason.eval.datasets import load_dataset
from ledom_reason.eval.discrimination import (
    CORRUPTIONS,
    _safe_eval,
    build_discrimination_set,
    corrupt_solution,
    evaluate_discrimination,
)
from ledom_reason.types import PairScore

GOLD = ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
        "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18")


def _bad_marks(text: str) -> int:
    return sum(abs(_safe_eval(e) - float(r)) > 1e-6 for e, r in re.findall(r"<<([^=<>]+)=([^<>]+)>>", text))


def _last_mark(text: str) -> str:
    return re.findall(r"<<[^=<>]+=([^<>]+)>>", text)[-1]


@pytest.mark.parametrize("seed", range(6))
def test_each_kind_on_a_known_solution(seed):
    got = {k: corrupt_solution(GOLD, random.Random(seed), k)[1] for k in CORRUPTIONS}
    assert len(set(got.values())) == len(CORRUPTIONS) and GOLD not in got.values()
    prop = got["number_propagate"]  # one wrong calculation, everything after it recomputed
    assert _bad_marks(prop) == 1 and extract_answer(prop) == _last_mark(prop) != "18"
    local = got["number_local"]  # one wrong calculation, nothing downstream changes
    assert _bad_marks(local) == 1 and local.endswith("#### 18")
    swap = got["swap_operation"]  # a consistent chain with one operation swapped
    assert _bad_marks(swap) == 0 and extract_answer(swap) != "18"
    assert swap.split("<<")[0] != GOLD.split("<<")[0] or swap.split("\n")[1].split("<<")[0] != GOLD.split("\n")[1].split("<<")[0]
    assert got["wrong_final"].rsplit("\n", 1)[0] == GOLD.rsplit("\n", 1)[0]
    assert extract_answer(got["wrong_final"]) != "18"
    assert "####" not in got["truncated"] and GOLD.startswith(got["truncated"])


def test_builder_is_seeded_distinct_and_valid():
    probs = load_dataset("gsm8k", limit=12)
    a = build_discrimination_set(probs, k=4, seed=3)
    assert a == build_discrimination_set(probs, k=4, seed=3)
    assert a != build_discrimination_set(probs, k=4, seed=4)
    positions = set()
    for row, p in zip(a, probs, strict=True):
        assert len(row["candidates"]) == 5 and sum(row["labels"]) == 1
        assert len(set(row["candidates"])) == 5
        g = row["labels"].index(1)
        positions.add(g)
        assert row["candidates"][g] == p.solution and row["kinds"][g] == "gold"
        assert all(k in CORRUPTIONS for j, k in enumerate(row["kinds"]) if j != g)
        assert len({k for j, k in enumerate(row["kinds"]) if j != g}) >= 3  # kinds are varied
    assert len(positions) > 1  # gold position is shuffled


def test_evaluate_discrimination_metrics():
    rows = [{"id": "a", "candidates": ["g", "c1", "c2"], "labels": [1, 0, 0], "kinds": ["gold", "x", "y"]},
            {"id": "b", "candidates": ["c1", "g", "c2"], "labels": [0, 1, 0], "kinds": ["x", "gold", "y"]}]

    def s(rev, fwd):
        return PairScore.build(rev, 2, forward_logprob=fwd, candidate_tokens=4)

    scores = [[s(-1.0, -9.0), s(-3.0, -1.0), s(-2.0, -1.0)],   # reverse right, forward wrong
              [s(-5.0, -9.0), s(-4.0, -1.0), s(-4.0, -2.0)]]   # reverse: tie with c2
    res = {r["lam"]: r for r in evaluate_discrimination(rows, scores, lams=(0.0, 1.0), n_boot=200)}
    assert res[1.0]["top1"] == pytest.approx(1.0)  # the gold is the lowest-index maximum in row b
    assert res[1.0]["auc"] == pytest.approx((1.0 + 0.75) / 2)
    assert res[1.0]["by_kind"] == {"x": 1.0, "y": 0.75}
    assert res[0.0]["top1"] == 0.5 and res[0.0]["auc"] == pytest.approx((0.0 + 1.0) / 2)
    lo, hi = res[1.0]["auc_ci"]
    assert lo <= res[1.0]["auc"] <= hi


def test_cli_make_discrimination_and_eval(tmp_path, tiny_model_dir, capsys):
    from ledom_reason.cli import main

    disc = tmp_path / "disc.jsonl"
    assert main(["make-discrimination", "--k", "3", "--limit", "4", "--seed", "0", "--out", str(disc)]) == 0
    rows = [json.loads(x) for x in disc.read_text().splitlines()]
    assert len(rows) == 4 and all(len(r["candidates"]) == 4 for r in rows)
    out = tmp_path / "out"
    assert main(["eval", "--discrimination", str(disc), "--model", str(tiny_model_dir), "--device", "cpu",
                 "--normalize", "sum,mean", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pairwise AUC" in text and "| 1 | sum | 4 |" in text and "| 1 | mean | 4 |" in text
    res = json.loads((out / "discrimination.json").read_text())
    assert len(res) == 2 and 0.0 <= res[0]["auc"] <= 1.0
