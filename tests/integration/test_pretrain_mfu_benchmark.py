"""benchmarks/pretrain_mfu.py runs end to end in its CPU smoke mode and reports consistent figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "pretrain_mfu.py"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=240, cwd=ROOT)


def test_tiny_mode_reports_consistent_rows(tmp_path):
    out = tmp_path / "mfu.json"
    p = run("--tiny", "--gemm-peak", "--steps", "2", "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert [(r["loss"], r["doc_mask"]) for r in rows] == [("full", False), ("chunked", False), ("chunked", True)]
    gemm = doc["args"]["gemm_flops"]
    assert gemm > 0
    for r in rows:
        assert "error" not in r
        # tokens/s and step time describe the same timing; the GEMM share follows from the FLOP count
        assert r["tokens_per_s"] == pytest.approx(r["batch"] * r["seq_len"] / (r["step_ms"] / 1000), rel=0.02)
        assert r["gemm_frac"] == pytest.approx(r["flops_per_token"] * r["tokens_per_s"] / gemm, rel=1e-3, abs=1e-4)
        assert r["mfu"] is None  # no spec peak on CPU unless --peak-flops is given
        assert 4 < r["final_loss"] < 8  # random tokens over a 512 vocabulary: about ln(512) = 6.2
    assert "| tiny |" in p.stdout and "of measured GEMM" in p.stdout
    assert doc["env"]["torch"] and doc["env"]["date"]


@pytest.mark.slow
def test_tiny_mode_compiled_steps_match_eager(tmp_path):
    """The regional ``torch.compile`` path of the GPU benchmark builds and trains on CPU (inductor) and
    follows the same loss trajectory as eager mode (same seed, same data)."""
    out = tmp_path / "mfu.json"
    p = run("--tiny", "--compile", "both", "--steps", "2", "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    eager = [r for r in rows if not r["compile"]]
    compiled = [r for r in rows if r["compile"]]
    assert len(eager) == len(compiled) == 3 and not any("error" in r for r in rows)
    for e, c in zip(eager, compiled, strict=True):
        assert (e["loss"], e["doc_mask"]) == (c["loss"], c["doc_mask"])
        assert c["final_loss"] == pytest.approx(e["final_loss"], abs=2e-3)


@pytest.mark.parametrize(("args", "message"), [
    (["--tiny", "--only", "999M"], "unknown model"),
    pytest.param([], "no CUDA device", marks=pytest.mark.skipif(_has_cuda(), reason="would run the GPU benchmark")),
    (["--tiny", "--batch", "0"], "--batch must be >= 1"),
])
def test_bad_arguments_fail_with_a_message(args, message):
    p = run(*args)
    assert p.returncode == 2
    assert message in p.stderr
