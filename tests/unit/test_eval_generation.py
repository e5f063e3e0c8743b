"""Candidate generation with a tiny real model: batched, resumable, complete lines only."""

from __future__ import annotations

import json

import pytest

from ledom_reason.eval.candidates import read_candidates
from ledom_reason.eval.datasets import load_dataset
from ledom_reason.eval.generation import GenerationConfig, clean_output, generate_candidates


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir):
    import torch

    from ledom_reason.scorers.local import load_causal_lm, resolve_device

    return load_causal_lm(tiny_model_dir, None, resolve_device("cpu"), torch.float32)


def test_generate_and_resume(tmp_path, tiny_lm):
    model, tok = tiny_lm
    probs = load_dataset("gsm8k", limit=3)
    out = tmp_path / "cands.jsonl"
    cfg = GenerationConfig(n=2, max_new_tokens=6, batch_size=4, greedy=True, chat_template=False)
    assert generate_candidates(model, tok, probs[:2], out, cfg) == 2
    with open(out, "a") as f:
        f.write('{"id": "gsm8k/test/2", "quest')  # torn line from an interrupted run
    done = []
    assert generate_candidates(model, tok, probs, out, cfg, progress=done.append) == 1
    assert done == [1]
    rows = read_candidates(out)
    assert [r["id"] for r in rows] == [p.id for p in probs]
    assert all(len(r["candidates"]) == 2 and isinstance(r["greedy"], str) for r in rows)
    assert rows[0]["gold"] == "18" and rows[0]["meta"]["n"] == 2
    assert all(line.endswith("}") for line in out.read_text().splitlines())
    assert generate_candidates(model, tok, probs, out, cfg) == 0


def test_clean_output_and_config():
    cfg = GenerationConfig()
    assert clean_output("  9*2=18\n#### 18\nQuestion: next", cfg) == "9*2=18\n#### 18"
    assert clean_output("   ", cfg) == "(no output)"
    with pytest.raises(ValueError, match="`temperature`"):
        GenerationConfig(temperature=0)
    with pytest.raises(ValueError, match="question"):
        GenerationConfig(prompt="no placeholder")


def test_cli_generate(tmp_path, tiny_model_dir):
    from ledom_reason.cli import main

    out = tmp_path / "c.jsonl"
    args = ["generate", "--model", str(tiny_model_dir), "--limit", "2", "--n", "2", "--max-new-tokens", "4",
            "--device", "cpu", "--out", str(out)]
    assert main(args) == 0 and main(args) == 0  # the second run resumes and adds nothing
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["gsm8k/test/0", "gsm8k/test/1"]


def test_prompt_ids_match_forward_scorer_layout(tiny_tokenizer):
    """`--prompt '{question}'` feeds a forward twin exactly the prefix the forward scorer uses."""
    from ledom_reason.eval.generation import GenerationConfig, prompt_ids
    from ledom_reason.scorers.forward import forward_prompt_ids

    q = "Tina earns $19 an hour. How much does she earn in 2 hours?"
    cfg = GenerationConfig(prompt="{question}", chat_template=False)
    assert prompt_ids(tiny_tokenizer, cfg.prompt.format(question=q), cfg) == forward_prompt_ids(
        tiny_tokenizer, q, chat_template=False)
    assert prompt_ids(tiny_tokenizer, q, cfg)[0] == tiny_tokenizer.bos_token_id


def test_rows_record_generated_tokens(tmp_path, tiny_lm):
    model, tok = tiny_lm
    out = tmp_path / "cands.jsonl"
    cfg = GenerationConfig(n=2, max_new_tokens=5, batch_size=4, chat_template=False)
    generate_candidates(model, tok, load_dataset("gsm8k", limit=2), out, cfg)
    for row in read_candidates(out):
        # a random tiny model rarely stops early: each sample is at most max_new_tokens and at least one token
        assert 2 <= row["stats"]["generated_tokens"] <= 2 * 5
        assert row["stats"]["generation_time_s"] > 0
