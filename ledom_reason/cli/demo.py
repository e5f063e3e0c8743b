"""``ledom-reason demo``: rerank candidate solutions for a few GSM8K test problems and print a table.

Candidates per problem are the gold solution plus corrupted variants of it (a wrong intermediate
number, a wrong final answer, …), so the demo needs no generator. The scorer ranks them by the reward
``(1-λ)·forward_mean + λ·reverse_mean`` (per-token log-probs); the table shows whether the top-ranked one
has the right final answer, next to what reverse-only and forward-only selection would have picked, and
what a random pick would get on average.
"""

from __future__ import annotations

import argparse
import logging
import random
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledom_reason.reward import Normalize

logger = logging.getLogger(__name__)

DEMO_DATA_DIR = Path(__file__).resolve().parents[1] / "demo_data"
"""The first 20 GSM8K test problems, shipped as package data (see its README.md)."""

DEFAULT_LAM = 0.9
"""λ for ledom-tiny + its twin: the argmax of top-1 on a held-out synthetic discrimination set
(200 problems, seed-12345 generator, normalise=mean; never GSM8K test). See the model card
(``ledom_reason/models/ledom-tiny/ledom.json`` carries it as machine-readable metadata)."""

NORMALIZE: Normalize = "mean"


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


def candidate_sets(solutions: list[str], k: int, seed: int) -> list[list[tuple[str, str]]]:
    """Per problem: ``[("gold", solution), (kind, corrupted solution), ...]`` (up to ``k`` distinct variants)."""
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


def chance_correct(candidate_answers: list[list[str | None]], gold: list[str]) -> float:
    """Expected number of problems a uniformly random pick gets right: the sum over problems of the share of
    candidates whose final answer is the gold one (the gold solution, and variants that kept its answer)."""
    return sum(sum(a == g for a in answers) / len(answers) for answers, g in zip(candidate_answers, gold, strict=True))


def _argmax(values: list[float]) -> int:
    """Index of the largest value (ties: the first)."""
    return max(range(len(values)), key=lambda j: (values[j], -j))


@dataclass
class _Problem:
    question: str
    gold: str
    kinds: list[str]
    answers: list[str | None]
    scores: list[Any]


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()  # before the imports: torch and transformers take a good part of it
    from ledom_reason.answers import extract_answer
    from ledom_reason.cli import CLIError
    from ledom_reason.eval.datasets import load_dataset
    from ledom_reason.reward import reverse_reward, validate_reward_args
    from ledom_reason.scorers.local import ReverseScorer

    fwd = args.forward_model
    if fwd is None and args.model == "ledom-tiny":
        fwd = "ledom-tiny-forward"  # its bundled twin
    lam = args.lam if args.lam is not None else (DEFAULT_LAM if fwd else 1.0)
    validate_reward_args(lam, NORMALIZE)
    if lam < 1 and not fwd:
        raise CLIError(f"--lam {lam} < 1 needs --forward-model")
    problems = load_dataset("gsm8k", "test", data_dir=args.data_dir or DEMO_DATA_DIR, limit=args.problems)
    solutions = []
    for p in problems:
        if not p.solution:
            raise CLIError(f"{p.id}: no worked solution to corrupt")
        solutions.append(p.solution)
    cand_sets = candidate_sets(solutions, args.variants, args.seed)

    t_load = time.perf_counter()
    scorer = ReverseScorer.from_pretrained(args.model, device=args.device, forward_model=fwd)
    t_score = time.perf_counter()
    scores = scorer.score([(p.question, text) for p, cands in zip(problems, cand_sets, strict=True)
                           for _, text in cands])
    t_done = time.perf_counter()

    rows, k = [], 0
    for p, cands in zip(problems, cand_sets, strict=True):
        n = len(cands)
        rows.append(_Problem(p.question, p.answer, [kind for kind, _ in cands],
                             [extract_answer(text) for _, text in cands], scores[k : k + n]))
        k += n

    methods = {f"reward λ={lam:g}": lam, "reverse only": 1.0, **({"forward only": 0.0} if fwd else {})}
    main_method = f"reward λ={lam:g}"
    wins = dict.fromkeys(methods, 0)
    for i, r in enumerate(rows):
        picks = {m: _argmax([reverse_reward(s, x, NORMALIZE) for s in r.scores]) for m, x in methods.items()}
        for m, j in picks.items():
            wins[m] += r.answers[j] == r.gold
        best = picks[main_method]
        print(f"\n[{i + 1}] " + textwrap.shorten(r.question, 100))
        head = f"    {'candidate':<18} {'answer':>8} {'rev/token':>10}"
        print(head + (f" {'fwd/token':>10} {'reward':>8}" if fwd else ""))
        for j, (kind, ans, sc) in enumerate(zip(r.kinds, r.answers, r.scores, strict=True)):
            line = f"    {kind:<18} {ans!s:>8} {sc.reverse_mean:>10.3f}"
            if fwd:
                line += f" {sc.forward_mean:>10.3f} {reverse_reward(sc, lam, NORMALIZE):>8.3f}"
            print(line + ("  <- chosen" if j == best else ""))
        ok = r.answers[best] == r.gold
        others = ", ".join(f"{m}: {r.answers[j]}" for m, j in picks.items() if m != main_method)
        print(f"    chosen answer {r.answers[best]} | gold {r.gold} | {'correct' if ok else 'wrong'}  ({others})")

    n = len(rows)
    chance = chance_correct([r.answers for r in rows], [r.gold for r in rows])
    print(f"\nright answer picked (of {n} problems, {1 + args.variants} candidates each): "
          + ", ".join(f"{m}: {w}" for m, w in wins.items()))
    print(f"chance level: a random pick would get {chance:.1f} of the {n} right on average (per problem, the "
          "share of its candidates whose final answer is the gold one: the gold solution and any corrupted "
          "variant that kept the right answer).")
    if fwd:
        print(f"reward = (1-λ)·fwd/token + λ·rev/token; λ={lam:g}"
              + (" is ledom-tiny's validated setting (see the model card)." if lam == DEFAULT_LAM else "."))
    print(f"({t_done - started:.1f} s: {t_load - started:.1f} s importing torch/transformers, "
          f"{t_score - t_load:.1f} s loading the models, {t_done - t_score:.1f} s scoring {len(scores)} pairs "
          f"on {args.device})")
    return 0
