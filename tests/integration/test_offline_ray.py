"""Offline batch scoring with Ray Data on a local Ray started here (CPU, 2 scorer actors).

Checked against the in-process scorer: every row exactly once, other fields passed through, a scorer
actor killed (SIGKILL) mid-run is restarted and its batch retried, and a driver killed mid-run resumes
from its finished shards.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ledom_reason.offline import OfflineConfig, score_file
from ledom_reason.scorers.local import ReverseScorer

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module

QUESTIONS = ["What is 7 times 8?", "Natalia sold clips to 48 of her friends in April.", "Weng earns $12 an hour."]
ROWS = [{"id": i, "question": QUESTIONS[i % 3], "candidate": f"Step {i}: {i} + {i % 5} = {i + i % 5}. #### {i}",
         "meta": {"tags": [f"t{i}", "x"], "src": "t"}} for i in range(30)]


class KillOnceScorer:
    """A real ReverseScorer whose first ``score`` call anywhere kills its own process (once per run)."""

    def __init__(self, model_dir: str, marker: str, loads: str) -> None:
        with open(loads, "a") as f:
            f.write(f"{os.getpid()}\n")
        self.inner = ReverseScorer.from_pretrained(model_dir, device="cpu")
        self.marker = marker

    def score(self, pairs):
        try:
            with open(self.marker, "x"):  # exactly one caller creates it
                pass
        except FileExistsError:
            return self.inner.score(pairs)
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-batch
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def expected_rows(scorer, rows):
    scores = scorer.score([(r["question"], r["candidate"]) for r in rows])
    return [{**r, "reverse_logprob": s.reverse_logprob, "question_tokens": s.question_tokens} for r, s in
            zip(rows, scores, strict=True)]


def assert_rows(got, expected):
    assert [g["id"] for g in got] == [e["id"] for e in expected]  # each row once, in input order
    for g, e in zip(got, expected, strict=True):
        assert g["meta"] == e["meta"] and g["question"] == e["question"] and g["candidate"] == e["candidate"]
        assert g["question_tokens"] == e["question_tokens"]
        assert abs(g["reverse_logprob"] - e["reverse_logprob"]) < 1e-4
        assert g["reward"] == pytest.approx(g["reverse_logprob"])  # lam = 1, sum


def test_parquet_in_jsonl_out_equals_in_process_and_a_killed_worker_is_retried(local_ray, tmp_path, tiny_model_dir,
                                                                                scorer):
    inp = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), inp)
    out = tmp_path / "scores.jsonl"
    marker, loads = tmp_path / "killed", tmp_path / "loads.txt"
    factory = functools.partial(KillOnceScorer, str(tiny_model_dir), str(marker), str(loads))
    res = score_file(inp, out, factory, OfflineConfig(num_workers=2, batch_size=4, shard_rows=7))
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert_rows(got, expected_rows(scorer, ROWS))
    assert marker.exists()  # a worker did die mid-run, and its batch came back from a retry
    pids = loads.read_text().split()
    assert len(pids) == len(set(pids)) <= 2 + 1  # one model per actor process; one restart
    assert (res.rows, res.shards, res.shards_skipped, res.rows_scored) == (30, 5, 0, 30)
    assert not (tmp_path / "scores.jsonl.parts").exists()


SLOW_DRIVER = textwrap.dedent("""
    import functools, sys, time
    import ray
    from ledom_reason.offline import OfflineConfig, score_file
    from ledom_reason.scorers.local import ReverseScorer

    class Slow:
        def __init__(self, d):
            self.inner = ReverseScorer.from_pretrained(d, device="cpu")
        def score(self, pairs):
            time.sleep(0.3)
            return self.inner.score(pairs)

    addr, model, inp, out = sys.argv[1:5]
    ray.init(address=addr, log_to_driver=False)
    score_file(inp, out, functools.partial(Slow, model), OfflineConfig(num_workers=1, batch_size=2, shard_rows=4))
""")


def test_driver_killed_mid_run_resumes_from_finished_shards(local_ray, tmp_path, tiny_model_dir, scorer):
    inp, out = tmp_path / "pairs.jsonl", tmp_path / "scores.parquet"
    inp.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    parts = tmp_path / "scores.parquet.parts"
    driver = subprocess.Popen([sys.executable, "-c", SLOW_DRIVER, local_ray, str(tiny_model_dir), str(inp), str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t_end = time.monotonic() + 120
    while time.monotonic() < t_end and len(list(parts.glob("shard-*.jsonl"))) < 2 and driver.poll() is None:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait(30)
    finished = sorted(p.name for p in parts.glob("shard-*.jsonl"))
    assert 2 <= len(finished) < 8 and not out.exists(), driver.stderr.read().decode()[-2000:]
    # the same command again (through the CLI), on the same cluster: only the missing shards are scored
    from ledom_reason.cli import main

    assert main(["score", "--ray", "--model", str(tiny_model_dir), "--device", "cpu", "--input", str(inp),
                 "--output", str(out), "--shard-rows", "4", "--ray-batch-size", "2", "--num-workers", "1"]) == 0
    got = pq.read_table(out).to_pylist()
    assert_rows(got, expected_rows(scorer, ROWS))
    assert not parts.exists()


def test_bad_rows_and_foreign_parts_are_clear_errors(tmp_path, tiny_model_dir):
    inp = tmp_path / "bad.jsonl"
    inp.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"question": "q"}) + "\n")
    factory = functools.partial(ReverseScorer.from_pretrained, str(tiny_model_dir), device="cpu")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing field\(s\) \['candidate'\]"):
        score_file(inp, tmp_path / "o.jsonl", factory)
    inp.write_text(json.dumps({**ROWS[0], "candidate": " "}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: `candidate` is empty"):
        score_file(inp, tmp_path / "o.jsonl", factory)
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(ROWS[0]) + "\n")
    (tmp_path / "o.jsonl.parts").mkdir()
    (tmp_path / "o.jsonl.parts" / "manifest.json").write_text(json.dumps({"input": "other"}))
    with pytest.raises(ValueError, match="belongs to another run"):
        score_file(good, tmp_path / "o.jsonl", factory)
    with pytest.raises(ValueError, match="num_workers"):
        OfflineConfig(num_workers=0)
    assert not Path(tmp_path / "o.jsonl").exists()
