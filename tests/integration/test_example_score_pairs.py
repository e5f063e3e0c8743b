from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_score_pairs_example_runs_with_bundled_model():
    out = subprocess.run([sys.executable, str(ROOT / "examples/score_pairs.py")], capture_output=True, text=True,
                         check=True, timeout=120, env={**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}).stdout
    rows = [ln for ln in out.splitlines() if re.match(r"\s*-?\d+\.\d+\s+\(\d+ question tokens\)", ln)]
    assert len(rows) == 2
    rewards = [float(r.split()[0]) for r in rows]
    assert rewards == sorted(rewards, reverse=True)  # printed best first
