"""``ledom-reason demo``: rerank candidate solutions for a few GSM8K test problems and print a table.

Candidates per problem are the gold solution plus corrupted variants of it (a wrong intermediate
number, a wrong final answer, …), so the demo needs no generator. The scorer ranks them by
``log P_rev(question | candidate)``; the table shows whether the top-ranked one is the gold solution.
"""

from __future__ import annotations

import argparse
import logging
import textwrap
from pathlib import Path

logger = logging.getLogger(__name__)

DEMO_DATA_DIR = Path(__file__).resolve().parents[1] / "demo_data"
"""The first 20 GSM8K test problems, shipped as package data (see its README.md)."""

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
    p.add_argument("--data-dir", default=None,
                   help="folder holding gsm8k/test.jsonl (default: the 20 problems packaged with ledom-reason)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def _candidates(solutions: list[str], k: int, seed: int) -> list[list[tuple[str, str]]]:
    """Per problem: [("gold", solution), (kind, corrupted solution), ...]."""
    import random

    from ledom_reason.eval.discrimination import corrupt_solution

    rng = random.Random(seed)
    out = []
    for solution in solutions:
        cands = [("gold", solution)]
        seen = {solution}
        for _ in range(k * 4):
            if len(cands) > k:
                break
            kind, text = corrupt_solution(solution, rng)
            if text not in seen:
                seen.add(text)
                cands.append((kind, text))
        out.append(cands)
    return out


def run(args: argparse.Namespace) -> int:
    from ledom_reason.answers import extract_answer
    from ledom_reason.eval.datasets import load_dataset
    from ledom_reason.reward import reverse_reward
    from ledom_reason.scorers.local import ReverseScorer

    fwd = args.forward_model
    if fwd is None and args.model == "ledom-tiny":
        fwd = "ledom-tiny-forward"  # its bundled twin
    data_dir = args.data_dir or DEMO_DATA_DIR
    problems = load_dataset("gsm8k", "test", data_dir=data_dir, limit=args.problems)
    rows = [{"question": p.question, "answer": p.solution} for p in problems]
    scorer = ReverseScorer.from_pretrained(args.model, device=args.device, forward_model=fwd)
    cand_sets = _candidates([r["answer"] for r in rows], args.variants, args.seed)
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
    return 0
