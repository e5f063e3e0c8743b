"""Smoke benchmark of the eval pipeline on 50 GSM8K test problems, CPU, no generator needed.

Candidates per problem = the gold solution + k corrupted variants (``make-discrimination``), written as
a candidates file; then ``ledom-reason eval`` (all aggregators, N sweep, λ sweep) runs on it.
Models: ``--model``/``--forward-model`` folders, or (default) tiny RANDOM-weight models built here,
so that accuracies are chance-level and only the timings and files mean something.

    python benchmarks/eval_gsm8k_smoke.py --out /tmp/ledom_eval_smoke
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/ledom_eval_smoke")
    ap.add_argument("--problems", type=int, default=50)
    ap.add_argument("--k", type=int, default=7, help="corrupted variants per problem (N = k + 1)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--forward-model", default=None)
    args = ap.parse_args()

    import torch
    import transformers

    from ledom_reason.cli import main as cli
    from ledom_reason.eval.datasets import load_dataset
    from ledom_reason.eval.discrimination import build_discrimination_set

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rev, fwd = args.model, args.forward_model
    if rev is None:
        from ledom_reason.testing import corpus_texts, make_tiny_model, train_tiny_tokenizer

        tok = train_tiny_tokenizer(corpus_texts(max_chars=100_000), vocab_size=384)
        rev = str(make_tiny_model(out / "tiny_rev", tok, seed=0))
        fwd = str(make_tiny_model(out / "tiny_fwd", tok, seed=1))
    probs = load_dataset("gsm8k", limit=args.problems)
    rows = build_discrimination_set(probs, k=args.k, seed=0)
    cands = out / "cands.jsonl"
    with open(cands, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "question": r["question"], "candidates": r["candidates"],
                                "gold": r["answer"]}) + "\n")
    res_dir = out / "eval"
    argv = ["eval", "--candidates", str(cands), "--dataset", "gsm8k", "--model", rev, "--device", "cpu",
            "--n", "1,2,4,8", "--out", str(res_dir)]
    if fwd:
        argv += ["--forward-model", fwd]
    t0 = time.perf_counter()
    rc = cli(argv)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    rc |= cli(argv)  # everything cached: summary, tables and plots only
    t_cached = time.perf_counter() - t0
    pairs = sum(len(r["candidates"]) for r in rows)
    print(f"\nproblems={len(rows)} candidates/problem={args.k + 1} pairs={pairs}", file=sys.stderr)
    print(f"first run (scoring + summary + plots): {t_first:.1f} s; rerun (cached): {t_cached:.1f} s", file=sys.stderr)
    print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{platform.machine()} {torch.get_num_threads()} threads", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
