"""Pretraining on the Shakespeare corpus: the loss falls, kill-and-resume equals an uninterrupted run."""

from __future__ import annotations

import json

import pytest
import torch

from ledom_reason.paths import data_dir
from ledom_reason.training.config import PretrainConfig, apply_overrides, load_config
from ledom_reason.training.pretrain import run_pretrain


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory, tiny_tokenizer):
    d = tmp_path_factory.mktemp("tok")
    tiny_tokenizer.save_pretrained(d)
    return d


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
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it
    resumed = run_pretrain(_cfg(tok_dir, tmp_path / "resumed", resume="latest", **kw))["losses"]
    assert sorted(resumed) == list(range(5, 13))  # restarted from the step-4 checkpoint
    for step in range(1, 13):
        got = killed["losses"][step] if step <= 4 else resumed[step]
        assert got == pytest.approx(full[step], rel=1e-5, abs=1e-6), step
    assert (tmp_path / "resumed" / "config.json").exists()


def test_pretrain_config_validation_and_overrides(tmp_path, tok_dir):
    cfg = _cfg(tok_dir, tmp_path / "x")
    cfg2 = apply_overrides(cfg, ["--direction=forward", "--max-steps", "7", "--doc_mask", "--inputs=a.txt,b.txt:2"])
    assert (cfg2.direction, cfg2.max_steps, cfg2.doc_mask, cfg2.inputs) == ("forward", 7, True, ["a.txt", "b.txt:2"])
    with pytest.raises(ValueError, match="`direction`"):
        apply_overrides(cfg, ["--direction=sideways"])
    with pytest.raises(ValueError, match="unknown option --nope"):
        apply_overrides(cfg, ["--nope=1"])
    with pytest.raises(ValueError, match="`block_size`"):
        apply_overrides(cfg, ["--block_size=1"])
    with pytest.raises(ValueError, match="`max_steps`"):
        apply_overrides(cfg, ["--max_steps=0"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"inputs: [a.txt]\ntokenizer: {tok_dir}\nout_dir: {tmp_path}\nlr: 1.0e-3\n")
    loaded = load_config(PretrainConfig, recipe, ["--lr=2e-3"])
    assert loaded.lr == 2e-3 and loaded.inputs == ["a.txt"]
    recipe.write_text("bogus_key: 1\n")
    with pytest.raises(ValueError, match="bogus_key"):
        load_config(PretrainConfig, recipe)


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
