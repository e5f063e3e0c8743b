"""Fine-tuning: the objective is the scorer's, and full / LoRA runs save folders ReverseScorer loads."""

from __future__ import annotations

import json

import pytest

from ledom_reason.training.config import FinetuneConfig
from ledom_reason.training.finetune import run_finetune

PAIRS = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "3 + 4 = 7\n#### 7"),
    ("A box holds 6 eggs. How many eggs are in 2 boxes?", "6 * 2 = 12\n#### 12"),
    ("Sara had 10 pens and gave away 4. How many are left?", "10 - 4 = 6\n#### 6"),
]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("ft") / "train.jsonl"  # GSM8K field names: question + answer
    p.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PAIRS))
    return p


def _cfg(model_dir, pairs_file, out, **kw):
    base = dict(model=str(model_dir), inputs=[str(pairs_file)], out_dir=str(out), micro_batch_size=3,
                max_steps=15, lr=3e-3, warmup_steps=2, log_every=5)
    base.update(kw)
    return FinetuneConfig(**base)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_finetune_raises_the_scorer_logprob_and_saves_a_loadable_folder(tmp_path, tiny_model_dir, pairs_file, lora):
    from ledom_reason import ReverseScorer

    before = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu").score(PAIRS)
    kw = dict(lora=True, lora_r=8, lr=2e-2) if lora else {}
    res = run_finetune(_cfg(tiny_model_dir, pairs_file, tmp_path / "out", **kw))
    assert res["num_examples"] == 3
    assert res["losses"][15] < res["losses"][1]
    after = ReverseScorer.from_pretrained(tmp_path / "out", device="cpu").score(PAIRS)
    for b, a in zip(before, after, strict=True):
        assert a.question_tokens == b.question_tokens
        assert a.reverse_logprob > b.reverse_logprob + 1.0  # the trained objective is what the scorer scores
    assert not (tmp_path / "out" / "adapter_config.json").exists()


def test_lora_without_merge_saves_an_adapter(tmp_path, tiny_model_dir, pairs_file):
    run_finetune(_cfg(tiny_model_dir, pairs_file, tmp_path / "ad", lora=True, lora_merge=False, max_steps=2))
    assert (tmp_path / "ad" / "adapter_config.json").exists()


def test_finetune_loss_equals_scorer_nll(tmp_path, tiny_model_dir, pairs_file):
    from ledom_reason import ReverseScorer

    # lr ~ 0: the first step's loss is the untrained model's mean NLL over all question tokens
    res = run_finetune(_cfg(tiny_model_dir, pairs_file, tmp_path / "z", max_steps=1, lr=1e-12, warmup_steps=0))
    scores = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu").score(PAIRS)
    expect = -sum(s.reverse_logprob for s in scores) / sum(s.question_tokens for s in scores)
    assert res["losses"][1] == pytest.approx(expect, rel=1e-4)


def test_forward_finetune_loss_equals_forward_scorer_nll(tmp_path, tiny_model_dir, tiny_forward_dir, pairs_file):
    from ledom_reason import ReverseScorer

    res = run_finetune(_cfg(tiny_forward_dir, pairs_file, tmp_path / "f", max_steps=1, lr=1e-12,
                            warmup_steps=0, direction="forward"))
    scores = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", forward_model=tiny_forward_dir).score(PAIRS)
    expect = -sum(s.forward_logprob for s in scores) / sum(s.candidate_tokens for s in scores)
    assert res["losses"][1] == pytest.approx(expect, rel=1e-4)


def test_finetune_config_errors(tmp_path, pairs_file):
    with pytest.raises(ValueError, match="`model`"):
        FinetuneConfig(inputs=[str(pairs_file)], out_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model folder"):
        run_finetune(_cfg(tmp_path / "missing", pairs_file, tmp_path / "o"))
