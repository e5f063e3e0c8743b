"""``ledom-reason demo``: rerank candidate solutions for a few GSM8K test problems and print a table.

Candidates per problem are the gold solution plus corrupted variants of it (a wrong intermediate
number, a wrong final answer, …), so the demo needs no generator. The scorer ranks them by
``log P_rev(question | candidate)``; the table shows whether the top-ranked one is the gold solution.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="rerank candidate solutions for a few GSM8K test problems (CPU, offline)")
    p.add_argument("--model", default="ledom-tiny", help="reverse model folder or bundled name (default: ledom-tiny)")
    p.add_argument("--forward-model", default=None, help="forward twin for a λ<1 column (default: bundled twin if any)")
    p.add_argument("--problems", type=int, default=5, help="number of GSM8K test problems")
    p.add_argument("--variants", type=int, default=3, help="corrupted variants per problem")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="folder holding gsm8k/test.jsonl (default: ../shared/data)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def _placeholder_model() -> Path:
    """A tiny random-init model built locally, used only while no trained default is bundled."""
    import tempfile

    from ledom_reason.testing import corpus_texts, make_tiny_model, train_tiny_tokenizer

    d = Path(tempfile.gettempdir()) / "ledom-reason-placeholder-model"
    if not (d / "config.json").exists():
        shutil.rmtree(d, ignore_errors=True)
        tok = train_tiny_tokenizer(corpus_texts(max_chars=100_000), vocab_size=384)
        make_tiny_model(d, tok)
    return d


def _resolve(model: str) -> tuple[str | Path, bool]:
    from ledom_reason.models import BUNDLED

    if model in BUNDLED or Path(model).is_dir():
        return model, True
    if model == "ledom-tiny":
        print(
            "NOTE: the bundled `ledom-tiny` model is not in this build; using a tiny RANDOM-WEIGHT model "
            "built locally instead. Its scores carry no signal — this only exercises the pipeline.",
            file=sys.stderr,
        )
        return _placeholder_model(), False
    raise FileNotFoundError(f"model not found: {model}")


def _candidates(rows: list[dict[str, Any]], k: int, seed: int) -> list[list[tuple[str, str]]]:
    """Per problem: [("gold", solution), (kind, corrupted solution), ...]."""
    import random

    from ledom_reason.eval.discrimination import corrupt_solution

    rng = random.Random(seed)
    out = []
    for row in rows:
        cands = [("gold", row["answer"])]
        seen = {row["answer"]}
        for _ in range(k * 4):
            if len(cands) > k:
                break
            kind, text = corrupt_solution(row["answer"], rng)
            if text not in seen:
                seen.add(text)
                cands.append((kind, text))
        out.append(cands)
    return out


def run(args: argparse.Namespace) -> int:
    import json

    from ledom_reason.eval.answers import extract_answer
    from ledom_reason.paths import shared_data_dir
    from ledom_reason.reward import reverse_reward
    from ledom_reason.scorers.local import ReverseScorer

    model, trained = _resolve(args.model)
    fwd = args.forward_model
    if fwd is None and args.model == "ledom-tiny" and trained:
        from ledom_reason.models import BUNDLED

        fwd = "ledom-tiny-forward" if "ledom-tiny-forward" in BUNDLED else None
    path = shared_data_dir(args.data_dir) / "gsm8k" / "test.jsonl"
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(args.problems), f, strict=False)]
    scorer = ReverseScorer.from_pretrained(model, device=args.device, forward_model=fwd)
    cand_sets = _candidates(rows, args.variants, args.seed)
    pairs = [(row["question"], text) for row, cands in zip(rows, cand_sets, strict=True) for _, text in cands]
    scores = scorer.score(pairs)

    k = 0
    n_right = 0
    for i, (row, cands) in enumerate(zip(rows, cand_sets, strict=True)):
        recs = []
        for kind, text in cands:
            s = scores[k]
            k += 1
            recs.append((reverse_reward(s, normalize="mean"), kind, extract_answer(text), s))
        best = max(range(len(recs)), key=lambda j: (recs[j][0], -j))
        gold = extract_answer(row["answer"])
        ok = recs[best][2] == gold
        n_right += ok
        print(f"\n[{i + 1}] " + textwrap.shorten(row["question"], 100))
        print(f"    {'candidate':<22} {'answer':>8} {'log P_rev/token':>16}")
        for j, (r, kind, ans, _) in enumerate(recs):
            mark = "<- chosen" if j == best else ""
            print(f"    {kind:<22} {ans!s:>8} {r:>16.3f} {mark}")
        print(f"    chosen answer {recs[best][2]} | gold {gold} | {'correct' if ok else 'wrong'}")
    print(f"\nreverse reward picked the right answer on {n_right}/{len(rows)} problems "
          f"(chance with {1 + args.variants} candidates ≈ {len(rows) / (1 + args.variants):.1f})")
    if not trained:
        print("(random-weight placeholder model: this number is chance, not a result)")
    return 0
