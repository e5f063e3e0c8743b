"""2-process ``torchrun`` smoke runs on CPU (gloo), DDP and FSDP2: they complete and save a loadable model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ledom_reason.paths import data_dir


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "port"), [("ddp", 29517), ("fsdp", 29519)])
def test_torchrun_two_processes(tmp_path, tiny_tokenizer, mode, port):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(port), "-m", "ledom_reason.training.pretrain",
           f"--inputs={data_dir() / 'corpus' / 'tinyshakespeare.txt'}", f"--tokenizer={tmp_path / 'tok'}",
           f"--out_dir={tmp_path / 'run'}", "--hidden_size=64", "--num_layers=2", "--block_size=64",
           "--micro_batch_size=4", "--grad_accum=2", "--max_steps=6", "--save_every=3", "--log_every=1",
           "--max_docs_per_input=300", "--device=cpu", f"--distributed={mode}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # only rank 0 logs
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000003"
    assert {p.name for p in ckpt.iterdir()} >= {"state.pt", "rng_rank0.pt", "rng_rank1.pt"}

    from ledom_reason import ReverseScorer

    scorer = ReverseScorer.from_pretrained(tmp_path / "run", device="cpu")
    assert scorer.score([("Who is there?", "Nay, answer me.")])[0].question_tokens > 0
