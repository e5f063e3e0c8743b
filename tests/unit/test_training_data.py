"""Data pipeline: reading, direction layouts, packing without cross-document loss, fine-tune masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ledom_reason.reverse import build_reverse_ids, encode_plain, reverse_document
from ledom_reason.scorers.forward import build_forward_seq
from ledom_reason.training.data import (
    IGNORE,
    Example,
    PackedBlocks,
    ShuffledStream,
    TokenFile,
    build_pair_examples,
    build_token_file,
    collate_examples,
    documents_to_ids,
    encode_many,
    iter_documents,
    parse_input_spec,
)


def _token_file(docs: list[list[int]]) -> TokenFile:
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]]).astype(np.int64)
    return TokenFile(tokens=np.concatenate([np.asarray(d) for d in docs]).astype(np.uint16), doc_starts=starts)


def test_packing_never_crosses_documents():
    # Token values encode (document, index) so every target can be checked against its input.
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 23, size=40)
    docs = [[1000 * d + i for i in range(n)] for d, n in enumerate(lengths)]
    blocks = PackedBlocks(_token_file(docs), block_size=16)
    assert len(blocks) == (sum(lengths) - 1) // 16
    n_targets = 0
    for k in range(len(blocks)):
        x, y, pos = blocks[k]
        assert x.shape == y.shape == pos.shape == (16,)
        for t in range(16):
            doc, idx = divmod(int(x[t]), 1000)
            # position id = distance from the document start, restarted at the block start
            assert pos[t] == min(idx, t)
            if y[t] == IGNORE:  # only the last token of a document has no target
                assert idx == lengths[doc] - 1
            else:
                assert divmod(int(y[t]), 1000) == (doc, idx + 1)
                n_targets += 1
    # every in-document transition inside the covered range is trained exactly once
    covered = len(blocks) * 16
    flat = np.concatenate([np.asarray(d) for d in docs])
    expect = sum(1 for i in range(covered) if flat[i] // 1000 == flat[i + 1] // 1000)
    assert n_targets == expect


def test_packed_documents_do_not_attend_to_each_other(tiny_tokenizer, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    a, b = [5, 9, 13, 7, 22], [40, 41, 60, 3]
    blocks = PackedBlocks(_token_file([a, b, [1, 2]]), block_size=9)
    x, _, pos = (torch.from_numpy(v)[None] for v in blocks[0])
    with torch.no_grad():  # use_cache=False: with a KV cache transformers ignores packing
        packed = model(input_ids=x, position_ids=pos, use_cache=False).logits[0]
        alone = model(input_ids=torch.tensor([b]), use_cache=False).logits[0]
        leaky = model(input_ids=x, use_cache=False).logits[0]
    torch.testing.assert_close(packed[5:9], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(leaky[5:9], alone, atol=1e-3)  # without the reset, doc b would see doc a


def test_document_layouts_use_the_reversal_convention(tiny_tokenizer):
    tok = tiny_tokenizer
    q, s, text = "What is 2+3?", "2+3 = 5\n#### 5", "To be, or not to be"
    assert encode_many(tok, [q, s]) == [encode_plain(tok, q), encode_plain(tok, s)]
    rev = documents_to_ids(tok, [text, (q, s)], "reverse")
    assert rev[0] == reverse_document(encode_plain(tok, text), bos_token_id=tok.bos_token_id)
    assert rev[1] == build_reverse_ids(encode_plain(tok, q), encode_plain(tok, s),
                                       bos_token_id=tok.bos_token_id).input_ids
    fwd = documents_to_ids(tok, [text, (q, s)], "forward")
    assert fwd[0] == [tok.bos_token_id, *encode_plain(tok, text)]
    assert fwd[1] == build_forward_seq(tok, q, s).input_ids
    with pytest.raises(ValueError, match="direction"):
        documents_to_ids(tok, [text], "sideways")


def test_finetune_loss_mask_covers_exactly_the_question(tiny_tokenizer):
    tok = tiny_tokenizer
    pairs = [("How many apples are left?", "5 - 2 = 3\n#### 3"), ("Add 4 and 4.", "4+4 = 8\n#### 8")]
    exs = build_pair_examples(pairs, tok, "reverse", max_length=None)
    batch = collate_examples(exs, tok.pad_token_id)
    for b, (q, s) in enumerate(pairs):
        r = build_reverse_ids(encode_plain(tok, q), encode_plain(tok, s), bos_token_id=tok.bos_token_id)
        assert exs[b] == Example(r.input_ids, r.score_start)
        tgt = batch["targets"][b]
        scored = (tgt != IGNORE).nonzero().flatten().tolist()
        # logits at positions score_start-1 .. end-1 predict exactly the question tokens
        assert scored == list(r.logit_positions)
        assert tgt[scored].tolist() == r.input_ids[r.score_start :]
        assert r.question_ids_forward() == encode_plain(tok, q)
    fwd = build_pair_examples(pairs, tok, "forward", max_length=None)
    fb = collate_examples(fwd, tok.pad_token_id)
    for b, (_q, s) in enumerate(pairs):
        sol = encode_plain(tok, s)
        assert fb["targets"][b][fb["targets"][b] != IGNORE].tolist() == sol


def test_finetune_truncation_keeps_the_question(tiny_tokenizer):
    tok = tiny_tokenizer
    q, s = "Short question?", "a long solution " * 30
    (ex,) = build_pair_examples([(q, s)], tok, "reverse", max_length=40)
    assert len(ex.input_ids) == 40
    assert ex.input_ids[ex.score_start :] == encode_plain(tok, q)[::-1]


def test_reading_inputs_and_token_file_cache(tmp_path, tiny_tokenizer):
    jl = tmp_path / "mix.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in [
        {"text": "plain document"}, {"question": "q?", "answer": "a"}, {"question": "q2?", "solution": "s2"},
        {"text": "   "}]) + "\n")
    assert list(iter_documents(jl)) == ["plain document", ("q?", "a"), ("q2?", "s2")]
    txt = tmp_path / "c.txt"
    txt.write_text("para one\nline two\n\npara two\n\n\npara three\n")
    assert list(iter_documents(txt)) == ["para one\nline two", "para two", "para three"]
    assert len(list(iter_documents(txt, doc_split="line"))) == 4
    assert list(iter_documents(txt, max_docs=2)) == ["para one\nline two", "para two"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"other": 1}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        list(iter_documents(bad))
    folder = build_token_file(jl, tiny_tokenizer, "reverse", tmp_path / "cache")
    tf = TokenFile.open(folder)
    ids = documents_to_ids(tiny_tokenizer, list(iter_documents(jl)), "reverse")
    assert tf.tokens.tolist() == [t for d in ids for t in d]
    assert tf.doc_starts.tolist() == np.cumsum([0] + [len(d) for d in ids[:-1]]).tolist()
    assert build_token_file(jl, tiny_tokenizer, "reverse", tmp_path / "cache") == folder  # cache hit
    assert build_token_file(jl, tiny_tokenizer, "forward", tmp_path / "cache") != folder


def test_shuffled_stream_is_deterministic_and_weighted():
    s1, s2 = ShuffledStream([10, 4], [1.0, 2.5], seed=3), ShuffledStream([10, 4], [1.0, 2.5], seed=3)
    assert s1.epoch_size == 10 + 10  # 4 * 2.5 = 10 items of source 1
    epoch0 = [s1[i] for i in range(20)]
    assert epoch0 == [s2[i] for i in range(20)]
    assert sorted(epoch0) != epoch0  # shuffled
    assert sum(1 for src, _ in epoch0 if src == 1) == 10
    assert [s1[i] for i in range(20, 40)] != epoch0  # a new permutation per epoch
    assert [ShuffledStream([10], seed=4)[i] for i in range(10)] != [ShuffledStream([10], seed=3)[i] for i in range(10)]


def test_parse_input_spec():
    assert parse_input_spec("a/b.txt") == ("a/b.txt", 1.0)
    assert parse_input_spec("a/b.jsonl:2.5") == ("a/b.jsonl", 2.5)
    assert parse_input_spec("C:/x.txt") == ("C:/x.txt", 1.0)
    with pytest.raises(ValueError, match="weight"):
        parse_input_spec("a.txt:0")
