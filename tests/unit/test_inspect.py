"""`ledom-reason inspect` and the direction check: the bundled reverse model reads reversed text, its
forward twin reads text in order, random weights read neither; facts computed independently."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from ledom_reason import ReverseScorer
from ledom_reason.cli import main
from ledom_reason.scorers.checkpoint import PROBE_TEXTS, checkpoint_facts
from ledom_reason.scorers.direction import direction_check, quick_direction_check
from ledom_reason.scorers.inspection import inspect_checkpoint, inspect_model


@pytest.fixture(scope="module")
def tiny():
    return ReverseScorer.from_pretrained("ledom-tiny", device="cpu", check_direction=False)


@pytest.fixture(scope="module")
def tiny_forward():
    return ReverseScorer.from_pretrained("ledom-tiny-forward", device="cpu", check_direction=False)


def mean_nll(model, ids_list):
    """Mean NLL per token over sequences, every token after the first one of the text scored, by hand."""
    total, n = 0.0, 0
    for prefix, body in ids_list:
        ids = prefix + body
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
        for t in range(len(prefix) + 1, len(ids)):
            total -= float(logp[t - 1, ids[t]])
            n += 1
    return total / n


def test_direction_check_numbers_equal_a_hand_computation(tiny):
    tok = tiny.tokenizer
    texts = [t for _, t in PROBE_TEXTS[:2]]
    check = direction_check(tiny.model, tok, texts=texts, layouts=["auto", "none"])
    bos = [tok.bos_token_id]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    by_layout = {r.layout: r for r in check.layouts}
    assert by_layout["auto"].reverse_nll == pytest.approx(mean_nll(tiny.model, [(bos, x[::-1]) for x in ids]), abs=1e-4)
    assert by_layout["auto"].forward_nll == pytest.approx(mean_nll(tiny.model, [(bos, x) for x in ids]), abs=1e-4)
    assert by_layout["none"].reverse_nll == pytest.approx(mean_nll(tiny.model, [([], x[::-1]) for x in ids]), abs=1e-4)
    assert by_layout["auto"].tokens == sum(len(x) - 1 for x in ids)


def test_bundled_reverse_model_is_reverse(tiny):
    report = inspect_model(tiny.model, tiny.tokenizer, name="ledom-tiny")
    d = report.direction
    assert d.direction == "reverse" and d.margin > 1.0 and d.agreement == 1.0
    assert d.best_layout in {"auto", "none", "<|eos|>"} and len(d.layouts) == 3
    assert not any("FORWARD" in w for w in report.warnings)
    assert quick_direction_check(tiny.model, tiny.tokenizer).direction == "reverse"


def test_forward_twin_is_forward_with_a_plain_warning(tiny_forward):
    report = inspect_model(tiny_forward.model, tiny_forward.tokenizer, name="ledom-tiny-forward")
    assert report.direction.direction == "forward" and report.direction.margin < -1.0
    assert any("looks like a FORWARD model" in w and "forward_model" in w for w in report.warnings)
    as_forward = inspect_model(tiny_forward.model, tiny_forward.tokenizer, role="forward")
    assert not any("FORWARD" in w or "REVERSE" in w for w in as_forward.warnings)


@pytest.mark.parametrize("init", ["std0.2", "hf-default"])
def test_random_weights_are_unclear(init, tiny_model_dir, tiny_tokenizer):
    if init == "std0.2":  # the conftest model: make_tiny_model's wide init
        model = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", check_direction=False).model
    else:
        from transformers import AutoModelForCausalLM, LlamaConfig

        torch.manual_seed(3)
        model = AutoModelForCausalLM.from_config(LlamaConfig(
            vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1)).eval()
    check = direction_check(model, tiny_tokenizer)
    assert check.direction == "unclear", check.summary()
    assert "could not tell" in check.warning("reverse")


def test_facts(tiny):
    f = checkpoint_facts(tiny.model, tiny.tokenizer)
    assert f.parameters == sum(p.numel() for p in tiny.model.parameters())
    assert f.embedding_rows == tiny.model.get_input_embeddings().weight.shape[0]
    assert f.tokenizer_len == len(tiny.tokenizer) and f.architecture == "Qwen2ForCausalLM"
    assert f.context_length == tiny.model.config.max_position_embeddings and f.dtype == "float32"
    assert f.special_tokens["bos"] == {"token": tiny.tokenizer.bos_token, "id": tiny.tokenizer.bos_token_id}
    assert f.adds_special_tokens == [] and f.chat_template is False
    assert f.ids_outside_table == list(range(f.embedding_rows, f.tokenizer_len))


def test_cli_json_and_text(capsys):
    assert main(["inspect", "ledom-tiny", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["direction"] == "reverse" and out["model"]["architecture"] == "Qwen2ForCausalLM"
    assert out["forward_model"] is None and set(out["model"]["direction_check"]) >= {"margin", "layouts"}
    assert main(["inspect", "ledom-tiny-forward"]) == 0
    text = capsys.readouterr().out
    assert "direction: forward" in text and "looks like a FORWARD model" in text


def test_inspect_with_forward_model():
    report = inspect_checkpoint("ledom-tiny", forward_model="ledom-tiny-forward", device="cpu")
    assert report.direction.direction == "reverse" and report.forward.direction.direction == "forward"
    assert report.to_dict()["forward_model"]["role"] == "forward"
    swapped = inspect_checkpoint("ledom-tiny-forward", forward_model="ledom-tiny", device="cpu")
    assert any("looks like a REVERSE model" in w for w in swapped.warnings)


def test_load_time_check_warns_and_has_an_off_switch(caplog, monkeypatch):
    with caplog.at_level(logging.WARNING, logger="ledom_reason.scorers.direction"):
        s = ReverseScorer.from_pretrained("ledom-tiny-forward", device="cpu")
    assert s.direction is not None and s.direction.direction == "forward"
    assert any("looks like a FORWARD model" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ledom_reason.scorers.direction"):
        assert ReverseScorer.from_pretrained("ledom-tiny-forward", device="cpu", check_direction=False).direction is None
        monkeypatch.setenv("LEDOM_CHECK_DIRECTION", "0")
        assert ReverseScorer.from_pretrained("ledom-tiny-forward", device="cpu").direction is None
        monkeypatch.delenv("LEDOM_CHECK_DIRECTION")
        ok = ReverseScorer.from_pretrained("ledom-tiny", device="cpu", forward_model="ledom-tiny-forward")
    assert ok.direction.direction == "reverse"
    assert not caplog.records  # right models, or the check switched off: no warning
