"""``ledom-reason eval``: Best-of-N accuracy from a candidates file, or verifier discrimination."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ledom_reason.cli._common import add_scorer_args, build_scorer, located_score_fn, read_rows

DEFAULT_AGGS = "reward,majority,weighted,random,forward"
DEFAULT_LAMS = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"


def _floats(s: str) -> tuple[float, ...]:
    return tuple(float(x) for x in s.split(",") if x.strip())


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x.strip())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="Best-of-N accuracy of a candidates file (table + plots), or verifier discrimination",
        description="With --candidates: score every (question, candidate) once, then report accuracy ± 95%% CI "
        "per aggregator, pass@N, accuracy vs N and vs λ (per_problem.jsonl, summary.md/json, PNG plots in --out). "
        "With --discrimination: top-1 accuracy and pairwise AUC of the scorer on gold-vs-corrupted sets.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--candidates", help="candidates JSONL: {id?, question, candidates: [...], gold?, greedy?}")
    src.add_argument("--discrimination", help="discrimination JSONL from `ledom-reason make-discrimination`")
    p.add_argument("--dataset", choices=["gsm8k", "math500", "amc23"], help="look up gold answers by question")
    p.add_argument("--split", default="test")
    p.add_argument("--data-dir", default=None, help="data folder (default: the repository's data/, or $LEDOM_DATA_DIR)")
    p.add_argument("--aggregators", default=DEFAULT_AGGS,
                   help="comma list of reward,majority,weighted,random,forward")
    p.add_argument("--n", default="1,2,4,8,16", help="candidate counts for accuracy vs N (comma list)")
    p.add_argument("--seeds", type=int, default=5, help="subsamples averaged per N")
    p.add_argument("--lams", default=None,
                   help=f"λ values for the λ sweep (default: {DEFAULT_LAMS} with --forward-model/--url, else 1)")
    p.add_argument("--lam", type=float, default=1.0, help="λ of the main table (reward, weighted)")
    p.add_argument("--normalize", default="sum", help="sum or mean (discrimination: comma list)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of `weighted`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=16, help="problems per scorer call")
    p.add_argument("--out", required=True, help="output folder (rerun with the same folder to resume)")
    add_scorer_args(p)
    p.set_defaults(func=run)


def _where_of(path: str, rows: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], str]:
    """``(question, candidate) -> "<file>:<line>: candidates[k]"`` (the first occurrence), for error messages."""
    out: dict[tuple[str, str], str] = {}
    for where, row in rows:
        for k, c in enumerate(row.get("candidates") or []):
            if isinstance(c, str):
                out.setdefault((row.get("question"), c), f"{where}: candidates[{k}]")  # type: ignore[arg-type]
    return out


def _print(s: str) -> None:
    sys.stdout.write(s)
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from ledom_reason.cli import CLIError

    has_fwd = bool(args.forward_model or args.url)
    lams = _floats(args.lams) if args.lams else (_floats(DEFAULT_LAMS) if has_fwd else (1.0,))
    if args.model and not args.forward_model and any(x < 1 for x in lams):
        raise CLIError("--lams below 1 need --forward-model")
    if args.discrimination:
        return _run_discrimination(args, lams)
    from ledom_reason.eval.candidates import read_candidates
    from ledom_reason.eval.runner import EvalConfig, run_eval, summary_markdown

    aggs = tuple(a.strip() for a in args.aggregators.split(",") if a.strip())
    if args.model and not args.forward_model and ("forward" in aggs or args.lam < 1):
        if "forward" in aggs and args.aggregators == DEFAULT_AGGS:
            aggs = tuple(a for a in aggs if a != "forward")  # default list: drop what cannot run
            print("note: no --forward-model: skipping the `forward` aggregator", file=sys.stderr)
        else:
            raise CLIError("the `forward` aggregator and --lam < 1 need --forward-model")
    cfg = EvalConfig(aggregators=aggs, lam=args.lam, normalize=args.normalize, temperature=args.temperature,
                     ns=_ints(args.n), seeds=args.seeds, lams=lams, seed=args.seed, chunk=args.chunk)
    gold = None
    if args.dataset:
        from ledom_reason.eval.datasets import load_dataset

        gold = {p.question.strip(): p.answer for p in load_dataset(args.dataset, args.split, data_dir=args.data_dir)}
    rows = read_candidates(args.candidates, gold_by_question=gold)
    scorer = build_scorer(args) if cfg.needs_scores else None
    title = f"{args.dataset or Path(args.candidates).stem}: {len(rows)} problems"
    score_fn = located_score_fn(_where_of(args.candidates, read_rows(args.candidates)))
    summary = run_eval(rows, scorer, cfg, args.out, score_fn=score_fn, title=title)
    _print(summary_markdown(summary))
    _print(f"\nwrote {args.out}/per_problem.jsonl, summary.md, summary.json, plots\n")
    return 0


def _run_discrimination(args: argparse.Namespace, lams: tuple[float, ...]) -> int:
    from ledom_reason.eval.discrimination import discrimination_markdown, evaluate_discrimination
    from ledom_reason.eval.score_cache import ScoreCache
    from ledom_reason.io import atomic_open

    located = read_rows(args.discrimination, required=("question", "candidates", "labels"))
    rows = [r for _, r in located]
    norms = tuple(x.strip() for x in args.normalize.split(",") if x.strip())
    out = Path(args.out)
    cache = ScoreCache(out / "scores.jsonl")
    pairs = [(r["question"], c) for r in rows for c in r["candidates"]]
    missing = cache.missing(pairs)
    if missing:
        cache.ensure(build_scorer(args), pairs, located_score_fn(_where_of(args.discrimination, located)))
    scores = [[cache.get(r["question"], c) for c in r["candidates"]] for r in rows]
    res = evaluate_discrimination(rows, scores, lams=lams, normalizes=norms, seed=args.seed)
    with atomic_open(out / "discrimination.json") as f:
        json.dump(res, f, indent=2)
    md = discrimination_markdown(res)
    with atomic_open(out / "discrimination.md") as f:
        f.write(md)
    _print(md)
    return 0
