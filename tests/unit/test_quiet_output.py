"""Quiet library calls: no transformers "Loading weights" bars unless asked, no FutureWarning from our code."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from transformers import AutoModelForCausalLM

from ledom_reason import ReverseScorer
from ledom_reason.generators.smollm2 import sample_tokens


def test_loading_a_scorer_prints_no_progress_bars(capfd, tiny_model_dir):
    ReverseScorer.from_pretrained(tiny_model_dir, device="cpu")
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out


def test_progress_bars_shown_when_info_logging_is_asked_for(capfd, tiny_model_dir):
    from transformers.utils import logging as hf_logging

    if not hf_logging.is_progress_bar_enabled():
        pytest.skip("transformers progress bars are disabled in this environment")
    log = logging.getLogger("ledom_reason")
    old = log.level
    log.setLevel(logging.INFO)
    try:
        ReverseScorer.from_pretrained(tiny_model_dir, device="cpu")
    finally:
        log.setLevel(old)
    assert "Loading weights" in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored for everyone else


def test_kv_cache_sampling_raises_no_future_warning(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # e.g. transformers' deprecated `past_key_values=`
        rows = sample_tokens(model, [1, 5, 7], n=2, max_new_tokens=4, temperature=0.0, eos_token_ids=[], seed=0)
    with torch.no_grad():  # greedy with the cache == greedy recomputed from scratch each step
        ids = [1, 5, 7]
        for _ in range(4):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert rows == [ids[3:], ids[3:]]


def test_bundled_pair_loads_without_warnings(capfd, caplog):
    with caplog.at_level(logging.WARNING, logger="ledom_reason"):
        scorer = ReverseScorer.default(forward=True, device="cpu")
    assert [r.getMessage() for r in caplog.records] == []  # e.g. no token id outside the embedding table
    assert len(scorer.tokenizer) == scorer.model.get_input_embeddings().weight.shape[0]
    assert capfd.readouterr().err == ""
