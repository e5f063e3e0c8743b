"""``ledom-reason make-discrimination``: gold GSM8K solutions vs. seeded corrupted variants."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-discrimination", help="build a verifier-discrimination set (gold vs corrupted solutions)",
        description="Rows: {id, question, answer, candidates, labels, kinds}; gold position shuffled. "
        "Judge a scorer on it with `ledom-reason eval --discrimination FILE`.")
    p.add_argument("--dataset", default="gsm8k", choices=["gsm8k"], help="needs worked solutions with `####`")
    p.add_argument("--split", default="test", help="test (evaluation sets) or train (calibration sets: `ledom-reason calibrate`)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--k", type=int, default=4, help="corrupted variants per problem")
    p.add_argument("--limit", type=int, default=None, help="first N problems")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output JSONL (written atomically)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from ledom_reason.eval.datasets import load_dataset
    from ledom_reason.eval.discrimination import build_discrimination_set
    from ledom_reason.io import write_jsonl_atomic

    problems = load_dataset(args.dataset, args.split, data_dir=args.data_dir, limit=args.limit)
    rows = build_discrimination_set(problems, k=args.k, seed=args.seed)
    write_jsonl_atomic(args.out, rows)
    kinds = Counter(k for r in rows for k in r["kinds"] if k != "gold")
    print(f"wrote {len(rows)} problems to {args.out}; variants: "
          + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())), file=sys.stderr)
    return 0
