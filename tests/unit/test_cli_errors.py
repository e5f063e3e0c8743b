"""Every CLI error about an input file has one format: `ledom-reason CMD: error: FILE:LINE: message`,
whether it comes from JSON parsing, from checking a row, from validating a pair or from the scorer."""

from __future__ import annotations

import json
import re

import pytest

from ledom_reason.cli import main
from ledom_reason.cli._common import score_with_progress
from ledom_reason.types import InvalidPairError, PairScore

Q = "Weng earns $12 an hour for babysitting. How much does she earn in 2 hours?"
GOOD = "12 * 2 = 24.\n#### 24"
LONG_Q = "seven apples " * 600  # too long for the tiny model's context, whatever the candidate
LINE = re.compile(r"^ledom-reason (\S+): error: (\S+):(\d+): (.+)$")


def _lines(*rows) -> str:
    # a blank line after the first row: line numbers count it, row numbers would not
    out = [json.dumps(rows[0]), ""] + [r if isinstance(r, str) else json.dumps(r) for r in rows[1:]]
    return "\n".join(out) + "\n"


def _run(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    m = LINE.match(err[0])
    assert m is not None, err[0]
    return m.group(2), int(m.group(3)), m.group(4)


SCORE_CASES = {
    "invalid json": ("{not json", "invalid JSON"),
    "missing field": ({"question": Q}, "missing field"),
    "empty candidate": ({"question": Q, "candidate": "  "}, "`candidate` is empty"),
    "non-string question": ({"question": 7, "candidate": GOOD}, "`question` must be str"),
    "question longer than the context": ({"question": LONG_Q, "candidate": GOOD}, "context"),
}


@pytest.mark.parametrize("case", list(SCORE_CASES))
def test_score_errors_name_file_and_line(tmp_path, tiny_model_dir, capsys, case):
    bad, msg = SCORE_CASES[case]
    inp = tmp_path / "pairs.jsonl"
    inp.write_text(_lines({"question": Q, "candidate": GOOD}, {"question": Q, "candidate": GOOD}, bad))
    path, line, text = _run(capsys, ["score", "--model", str(tiny_model_dir), "--input", str(inp), "--device", "cpu"])
    assert (path, line) == (str(inp), 4) and msg in text


RERANK_CASES = {
    "candidates not a list": ({"question": Q, "candidates": GOOD}, "non-empty list"),
    "empty candidate": ({"question": Q, "candidates": [GOOD, ""]}, "candidates[1]: `candidate` is empty"),
    "question longer than the context": ({"question": LONG_Q, "candidates": [GOOD]}, "candidates[0]:"),
}


@pytest.mark.parametrize("case", list(RERANK_CASES))
def test_rerank_errors_name_file_and_line(tmp_path, tiny_model_dir, capsys, case):
    bad, msg = RERANK_CASES[case]
    inp = tmp_path / "cands.jsonl"
    inp.write_text(_lines({"question": Q, "candidates": [GOOD]}, bad))
    path, line, text = _run(capsys, ["rerank", "--model", str(tiny_model_dir), "--input", str(inp), "--device", "cpu"])
    assert (path, line) == (str(inp), 3) and msg in text


def test_eval_errors_name_file_and_line(tmp_path, tiny_model_dir, capsys):
    inp = tmp_path / "cands.jsonl"
    good = {"id": "a", "question": Q, "candidates": [GOOD], "gold": "24"}
    inp.write_text(_lines(good, {"id": "b", "question": Q, "candidates": [GOOD, 5], "gold": "24"}))
    args = ["eval", "--candidates", str(inp), "--model", str(tiny_model_dir), "--device", "cpu",
            "--aggregators", "reward", "--n", "1"]
    path, line, text = _run(capsys, [*args, "--out", str(tmp_path / "o1")])
    assert (path, line) == (str(inp), 3) and "candidates[1]" in text
    # the scorer rejects a pair: reported at the line of the row that holds it
    inp.write_text(_lines(good, {"id": "b", "question": LONG_Q, "candidates": [GOOD], "gold": "24"}))
    path, line, text = _run(capsys, [*args, "--out", str(tmp_path / "o2")])
    assert (path, line) == (str(inp), 3) and "candidates[0]" in text


def test_score_with_progress_reindexes_pair_errors_to_the_whole_list():
    class FailsOnX:
        def score(self, pairs):
            for i, (_, c) in enumerate(pairs):
                if c == "x":
                    raise InvalidPairError("bad", i)
            return [PairScore.build(-1.0, 1) for _ in pairs]

    pairs = [("q", "a"), ("q", "b"), ("q", "c"), ("q", "x")]
    with pytest.raises(InvalidPairError) as e:
        score_with_progress(FailsOnX(), pairs, "t", chunk=2)
    assert e.value.index == 3  # not 1, its index inside the second chunk


def test_dataset_file_errors_name_file_and_line(tmp_path, capsys):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text(_lines({"question": Q, "answer": GOOD}, {"question": Q},
                                                          {"question": Q, "answer": "no final line"}))
    path, line, text = _run(capsys, ["make-discrimination", "--split", "train", "--data-dir", str(tmp_path),
                                     "--out", str(tmp_path / "d.jsonl")])
    assert (path, line) == (str(tmp_path / "gsm8k" / "train.jsonl"), 3) and "answer" in text
