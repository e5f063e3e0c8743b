"""The server benchmark scripts run end to end (short settings) and report what they claim."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_server_gpu_benchmark_tiny_runs_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    p = run("server_gpu.py", "--tiny", "--out", str(out), timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    row = json.loads(out.read_text())
    assert row["device"] == "cpu" and row["lost_requests"] == 0 and row["question_token_mismatches"] == 0
    assert row["server_pairs_per_s"] > 0 and row["in_process_pairs_per_s"] > 0
    assert row["max_abs_diff_nats"] < 1e-3
    assert "| tiny" in p.stdout and "overhead" in p.stdout


@pytest.mark.slow
def test_server_load_benchmark_short(tmp_path):
    p = run("server_load.py", "--duration", "3", "--clients", "8", "--pool", "32", "--out-dir", str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "server_load.json").read_text())
    assert res["requests_ok"] > 0 and res["lost_or_duplicated"] == 0 and res["server_5xx"] == 0
    assert (tmp_path / "server_load.md").read_text().startswith("# Server load test")


@pytest.mark.slow
def test_server_faults_benchmark_short(tmp_path):
    p = run("server_faults.py", "--workers", "4", "--kill-at", "1.5", "--after", "1", "--duration", "4",
            "--pool", "16", "--out-dir", str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "server_faults.json").read_text())
    assert res["restart"]["failed"] == 0 and res["restart"]["requests_spanning_outage"] > 0
    assert res["failover"]["failed"] == 0 and res["failover"]["served_by_b_after_kill"] > 0
