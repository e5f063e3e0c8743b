"""``ledom-reason score`` (pairs → scores) and ``ledom-reason rerank`` (question + candidates → ranking)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ledom_reason.cli._common import (
    add_reward_args,
    add_scorer_args,
    build_scorer,
    pair_errors_at,
    read_rows,
    score_with_progress,
)
from ledom_reason.reward import Normalize


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score (question, candidate) pairs from a JSONL file",
                       description="Input rows: {question, candidate, ...}; extra fields are passed through.")
    p.add_argument("--input", required=True, help="JSONL (with --ray: or .parquet) with `question` and `candidate`")
    p.add_argument("--output", help="output JSONL (default: stdout; with --ray: required, .parquet allowed); atomic")
    add_scorer_args(p)
    add_reward_args(p)
    ray = p.add_argument_group("offline batch scoring with Ray Data (extra `ray`)")
    ray.add_argument("--ray", action="store_true",
                     help="score with Ray Data scorer actors; resumable (rerun the same command after a kill)")
    ray.add_argument("--num-workers", type=int, default=2, help="scorer actors (one model each)")
    ray.add_argument("--gpus-per-worker", type=float, default=0.0)
    ray.add_argument("--cpus-per-worker", type=float, default=1.0)
    ray.add_argument("--ray-address", default=None, help="a running Ray cluster (default: start a local one)")
    ray.add_argument("--shard-rows", type=int, default=1024, help="rows per resumable shard")
    ray.add_argument("--ray-batch-size", type=int, default=64, help="rows per scorer call")
    p.set_defaults(func=run_score)

    r = sub.add_parser("rerank", help="rank candidates per question from a JSONL file",
                       description="Input rows: {question, candidates: [...], ...}; output rows keep the other "
                       "fields and add `ranking` (every candidate, best first: index, text, answer, scores, reward, "
                       "rank) and `best` (index, text, answer, reward of ranking[0]).")
    r.add_argument("--input", required=True, help="JSONL with `question` and `candidates` (list of str)")
    r.add_argument("--output", help="output JSONL (default: stdout); written atomically")
    add_scorer_args(r)
    add_reward_args(r)
    r.set_defaults(func=run_rerank)


def _score_fields(s: Any, lam: float, normalize: Normalize) -> dict[str, Any]:
    from ledom_reason.offline import scored_row

    return scored_row({}, s, lam, normalize)


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
    if args.lam < 1 and not (args.forward_model or args.url or args.vllm_forward_url):
        raise CLIError(f"--lam {args.lam} < 1 needs --forward-model (with --vllm-url: --vllm-forward-url)")


def run_ray(args: argparse.Namespace) -> int:
    from ledom_reason.cli import CLIError
    from ledom_reason.cli._common import scorer_factory
    from ledom_reason.offline import OfflineConfig, score_file

    if not args.output:
        raise CLIError("--ray needs --output FILE (.jsonl or .parquet)")
    if args.gpus_per_worker and not args.device:
        args.device = "cuda"
    cfg = OfflineConfig(num_workers=args.num_workers, gpus_per_worker=args.gpus_per_worker,
                        cpus_per_worker=args.cpus_per_worker, batch_size=args.ray_batch_size,
                        shard_rows=args.shard_rows, lam=args.lam, normalize=args.normalize,
                        ray_address=args.ray_address)
    res = score_file(args.input, args.output, scorer_factory(args), cfg)
    print(f"ledom-reason score --ray: {res.rows} rows → {res.output} ({res.rows_scored} scored now, "
          f"{res.shards_skipped}/{res.shards} shards done by an earlier run)", file=sys.stderr)
    return 0


def _score(args: argparse.Namespace, pairs: list[tuple[str, str]], wheres: list[str], desc: str) -> list[Any]:
    """Validate, build the scorer, score; any bad pair is reported at its input line."""
    from ledom_reason.types import normalize_pairs

    with pair_errors_at(wheres):
        pairs = normalize_pairs(pairs)
    scorer = build_scorer(args)
    with pair_errors_at(wheres):
        return score_with_progress(scorer, pairs, desc)


def run_score(args: argparse.Namespace) -> int:
    _check_reward_args(args)
    if args.ray:
        return run_ray(args)
    located = read_rows(args.input, required=("question", "candidate"))
    rows = [r for _, r in located]
    scores = _score(args, [(r["question"], r["candidate"]) for r in rows], [w for w, _ in located], "scoring")
    _emit([{**row, **_score_fields(s, args.lam, args.normalize)} for row, s in zip(rows, scores, strict=True)],
          args.output)
    return 0


def run_rerank(args: argparse.Namespace) -> int:
    from ledom_reason.answers import extract_answer
    from ledom_reason.cli import CLIError

    _check_reward_args(args)
    located = read_rows(args.input, required=("question", "candidates"))
    pairs: list[tuple[str, str]] = []
    wheres: list[str] = []
    for where, row in located:
        cands = row["candidates"]
        if not isinstance(cands, list) or not cands:
            raise CLIError(f"{where}: `candidates` must be a non-empty list")
        pairs += [(row["question"], c) for c in cands]
        wheres += [f"{where}: candidates[{k}]" for k in range(len(cands))]
    scores = _score(args, pairs, wheres, "reranking")
    out, k = [], 0
    for _, row in located:
        ranking = []
        for i, c in enumerate(row["candidates"]):
            ranking.append({"index": i, "text": c, "answer": extract_answer(c),
                            **_score_fields(scores[k], args.lam, args.normalize)})
            k += 1
        ranking.sort(key=lambda d: (-d["reward"], d["index"]))  # ties: earlier candidate wins
        for rank, d in enumerate(ranking):
            d["rank"] = rank
        best = {key: ranking[0][key] for key in ("index", "text", "answer", "reward", "p_correct") if key in ranking[0]}
        out.append({**{k2: v for k2, v in row.items() if k2 != "candidates"}, "best": best, "ranking": ranking})
    _emit(out, args.output)
    return 0
