"""`kill -9` a real `ledom-reason train pretrain` process, `--resume` it: the same run as never interrupted.

Two processes start together from the same command (tiny model, CPU, dropout on so that the RNG
state matters): one runs to the end, the other is killed with SIGKILL after it has saved a
checkpoint and logged a few steps past it. The killed run is then resumed with the same command
plus ``--resume``. Its log must hold every step exactly once with the uninterrupted run's losses, and
its final weights must equal the uninterrupted run's. Both use one thread (``OMP_NUM_THREADS=1``),
so the same kernels add the same numbers in the same order: the expected difference is exactly 0,
and the tolerance below (1e-6) only allows for last-bit float noise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledom_reason.paths import data_dir

MAX_STEPS, SAVE_EVERY = 40, 10


def _cli() -> list[str]:
    exe = shutil.which("ledom-reason") or str(Path(sys.executable).parent / "ledom-reason")
    return [exe] if Path(exe).exists() else [sys.executable, "-m", "ledom_reason.cli"]


def _steps(log: Path) -> list[dict]:
    rows = []
    for line in log.read_text().splitlines() if log.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the line being written right now
            pass
    return rows


def test_kill_9_then_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_tokenizer):
    from safetensors.torch import load_file

    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}

    def cmd(out: Path, *extra: str) -> list[str]:
        return [*_cli(), "train", "pretrain", "--inputs", str(data_dir() / "corpus" / "tinyshakespeare.txt"),
                "--tokenizer", str(tmp_path / "tok"), "--out_dir", str(out), "--hidden_size", "64",
                "--num_layers", "2", "--num_heads", "2", "--num_kv_heads", "1", "--block_size", "64",
                "--micro_batch_size", "4", "--max_steps", str(MAX_STEPS), "--warmup_steps", "5", "--lr", "3e-3",
                "--dropout", "0.1", "--log_every", "1", "--save_every", str(SAVE_EVERY), "--max_docs_per_input",
                "300", "--device", "cpu", *extra]

    full_out, run_out = tmp_path / "full", tmp_path / "killed"
    full = subprocess.Popen(cmd(full_out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(cmd(run_out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        # kill after the first checkpoint and a few logged steps past it, so that the resumed run must
        # both restore the checkpoint and drop the log rows written after it
        while not [r for r in _steps(run_out / "log.jsonl") if r["step"] >= SAVE_EVERY + 3]:
            assert victim.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
    killed_at = max(r["step"] for r in _steps(run_out / "log.jsonl"))
    assert killed_at < MAX_STEPS and not (run_out / "model.safetensors").exists()  # really interrupted
    ckpts = sorted(p.name for p in (run_out / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert ckpts and not any(p.endswith(".tmp") for p in ckpts)

    assert full.wait(timeout=240) == 0, full.stderr.read()[-2000:] if full.stderr else ""
    resumed = subprocess.run(cmd(run_out, "--resume"), env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from " in resumed.stderr and f"{ckpts[-1]} (step " in resumed.stderr

    want, got = _steps(full_out / "log.jsonl"), _steps(run_out / "log.jsonl")
    assert [r["step"] for r in got] == list(range(1, MAX_STEPS + 1))  # one row per step: none lost, none repeated
    loss_diff = max(abs(a["loss"] - b["loss"]) for a, b in zip(want, got, strict=True))
    w_full, w_run = load_file(full_out / "model.safetensors"), load_file(run_out / "model.safetensors")
    assert w_full.keys() == w_run.keys()
    weight_diff = max(float((w_full[k] - w_run[k]).abs().max()) for k in w_full)
    print(f"killed at step {killed_at}, resumed from {ckpts[-1]}: max |Δloss| = {loss_diff:.3g}, "
          f"max |Δweight| = {weight_diff:.3g}")
    assert loss_diff <= 1e-6 and weight_diff <= 1e-6, (loss_diff, weight_diff)
    assert [r["lr"] for r in got] == pytest.approx([r["lr"] for r in want], rel=1e-12)
