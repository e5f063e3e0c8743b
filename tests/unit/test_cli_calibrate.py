"""`ledom-reason make-discrimination --split train` + `ledom-reason calibrate` end to end on a tiny real model:
the stored map is the fit of the cached rewards, the report's ECE is recomputed from it, and the scorer picks
the map up (p_correct on every score)."""

from __future__ import annotations

import json
import shutil

import pytest

from ledom_reason.calibration import expected_calibration_error, fit_platt, load_calibrations
from ledom_reason.cli import main
from ledom_reason.eval.score_cache import ScoreCache
from ledom_reason.reward import reverse_reward


@pytest.fixture(scope="module")
def disc_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("disc")
    assert main(["make-discrimination", "--split", "train", "--limit", "8", "--k", "3", "--out", str(d / "tr.jsonl")]) == 0
    assert main(["make-discrimination", "--split", "test", "--limit", "4", "--k", "3", "--out", str(d / "te.jsonl")]) == 0
    return d / "tr.jsonl", d / "te.jsonl"


def test_calibrate_fits_stores_reports_and_attaches(tmp_path, tiny_model_dir, disc_files, capsys):
    from ledom_reason import ReverseScorer

    model = shutil.copytree(tiny_model_dir, tmp_path / "rev")
    train, test = disc_files
    rows = [json.loads(x) for x in train.read_text().splitlines()]
    assert all(r["id"].startswith("gsm8k/train/") for r in rows)
    report = tmp_path / "report"
    assert main(["calibrate", "--model", str(model), "--discrimination", str(train), "--heldout", str(test),
                 "--report-dir", str(report), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| fit (in-sample) |" in out and "| held out: te.jsonl |" in out

    (cal,) = load_calibrations(model)
    assert (cal.method, cal.lam, cal.normalize, cal.forward_model) == ("platt", 1.0, "mean", None)
    # independent: score the set directly and refit
    plain = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu")
    rewards, labels = [], []
    for r in rows:
        for s, y in zip(plain.score([(r["question"], c) for c in r["candidates"]]), r["labels"], strict=True):
            rewards.append(reverse_reward(s, 1.0, "mean"))
            labels.append(y)
    ref = fit_platt(rewards, labels)  # (batching changes log-probs by ~1e-5: hence the tolerance)
    assert cal.params["a"] == pytest.approx(ref["a"], rel=1e-3, abs=1e-4)
    assert cal.params["b"] == pytest.approx(ref["b"], rel=1e-3, abs=1e-4)
    # the report's ECE, recomputed from the scores the command cached
    cache = ScoreCache(report / "scores.jsonl")
    cached = [reverse_reward(cache.get(r["question"], c), 1.0, "mean") for r in rows for c in r["candidates"]]
    rep = json.loads((report / "calibration_report.json").read_text())
    assert rep["results"]["fit (in-sample)"]["ece"] == pytest.approx(
        expected_calibration_error([cal.p_of_reward(v) for v in cached], labels), abs=1e-12)
    assert (report / "reliability.png").read_bytes()[:4] == b"\x89PNG"

    # the scorer now carries the map: p_correct = the map of its reward, in Python and in `ledom-reason score`
    scorer = ReverseScorer.from_pretrained(model, device="cpu")
    s = scorer.score([(rows[0]["question"], rows[0]["candidates"][0])])[0]
    assert s.p_correct == pytest.approx(cal.p_of_reward(reverse_reward(s, 1.0, "mean")))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"question": rows[0]["question"], "candidate": rows[0]["candidates"][0]}) + "\n")
    assert main(["score", "--model", str(model), "--input", str(pairs), "--output", str(tmp_path / "s.jsonl"),
                 "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "s.jsonl").read_text())["p_correct"] == pytest.approx(s.p_correct, abs=1e-6)


def test_calibrate_refuses_bad_settings(tmp_path, tiny_model_dir, disc_files, capsys):
    train, _ = disc_files
    base = ["calibrate", "--model", str(tiny_model_dir), "--discrimination", str(train), "--report-dir",
            str(tmp_path / "r"), "--device", "cpu"]
    assert main([*base, "--lam", "0.5"]) == 2
    assert "--forward-model" in capsys.readouterr().err
    assert main([*base, "--forward-model", str(tiny_model_dir)]) == 2  # no validated λ in its metadata
    assert "--lam is needed" in capsys.readouterr().err
