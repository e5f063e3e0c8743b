"""`ledom-reason score` / `rerank` end to end on temp files (in-process main(), real tiny model)."""

from __future__ import annotations

import json

import pytest

from ledom_reason.cli import main

Q = "Weng earns $12 an hour for babysitting. Yesterday she did 50 minutes. How much did she earn?"
GOOD = "Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.\n#### 10"
BAD = "#### 7"


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_score_end_to_end(tmp_path, tiny_model_dir, scorer):
    inp, out = tmp_path / "pairs.jsonl", tmp_path / "out.jsonl"
    _write(inp, [{"id": 1, "question": Q, "candidate": GOOD}, {"id": 2, "question": Q, "candidate": BAD}])
    assert main(["score", "--model", str(tiny_model_dir), "--input", str(inp), "--output", str(out), "--device", "cpu"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2]  # order + pass-through
    expected = scorer.score([(Q, GOOD), (Q, BAD)])
    for r, s in zip(rows, expected, strict=True):
        assert r["reverse_logprob"] == pytest.approx(s.reverse_logprob, abs=1e-5)
        assert r["reward"] == pytest.approx(s.reverse_logprob, abs=1e-5)
        assert r["question_tokens"] == s.question_tokens


def test_rerank_end_to_end_with_forward(tmp_path, tiny_model_dir, tiny_forward_dir, scorer_fwd):
    inp, out = tmp_path / "r.jsonl", tmp_path / "ranked.jsonl"
    _write(inp, [{"question": Q, "candidates": [BAD, GOOD, "Forty-two. #### 42"], "gold": "10"}])
    rc = main(["rerank", "--model", str(tiny_model_dir), "--forward-model", str(tiny_forward_dir),
               "--lam", "0.5", "--normalize", "mean", "--input", str(inp), "--output", str(out), "--device", "cpu"])
    assert rc == 0
    row = json.loads(out.read_text())
    assert row["gold"] == "10" and len(row["ranking"]) == 3
    rewards = [d["reward"] for d in row["ranking"]]
    assert rewards == sorted(rewards, reverse=True)
    cands = [BAD, GOOD, "Forty-two. #### 42"]
    s = scorer_fwd.score([(Q, c) for c in cands])
    exp = [0.5 * x.forward_mean + 0.5 * x.reverse_mean for x in s]
    best = max(range(3), key=lambda i: exp[i])
    # one name per concept: `text` = the full candidate, `answer` = its extracted final answer
    assert row["best"] == {"index": best, "text": cands[best], "answer": ["7", "10", "42"][best],
                           "reward": pytest.approx(exp[best], abs=1e-5)}
    top = row["ranking"][0]
    assert (top["index"], top["text"], top["answer"]) == (best, cands[best], ["7", "10", "42"][best])


@pytest.mark.parametrize(
    ("content", "msg"),
    [
        ('{"question": "q"}\n', "missing field"),
        ("not json\n", "invalid JSON"),
        ('{"question": "q", "candidate": ""}\n', "empty"),
        ('[1, 2]\n', "JSON object"),
    ],
)
def test_bad_input_exits_nonzero_without_output(tmp_path, tiny_model_dir, capsys, content, msg):
    inp, out = tmp_path / "bad.jsonl", tmp_path / "out.jsonl"
    inp.write_text(content, encoding="utf-8")
    rc = main(["score", "--model", str(tiny_model_dir), "--input", str(inp), "--output", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".out.jsonl.*"))  # no temp file left behind


def test_lambda_without_forward_and_missing_model(tmp_path, tiny_model_dir, capsys):
    inp = tmp_path / "p.jsonl"
    _write(inp, [{"question": Q, "candidate": GOOD}])
    assert main(["score", "--model", str(tiny_model_dir), "--input", str(inp), "--lam", "0.5"]) == 2
    assert "forward-model" in capsys.readouterr().err
    assert main(["score", "--model", str(tmp_path / "none"), "--input", str(inp)]) == 2
    assert main(["score", "--input", str(inp)]) == 2
    assert main(["rerank", "--model", str(tiny_model_dir), "--input", str(tmp_path / "missing.jsonl")]) == 2


def test_existing_output_untouched_on_failure(tmp_path, tiny_model_dir):
    inp, out = tmp_path / "bad.jsonl", tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    inp.write_text('{"question": "q", "candidate": 3}\n')
    assert main(["score", "--model", str(tiny_model_dir), "--input", str(inp), "--output", str(out)]) == 2
    assert out.read_text() == "previous results\n"
