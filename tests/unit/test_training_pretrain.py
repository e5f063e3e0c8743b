"""Pretraining on the Shakespeare corpus: the loss falls, kill-and-resume equals an uninterrupted run."""

from __future__ import annotations

import json

import pytest
import torch

from ledom_reason.paths import data_dir
from ledom_reason.training.config import PretrainConfig
from ledom_reason.training.pretrain import run_pretrain


@pytest.fixture(scope="module")
def tok_dir(tiny_tokenizer_dir):
    return tiny_tokenizer_dir


def _cfg(tok_dir, out, **kw):
    base = dict(inputs=[str(data_dir() / "corpus" / "tinyshakespeare.txt")], tokenizer=str(tok_dir),
                out_dir=str(out), hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, block_size=64,
                micro_batch_size=8, max_steps=40, lr=3e-3, warmup_steps=4, log_every=10, max_docs_per_input=400,
                data_cache_dir=str(out.parent / "cache"))
    base.update(kw)
    return PretrainConfig(**base)


def test_pretrain_loss_falls_and_saves_a_scorer_folder(tmp_path, tok_dir):
    from ledom_reason import ReverseScorer

    res = run_pretrain(_cfg(tok_dir, tmp_path / "run"))
    losses = res["losses"]
    assert sorted(losses) == list(range(1, 41))
    first, last = sum(losses[i] for i in range(1, 6)) / 5, sum(losses[i] for i in range(36, 41)) / 5
    assert last < first - 0.5, (first, last)
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert rows[-1]["loss"] == pytest.approx(losses[40]) and rows[-1]["tokens_per_s"] > 0
    scorer = ReverseScorer.from_pretrained(tmp_path / "run", device="cpu")
    (s,) = scorer.score([("Who is there?", "Nay, answer me: stand, and unfold yourself.")])
    assert s.question_tokens > 0 and s.reverse_mean > -6.0  # better than uniform over 384 tokens (-5.95)


def test_kill_and_resume_equals_uninterrupted(tmp_path, tok_dir):
    kw = dict(max_steps=12, save_every=4, log_every=1, dropout=0.1, grad_accum=2, micro_batch_size=2)
    full = run_pretrain(_cfg(tok_dir, tmp_path / "full", **kw))["losses"]
    killed = run_pretrain(_cfg(tok_dir, tmp_path / "resumed", stop_after=6, **kw))
    assert killed["stopped_early"] and sorted(killed["losses"]) == list(range(1, 7))
    assert not (tmp_path / "resumed" / "config.json").exists()  # no final save
    log = tmp_path / "resumed" / "log.jsonl"
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    with open(log, "a") as f:
        f.write('{"step": 7, "lo')  # a line torn by the kill
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it
    resumed = run_pretrain(_cfg(tok_dir, tmp_path / "resumed", resume="latest", **kw))["losses"]
    assert sorted(resumed) == list(range(5, 13))  # restarted from the step-4 checkpoint
    for step in range(1, 13):
        got = killed["losses"][step] if step <= 4 else resumed[step]
        assert got == pytest.approx(full[step], rel=1e-5, abs=1e-6), step
    assert (tmp_path / "resumed" / "config.json").exists()
    rows = [json.loads(x) for x in log.read_text().splitlines()]  # one log: steps 5 and 6 not repeated
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert [r["loss"] for r in rows] == pytest.approx([full[s] for s in range(1, 13)], rel=1e-5, abs=1e-6)


def test_forward_direction_trains_the_twin_layout(tmp_path, tok_dir):
    from ledom_reason.training.data import TokenFile

    cfg = _cfg(tok_dir, tmp_path / "fwd", direction="forward", max_steps=2, log_every=1)
    run_pretrain(cfg)
    rev_cfg = _cfg(tok_dir, tmp_path / "rev", max_steps=2, log_every=1)
    run_pretrain(rev_cfg)
    cache = tmp_path / "cache"
    fwd_dir = next(cache.glob("tinyshakespeare-forward-*"))
    rev_dir = next(cache.glob("tinyshakespeare-reverse-*"))
    f, r = TokenFile.open(fwd_dir), TokenFile.open(rev_dir)
    assert f.doc_starts.tolist() == r.doc_starts.tolist()
    a, b = int(f.doc_starts[1]), int(f.doc_starts[2])
    bos = f.tokens[0]
    assert f.tokens[a] == r.tokens[a] == bos
    assert r.tokens[a + 1 : b].tolist() == f.tokens[a + 1 : b].tolist()[::-1]
