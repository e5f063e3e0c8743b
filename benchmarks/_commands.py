"""Run a step of a benchmark as a subprocess, logged: shared by the benchmark scripts (import as ``_commands``;
scripts run as ``python benchmarks/x.py`` have this folder on ``sys.path``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_module(args: list[str], log: Path) -> None:
    """``python -m *args`` from the repository root: echo it, append its output to ``log``, exit on failure
    (with the log's last 30 lines)."""
    print("$ " + " ".join(args), flush=True)
    t = time.time()
    with open(log, "a", encoding="utf-8") as f:
        f.write("$ " + " ".join(args) + "\n")
        f.flush()
        r = subprocess.run([sys.executable, "-m", *args], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    print(f"  ({time.time() - t:.1f} s, exit {r.returncode})", flush=True)
    if r.returncode != 0:
        sys.exit(f"command failed, see {log}:\n" + "\n".join(log.read_text().splitlines()[-30:]))


def run_cli(args: list[str], log: Path) -> None:
    """``ledom-reason *args`` (as ``python -m ledom_reason``), logged like :func:`run_module`."""
    run_module(["ledom_reason", *args], log)
