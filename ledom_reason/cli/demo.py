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

DEFAULT_LAM = 0.9
"""λ for ledom-tiny + its twin: the argmax of top-1 on a held-out synthetic discrimination set
(200 problems, seed-12345 generator, normalise=mean; never GSM8K test). See the model card."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="rerank candidate solutions for a few GSM8K test problems (CPU, offline)")
    p.add_argument("--model", default="ledom-tiny", help="reverse model folder or bundled name (default: ledom-tiny)")
    p.add_argument("--forward-model", default=None, help="forward twin for a λ<1 column (default: bundled twin if any)")
    p.add_argument("--problems", type=int, default=5, help="number of GSM8K test problems")
    p.add_argument("--variants", type=int, default=3, help="corrupted variants per problem")
    p.add_argument("--lam", type=float, default=None,
                   help=f"λ of the reward (default {DEFAULT_LAM} with the forward twin, else 1 = reverse only)")
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

    lam = args.lam if args.lam is not None else (DEFAULT_LAM if fwd else 1.0)
    norm = "mean"
    methods = {f"reward λ={lam:g}": lam, "reverse only": 1.0, **({"forward only": 0.0} if fwd else {})}
    wins = dict.fromkeys(methods, 0)
    k = 0
    for i, (row, cands) in enumerate(zip(rows, cand_sets, strict=True)):
        recs = []
        for kind, text in cands:
            recs.append((kind, extract_answer(text), scores[k]))
            k += 1
        gold = extract_answer(row["answer"])
        picks = {m: max(range(len(recs)), key=lambda j, x=x: (reverse_reward(recs[j][2], x, norm), -j))
                 for m, x in methods.items()}
        for m, j in picks.items():
            wins[m] += recs[j][1] == gold
        best = picks[f"reward λ={lam:g}"]
        print(f"\n[{i + 1}] " + textwrap.shorten(row["question"], 100))
        head = f"    {'candidate':<18} {'answer':>8} {'rev/token':>10}"
        print(head + (f" {'fwd/token':>10} {'reward':>8}" if fwd else ""))
        for j, (kind, ans, sc) in enumerate(recs):
            line = f"    {kind:<18} {ans!s:>8} {sc.reverse_mean:>10.3f}"
            if fwd:
                line += f" {sc.forward_mean:>10.3f} {reverse_reward(sc, lam, norm):>8.3f}"
            print(line + ("  <- chosen" if j == best else ""))
        ok = recs[best][1] == gold
        print(f"    chosen answer {recs[best][1]} | gold {gold} | {'correct' if ok else 'wrong'}")
    print(f"\nright answer picked (of {len(rows)} problems, {1 + args.variants} candidates each, chance ≈ "
          f"{len(rows) / (1 + args.variants):.1f}): " + ", ".join(f"{m}: {w}" for m, w in wins.items()))
    print(f"(reward = (1-λ)·forward_mean + λ·reverse_mean; λ={DEFAULT_LAM:g} is ledom-tiny's validated setting, "
          "see the model card)" if fwd else "")
    if not trained:
        print("(random-weight placeholder model: this number is chance, not a result)")
    return 0
