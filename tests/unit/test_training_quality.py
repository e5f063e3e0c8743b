"""Data-quality score S = forward CE − reverse CE: sign, layouts and selection, on trained twins.

Construction: the reverse twin is pretrained (reverse layout) on documents R, the forward twin
(forward layout, same tokenizer and size) on documents F. A document of R is then easy to read
backwards and hard forwards, so its S must be high; a document of F the opposite. Had the scorer
fed the reverse model an unreversed document, or swapped the models, the order would flip.
"""

from __future__ import annotations

import json
import random

import pytest

from ledom_reason.training.config import PretrainConfig
from ledom_reason.training.pretrain import run_pretrain
from ledom_reason.training.quality import select_top


def _docs(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join("".join(rng.choice("abcdefghij") for _ in range(3)) for _ in range(8)) for _ in range(n)]


@pytest.fixture(scope="module")
def twins(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("quality")
    tiny_tokenizer.save_pretrained(root / "tok")
    rev_docs, fwd_docs = _docs(1, 3), _docs(2, 3)
    for name, docs in (("r", rev_docs), ("f", fwd_docs)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    common = dict(tokenizer=str(root / "tok"), hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
                  block_size=16, micro_batch_size=8, max_steps=60, lr=1e-2, warmup_steps=2, log_every=60)
    run_pretrain(PretrainConfig(inputs=[f"{root / 'r.jsonl'}:10"], out_dir=str(root / "rev"), **common))
    run_pretrain(PretrainConfig(inputs=[f"{root / 'f.jsonl'}:10"], out_dir=str(root / "fwd"), direction="forward",
                                **common))
    return root, rev_docs, fwd_docs


def test_quality_orders_reverse_easy_above_reverse_hard(twins):
    from ledom_reason.training.quality import load_pair, score_documents

    root, rev_docs, fwd_docs = twins
    fwd, rev, tok = load_pair(root / "fwd", root / "rev", device="cpu")
    scores = score_documents(fwd, rev, tok, rev_docs + fwd_docs)
    s = [x.quality for x in scores]
    assert min(s[:3]) > 0 > max(s[3:]), s
    for x in scores:
        assert x.quality == pytest.approx(x.forward_ce - x.reverse_ce)
    assert min(s[:3]) > 1.0 and max(s[3:]) < -1.0, s  # nats per token: a wide margin, not noise


def test_quality_cli_writes_scores_and_keeps_the_top(twins, tmp_path):
    from ledom_reason.cli import main

    root, rev_docs, fwd_docs = twins
    docs = [fwd_docs[0], rev_docs[0], fwd_docs[1], rev_docs[1]]
    inp = tmp_path / "docs.jsonl"
    inp.write_text("".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(docs)))
    rc = main(["quality", "--forward", str(root / "fwd"), "--reverse", str(root / "rev"), "--input", str(inp),
               "--output", str(tmp_path / "s.jsonl"), "--keep-top", "0.5", "--keep-output", str(tmp_path / "k.jsonl"),
               "--device", "cpu"])
    assert rc == 0
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2, 3] and all("quality" in r for r in rows)
    kept = [json.loads(x) for x in (tmp_path / "k.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == [1, 3]  # the reverse-easy documents, in input order
    assert main(["quality", "--forward", "x", "--reverse", "y", "--input", str(inp), "--output", "o",
                 "--keep-top", "0.5"]) == 2  # --keep-output missing


def test_select_top():
    assert select_top([0.1, 0.9, 0.5, -1.0], 0.5) == [1, 2]
    assert select_top([1.0, 1.0, 0.0], 0.34) == [0, 1]
    with pytest.raises(ValueError, match="keep_top"):
        select_top([1.0], 0.0)
