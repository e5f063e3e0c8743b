"""Loading a checkpoint folder: custom code only with trust_remote_code=True, and the tokenizer the folder
saved even where transformers 5 would pick another class from the model type."""

from __future__ import annotations

import json

import pytest
import torch

from ledom_reason import ReverseScorer
from ledom_reason.scorers.checkpoint import load_tokenizer


@pytest.fixture(scope="module")
def custom_code_folder(tmp_path_factory, tiny_tokenizer):
    """A Llama checkpoint whose config points at model code shipped in the folder (``auto_map``)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    d = tmp_path_factory.mktemp("custom_code")
    (d / "configuration_tiny.py").write_text(
        "from transformers import LlamaConfig\n\n\nclass TinyCustomConfig(LlamaConfig):\n    model_type = 'tiny_custom'\n")
    (d / "modeling_tiny.py").write_text(
        "from transformers import LlamaForCausalLM\n\nfrom .configuration_tiny import TinyCustomConfig\n\n\n"
        "class TinyCustomForCausalLM(LlamaForCausalLM):\n    config_class = TinyCustomConfig\n")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)).save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(model_type="tiny_custom", architectures=["TinyCustomForCausalLM"],
               auto_map={"AutoConfig": "configuration_tiny.TinyCustomConfig",
                         "AutoModelForCausalLM": "modeling_tiny.TinyCustomForCausalLM"})
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_custom_code_needs_trust_remote_code(custom_code_folder):
    with pytest.raises(ValueError, match="custom code"):
        ReverseScorer.from_pretrained(custom_code_folder, device="cpu", check_direction=False)
    s = ReverseScorer.from_pretrained(custom_code_folder, device="cpu", check_direction=False, trust_remote_code=True)
    assert type(s.model).__name__ == "TinyCustomForCausalLM"
    e = s.encode([("What is 2 + 2?", "4")])[0].reverse
    with torch.no_grad():
        logp = s.model(input_ids=torch.tensor([e.input_ids])).logits[0].double().log_softmax(-1)
    ref = sum(float(logp[t - 1, e.input_ids[t]]) for t in e.target_positions)
    assert s.score([("What is 2 + 2?", "4")])[0].reverse_logprob == pytest.approx(ref, abs=1e-4)


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_saved_slow_tokenizer_wins_over_the_model_type(family, tmp_path, caplog):
    """A ByT5 (pure-Python) tokenizer beside a Qwen2 / Mistral config: AutoTokenizer returns an empty
    Qwen2Tokenizer / fails; the folder's own class is loaded."""
    from transformers import AutoConfig, AutoTokenizer, ByT5Tokenizer

    ByT5Tokenizer(extra_ids=0).save_pretrained(tmp_path)
    AutoConfig.for_model(family, vocab_size=259).save_pretrained(tmp_path)
    try:
        auto = AutoTokenizer.from_pretrained(tmp_path)
        auto_ids = auto("hello", add_special_tokens=False)["input_ids"]
    except ValueError:
        auto, auto_ids = None, None
    tok = load_tokenizer(tmp_path)
    assert type(tok).__name__ == "ByT5Tokenizer"
    assert tok("hello", add_special_tokens=False)["input_ids"] == [ord(ch) + 3 for ch in "hello"]
    if auto is not None and type(auto) is ByT5Tokenizer:
        assert tok.ledom_reload_note is None  # transformers got it right: nothing to say
    else:
        assert auto_ids != tok("hello", add_special_tokens=False)["input_ids"]
        assert "ByT5Tokenizer" in tok.ledom_reload_note
