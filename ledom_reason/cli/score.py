"""``ledom-reason score`` (pairs → scores) and ``ledom-reason rerank`` (question + candidates → ranking)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ledom_reason.cli._common import add_reward_args, add_scorer_args, build_scorer, score_with_progress

SCORE_FIELDS = ("reverse_logprob", "question_tokens", "reverse_mean", "forward_logprob",
                "candidate_tokens", "forward_mean", "truncated_tokens")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score (question, candidate) pairs from a JSONL file",
                       description="Input rows: {question, candidate, ...}; extra fields are passed through.")
    p.add_argument("--input", required=True, help="JSONL with `question` and `candidate` fields")
    p.add_argument("--output", help="output JSONL (default: stdout); written atomically")
    add_scorer_args(p)
    add_reward_args(p)
    p.set_defaults(func=run_score)

    r = sub.add_parser("rerank", help="rank candidates per question from a JSONL file",
                       description="Input rows: {question, candidates: [...], ...}; output adds `ranked` and `best`.")
    r.add_argument("--input", required=True, help="JSONL with `question` and `candidates` (list of str)")
    r.add_argument("--output", help="output JSONL (default: stdout); written atomically")
    add_scorer_args(r)
    add_reward_args(r)
    r.set_defaults(func=run_rerank)


def _score_fields(s: Any, lam: float, normalize: str) -> dict[str, Any]:
    from ledom_reason.reward import reverse_reward

    d = {k: getattr(s, k) for k in SCORE_FIELDS if getattr(s, k) is not None}
    d["reward"] = reverse_reward(s, lam=lam, normalize=normalize)
    return d


def _emit(rows: list[dict[str, Any]], output: str | None) -> None:
    from ledom_reason.io import write_jsonl_atomic

    if output:
        write_jsonl_atomic(output, rows)
    else:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


def _check_reward_args(args: argparse.Namespace) -> None:
    from ledom_reason.cli import CLIError
    from ledom_reason.reward import validate_reward_args

    validate_reward_args(args.lam, args.normalize)
    if args.lam < 1 and not args.forward_model and not args.url:
        raise CLIError(f"--lam {args.lam} < 1 needs --forward-model")


def run_score(args: argparse.Namespace) -> int:
    from ledom_reason.io import read_jsonl
    from ledom_reason.types import normalize_pairs

    _check_reward_args(args)
    rows = read_jsonl(args.input, required=("question", "candidate"))
    pairs = normalize_pairs([(r["question"], r["candidate"]) for r in rows])
    scorer = build_scorer(args)
    scores = score_with_progress(scorer, pairs, "scoring")
    _emit([{**row, **_score_fields(s, args.lam, args.normalize)} for row, s in zip(rows, scores, strict=True)],
          args.output)
    return 0


def run_rerank(args: argparse.Namespace) -> int:
    from ledom_reason.io import read_jsonl
    from ledom_reason.types import normalize_pairs

    _check_reward_args(args)
    rows = read_jsonl(args.input, required=("question", "candidates"))
    pairs: list[tuple[str, str]] = []
    for n, row in enumerate(rows, 1):
        cands = row["candidates"]
        if not isinstance(cands, list) or not cands:
            raise ValueError(f"{args.input}: row {n}: `candidates` must be a non-empty list")
        pairs += [(row["question"], c) for c in cands]
    pairs = normalize_pairs(pairs)
    scorer = build_scorer(args)
    scores = score_with_progress(scorer, pairs, "reranking")
    out, k = [], 0
    for row in rows:
        ranked = []
        for i, c in enumerate(row["candidates"]):
            ranked.append({"index": i, "candidate": c, **_score_fields(scores[k], args.lam, args.normalize)})
            k += 1
        ranked.sort(key=lambda d: (-d["reward"], d["index"]))  # ties: earlier candidate wins
        for rank, d in enumerate(ranked):
            d["rank"] = rank
        out.append({**{k2: v for k2, v in row.items() if k2 != "candidates"},
                    "ranked": ranked, "best": ranked[0]["candidate"], "best_index": ranked[0]["index"]})
    _emit(out, args.output)
    return 0
