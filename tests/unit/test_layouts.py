"""The `bos` layout setting is one setting everywhere: the local scorer, the CLI and the server it loads,
and training all build the same ids for a layout — written out by hand here from the tokenizer's output."""

from __future__ import annotations

import json

import pytest
import torch

from ledom_reason import ReverseScorer
from ledom_reason.cli import main
from ledom_reason.scorers.config import ScorerConfig
from ledom_reason.scorers.encoding import PairEncoder
from ledom_reason.scorers.engine import ScoringSeq, reference_logprobs
from ledom_reason.testing import plain_ids as plain
from ledom_reason.training.data import build_pair_examples, documents_to_ids

Q, C = "Tom has 12 apples and eats 5. How many are left?", "12 - 5 = 7\n#### 7"
PAIRS = [(Q, C), ("Hi?", "Yes."), ("What is 3 times 4?", "3 * 4 = 12, so the answer is 12.\n#### 12")]


def expected_reverse(tok, q, c, bos):
    if bos == "tokenizer":  # the third-party loader's recipe: encode with specials, reverse, drop the last (BOS)
        seg = lambda text: list(reversed(tok.encode(text)))[:-1]  # noqa: E731
        return seg(c) + seg(q), len(seg(c))
    prefix = {"auto": [tok.bos_token_id], "none": []}.get(bos, [tok.convert_tokens_to_ids(bos)] if bos else [])
    return prefix + plain(tok, c)[::-1] + plain(tok, q)[::-1], len(prefix) + len(plain(tok, c))


@pytest.mark.parametrize("bos", ["auto", "none", "<|eos|>", "tokenizer"])
def test_scorer_layouts_score_what_they_build(bos, tiny_model_dir, bos_eos_tokenizer):
    tok = bos_eos_tokenizer
    fast = ReverseScorer.from_pretrained(tiny_model_dir, tokenizer=tok, device="cpu", bos=bos, batch_tokens=64,
                                         check_direction=False)
    for e, (q, c) in zip(fast.encode(PAIRS), PAIRS, strict=True):
        ids, start = expected_reverse(tok, q, c, bos)
        assert (e.reverse.input_ids, e.reverse.score_start) == (ids, start)
    got = [s.reverse_logprob for s in fast.score(PAIRS)]
    ref = reference_logprobs(fast.model, [ScoringSeq(*expected_reverse(tok, q, c, bos)) for q, c in PAIRS],
                             torch.device("cpu"))
    assert got == pytest.approx(ref, abs=1e-4)


def test_layouts_give_different_scores(scorer, tiny_model_dir):
    """The setting reaches the model: the same pair scores differently with and without a first token."""
    none = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", bos="none", check_direction=False)
    a, b = scorer.score(PAIRS[:1])[0], none.score(PAIRS[:1])[0]
    assert a.question_tokens == b.question_tokens and a.input_tokens == b.input_tokens + 1
    assert abs(a.reverse_logprob - b.reverse_logprob) > 1e-3


def test_forward_layout(tiny_model_dir, tiny_forward_dir, bos_eos_tokenizer):
    tok = bos_eos_tokenizer
    s = ReverseScorer.from_pretrained(tiny_model_dir, tokenizer=tok, forward_model=tiny_forward_dir, forward_tokenizer=tok,
                                      device="cpu", forward_bos="tokenizer", check_direction=False)
    f = s.encode([(Q, C)])[0].forward
    assert f.input_ids == tok(Q)["input_ids"] + plain(tok, C) and f.score_start == len(tok(Q)["input_ids"])
    s2 = ReverseScorer.from_pretrained(tiny_model_dir, tokenizer=tok, forward_model=tiny_forward_dir, forward_tokenizer=tok,
                                       device="cpu", forward_bos="none", check_direction=False)
    assert s2.encode([(Q, C)])[0].forward.input_ids == plain(tok, Q) + plain(tok, C)


@pytest.mark.parametrize("bos", ["auto", "none", "tokenizer"])
def test_training_builds_the_scorer_ids(bos, bos_eos_tokenizer):
    tok = bos_eos_tokenizer
    enc = PairEncoder(tok, ScorerConfig(bos=bos))
    exs = build_pair_examples(PAIRS, tok, "reverse", max_length=None, bos=bos)
    for ex, e in zip(exs, enc.encode(PAIRS), strict=True):
        assert (ex.input_ids, ex.score_start) == (e.reverse.input_ids, e.reverse.score_start)
    docs = documents_to_ids(tok, [*PAIRS, "To be, or not to be"], "reverse", bos=bos)
    assert docs[: len(PAIRS)] == [e.reverse.input_ids for e in enc.encode(PAIRS)]
    text = "To be, or not to be"
    assert docs[-1] == {"auto": [tok.bos_token_id, *plain(tok, text)[::-1]], "none": plain(tok, text)[::-1],
                        "tokenizer": list(reversed(tok.encode(text)))[:-1]}[bos]
    fwd_enc = PairEncoder(tok, ScorerConfig(forward_bos=bos), forward_tokenizer=tok)
    fwd = build_pair_examples(PAIRS, tok, "forward", max_length=None, bos=bos)
    assert [x.input_ids for x in fwd] == [e.forward.input_ids for e in fwd_enc.encode(PAIRS)]
    assert documents_to_ids(tok, PAIRS, "forward", bos=bos) == [x.input_ids for x in fwd]


def test_finetune_config_takes_the_setting(tmp_path):
    from ledom_reason.training.config import FinetuneConfig
    from ledom_reason.training.parser import load_config

    cfg = load_config(FinetuneConfig, args=["--out_dir", str(tmp_path), "--model", "m", "--inputs", "x.jsonl",
                                            "--bos", "none"])
    assert cfg.bos == "none"
    with pytest.raises(ValueError, match="`bos`"):
        FinetuneConfig(out_dir=str(tmp_path), model="m", inputs=["x.jsonl"], bos="")


def test_cli_score_and_serve_take_the_setting(tmp_path, tiny_model_dir):
    from ledom_reason.cli import make_parser

    inp, out = tmp_path / "pairs.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"question": q, "candidate": c}) + "\n" for q, c in PAIRS))
    assert main(["score", "--model", str(tiny_model_dir), "--input", str(inp), "--output", str(out),
                 "--device", "cpu", "--bos", "none"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    none = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", bos="none", check_direction=False)
    assert [r["reverse_logprob"] for r in rows] == pytest.approx([s.reverse_logprob for s in none.score(PAIRS)],
                                                                 abs=1e-5)
    args = make_parser().parse_args(["serve", "--model", "m", "--bos", "<s>", "--forward-bos", "none"])
    assert (args.bos, args.forward_bos) == ("<s>", "none")

