"""How long `ledom-reason demo` takes, end to end, as a user runs it (a fresh process each time).

    python benchmarks/demo_timing.py --runs 3            # writes benchmarks/results/demo_timing.{json,md}

Records the wall time of each whole command (interpreter start included) and the demo's own breakdown
(imports, model loading, scoring), with the machine's load average next to it: on a shared box the load
says how much of the time is waiting for a core.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks/results"
BREAKDOWN = re.compile(r"\((\d+\.\d) s: (\d+\.\d) s importing torch/transformers, (\d+\.\d) s loading the models, "
                       r"(\d+\.\d) s scoring (\d+) pairs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = []
    for _ in range(args.runs):
        load = os.getloadavg()[0]
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "ledom_reason", "demo"], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}, check=True)
        wall = time.perf_counter() - t
        m = BREAKDOWN.search(r.stdout)
        assert m is not None, r.stdout[-500:]
        runs.append({"wall_s": round(wall, 2), "in_command_s": float(m.group(1)), "imports_s": float(m.group(2)),
                     "load_s": float(m.group(3)), "score_s": float(m.group(4)), "pairs": int(m.group(5)),
                     "load_avg_1min_before": round(load, 2), "stderr_bytes": len(r.stderr)})
        print(runs[-1], flush=True)
    import torch
    import transformers

    info = {"date": datetime.date.today().isoformat(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "command": "ledom-reason demo", "runs": runs,
            "median_wall_s": statistics.median(r["wall_s"] for r in runs)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "demo_timing.json").write_text(json.dumps(info, indent=2) + "\n")
    lines = [f"`ledom-reason demo` (5 GSM8K problems × 4 candidates, ledom-tiny pair, fp32 CPU), {info['date']}, "
             f"{info['cpus']} CPU cores, Python {info['python']}, torch {info['torch']}, transformers "
             f"{info['transformers']}: `python benchmarks/demo_timing.py --runs {args.runs}`", "",
             "| run | wall (whole command) | imports | model load | scoring | 1-min load avg before | stderr |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for i, r in enumerate(runs, 1):
        lines.append(f"| {i} | {r['wall_s']:.1f} s | {r['imports_s']:.1f} s | {r['load_s']:.1f} s | {r['score_s']:.1f} s "
                     f"| {r['load_avg_1min_before']:.1f} | {r['stderr_bytes']} B |")
    lines += ["", f"Median wall time: {info['median_wall_s']:.1f} s."]
    (OUT / "demo_timing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
