"""Experiment runner: outputs, plots, score caching, resume without duplicate rows, and the CLI."""

from __future__ import annotations

import json

import pytest

from ledom_reason.eval.candidates import read_candidates
from ledom_reason.eval.runner import EvalConfig, run_eval, summarize
from ledom_reason.types import PairScore


class CountingScorer:
    """Reverse log-prob = -(distance of the candidate's answer from 10); forward = -length. Counts pairs."""

    def __init__(self, fail_after_calls: int | None = None) -> None:
        self.pairs: list[tuple[str, str]] = []
        self.calls = 0
        self.fail_after = fail_after_calls

    def score(self, pairs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt  # simulate Ctrl-C in the middle of a run
        self.calls += 1
        self.pairs += list(pairs)
        out = []
        for _, c in pairs:
            v = float(c.rsplit("####", 1)[-1])
            out.append(PairScore.build(-abs(v - 10.0), 3, forward_logprob=-float(len(c)), candidate_tokens=len(c),
                                       input_tokens=len(c)))
        return out

    async def ascore(self, pairs):
        return self.score(pairs)


def _rows(k: int = 6) -> list[dict]:
    rows = []
    for i in range(k):
        # gold 10; candidates: three votes for 7, the 10 once, one 12 (closest-to-10 reward picks 10)
        rows.append({"id": f"p{i}", "question": f"Question {i}?", "gold": "10",
                     "candidates": [f"a {i} #### 7", f"b {i} #### 7", f"c {i} #### 7", f"long text {i} #### 10",
                                    f"d {i} #### 12"],
                     "greedy": f"g {i} #### {10 if i % 2 else 7}"})
    return rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_run_eval_outputs_and_plots(tmp_path):
    sc = CountingScorer()
    cfg = EvalConfig(ns=(1, 2, 4), seeds=3, lams=(0.0, 0.5, 1.0), chunk=4)
    summary = run_eval(_rows(), sc, cfg, tmp_path)
    t = summary["table"]
    assert t["reward"]["accuracy"] == 1.0 and t["majority"]["accuracy"] == 0.0
    assert t["pass@N (oracle)"]["accuracy"] == 1.0 and t["greedy"]["accuracy"] == 0.5
    assert t["forward"]["accuracy"] == 0.0  # shortest candidate has answer 7
    lo, hi = t["greedy"]["ci95"]
    assert lo < 0.5 < hi
    assert summary["accuracy_vs_lambda"]["reward"][-1] == [1.0, 1.0]
    assert summary["accuracy_vs_lambda"]["reward"][0] == [0.0, 0.0]
    n_curve = dict((int(n), a) for n, a in summary["accuracy_vs_n"]["pass@N (oracle)"])
    assert n_curve[1] <= n_curve[2] <= n_curve[4]
    assert sc.calls == 2 and len(sc.pairs) == 30  # chunk=4 problems per call; each pair once
    for name in ("acc_vs_n.png", "acc_vs_lambda.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert "| reward | 1.000 |" in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["problems"] == 6
    rows = [json.loads(x) for x in (tmp_path / "per_problem.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(6)]
    assert rows[0]["choices"]["reward"] == {"index": 3, "answer": "10", "correct": True}


def test_resume_after_interruption_does_not_duplicate(tmp_path):
    cfg = EvalConfig(ns=(1, 2), seeds=1, chunk=2, aggregators=("reward", "majority"))
    with pytest.raises(KeyboardInterrupt):
        run_eval(_rows(), CountingScorer(fail_after_calls=2), cfg, tmp_path)
    per = tmp_path / "per_problem.jsonl"
    assert len(per.read_text().splitlines()) == 4
    with open(per, "a") as f:
        f.write('{"id": "p4", "question": "tor')  # a torn line, as if killed mid-write
    sc = CountingScorer()
    summary = run_eval(_rows(), sc, cfg, tmp_path)
    ids = [json.loads(x)["id"] for x in per.read_text().splitlines()]
    assert ids == [f"p{i}" for i in range(6)]
    assert len(sc.pairs) == 10  # only the two unfinished problems were scored
    assert summary["problems"] == 6
    # a third run scores nothing and rewrites the same summary
    sc3 = CountingScorer()
    again = run_eval(_rows(), sc3, cfg, tmp_path)
    assert sc3.calls == 0 and again["table"] == summary["table"]


def test_score_cache_reused_across_aggregators_and_lams(tmp_path):
    first = CountingScorer()
    run_eval(_rows(), first, EvalConfig(aggregators=("reward",), ns=(1,), seeds=1), tmp_path)
    assert len(first.pairs) == 30
    (tmp_path / "per_problem.jsonl").unlink()  # new settings, same folder: the score cache stays
    second = CountingScorer()
    s = run_eval(_rows(), second, EvalConfig(aggregators=("weighted", "forward", "majority"), ns=(1, 5), seeds=2,
                                             lams=(0.0, 0.5, 1.0)), tmp_path)
    assert second.calls == 0
    assert s["table"]["weighted"]["accuracy"] == 1.0 and s["table"]["majority"]["accuracy"] == 0.0
    # summarize() alone recomputes any aggregator from the stored per-problem scores
    rows = [json.loads(x) for x in (tmp_path / "per_problem.jsonl").read_text().splitlines()]
    assert summarize(rows, EvalConfig(aggregators=("reward",), ns=(1,), seeds=1))["table"]["reward"]["accuracy"] == 1.0


def test_majority_only_needs_no_scorer(tmp_path):
    s = run_eval(_rows(), None, EvalConfig(aggregators=("majority", "random"), ns=(1, 3), seeds=2), tmp_path)
    assert s["table"]["majority"]["accuracy"] == 0.0 and not (tmp_path / "scores.jsonl").exists()


def test_forward_needed_is_a_clear_error(tmp_path, scorer):
    with pytest.raises(ValueError, match="forward"):
        run_eval(_rows(2), scorer, EvalConfig(aggregators=("forward",), ns=(1,), seeds=1), tmp_path)


def test_read_candidates_validation(tmp_path):
    p = tmp_path / "c.jsonl"
    _write(p, [{"question": "q?", "candidates": ["#### 1"]}])
    with pytest.raises(ValueError, match="gold"):
        read_candidates(p)
    assert read_candidates(p, gold_by_question={"q?": "1"})[0]["id"] == "line-1"
    _write(p, [{"question": "q?", "candidates": [], "gold": 1}])
    with pytest.raises(ValueError, match="`candidates`"):
        read_candidates(p)


def test_cli_eval_with_tiny_model(tmp_path, tiny_model_dir, capsys):
    from ledom_reason.cli import main

    cands = tmp_path / "cands.jsonl"
    _write(cands, [{k: v for k, v in r.items() if k != "gold"} | {"question": q, "gold": "18"}
                   for r, q in zip(_rows(3), ["Janet has 16 eggs?", "Robe bolts?", "House flip?"], strict=True)])
    out = tmp_path / "out"
    rc = main(["eval", "--candidates", str(cands), "--model", str(tiny_model_dir), "--device", "cpu",
               "--n", "1,2,4", "--seeds", "2", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| reward |" in text and "| majority |" in text and "forward" not in text.split("Accuracy vs N")[0]
    assert (out / "acc_vs_n.png").stat().st_size > 5000
    assert not (out / "acc_vs_lambda.png").exists()  # no forward model: no λ sweep


def test_summary_carries_compute_accounting(tmp_path):
    from ledom_reason.search import STATS_FIELDS

    rows = _rows(4)
    for i, r in enumerate(rows):
        r["stats"] = {"generated_tokens": 10 + i, "generation_time_s": 0.5}  # as `ledom-reason generate` writes
    sc = CountingScorer()
    st = run_eval(rows, sc, EvalConfig(ns=(1, 2), seeds=1, chunk=2), tmp_path / "a")["stats"]
    assert tuple(st) == STATS_FIELDS
    assert st["scored_pairs"] == len(sc.pairs) == 20
    assert st["scored_tokens"] == sum(len(c) for _, c in sc.pairs)  # CountingScorer: input_tokens = len(text)
    assert st["generated_tokens"] == 10 + 11 + 12 + 13 and st["generation_time_s"] == pytest.approx(2.0)
    assert st["scorer_calls"] == sc.calls == 2 and 0 <= st["scoring_time_s"] <= st["wall_time_s"]
    assert "Compute: 20 pairs" in (tmp_path / "a" / "summary.md").read_text()
    del rows[0]["stats"]  # one problem without generation stats: the totals are unknown, not undercounted
    st = run_eval(rows, CountingScorer(), EvalConfig(ns=(1,), seeds=1), tmp_path / "b")["stats"]
    assert st["generated_tokens"] is None and st["generation_time_s"] is None
