"""Build `ledom-tiny` (reverse model + forward twin) and regenerate every replication figure.

Everything runs through the project's own commands (`ledom-reason train …`, `generate`, `eval`,
`make-discrimination`), so this file is also the exact recipe of the bundled default model.

    python benchmarks/replicate.py all   --scale gpu   --work runs/replicate      # on one GPU: a few minutes
    python benchmarks/replicate.py all   --scale smoke --work /tmp/rep            # CPU pipeline check, ~minutes
    python benchmarks/replicate.py report --work runs/replicate                  # tables + plots from cached scores

Stages: data → tokenizer → pretrain (reverse, forward) → finetune (reverse, forward) → generate
(forward twin samples N candidates per GSM8K test problem, plus a held-out synthetic test set) →
score (discrimination set and Best-of-N, every λ/normalisation from one scoring pass) → report.
Training uses GSM8K *train* + synthetic problems + Shakespeare only; GSM8K *test* is evaluation only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _commands import run_module

from ledom_reason.paths import data_dir

ROOT = Path(__file__).resolve().parents[1]
SCALES = {
    # steps and sizes; the model shape itself lives in recipes/ledom-tiny/*.yaml
    "gpu": dict(synth=50_000, synth_test=500, vocab=4096, pt_steps=1000, ft_steps=400, n=16,
                gen_limit=500, gen_batch=2048, max_new=200, disc_limit=0, extra=["--compile=false"]),
    "smoke": dict(synth=2_000, synth_test=20, vocab=512, pt_steps=20, ft_steps=10, n=4,
                  gen_limit=8, gen_batch=32, max_new=48, disc_limit=16,
                  extra=["--hidden_size=64", "--num_layers=2", "--num_heads=2", "--num_kv_heads=1",
                         "--intermediate_size=128", "--micro_batch_size=8", "--block_size=128",
                         "--max_position_embeddings=512", "--save_every=0"]),
}
LAMS = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"


def stage_data(w: Path, s: dict, log: Path) -> None:
    run_module(["ledom_reason.training.synthetic_math", "--n", str(s["synth"]), "--seed", "0", "--out", str(w / "data/synth_train.jsonl")], log)
    # held-out synthetic test set (other seed), laid out like GSM8K so `--dataset gsm8k --data-dir` reads it
    run_module(["ledom_reason.training.synthetic_math", "--n", str(s["synth_test"]), "--seed", "12345", "--out", str(w / "synthtest/gsm8k/test.jsonl")], log)


def stage_train(w: Path, s: dict, log: Path) -> None:
    d = data_dir()
    inputs = [str(d / "corpus/tinyshakespeare.txt"), f"{d / 'gsm8k/train.jsonl'}:3", str(w / "data/synth_train.jsonl")]
    pairs = [str(d / "gsm8k/train.jsonl"), str(w / "data/synth_train.jsonl")]
    # --overwrite: rerunning the stage rebuilds its models (a training command refuses a used out_dir otherwise)
    run_module(["ledom_reason", "train", "tokenizer", "--inputs", *inputs, "--vocab_size", str(s["vocab"]), "--out_dir", str(w / "tokenizer"), "--overwrite"], log)
    for direction, name in (("reverse", "ledom-tiny"), ("forward", "ledom-tiny-forward")):
        run_module(["ledom_reason", "train", "pretrain", "--config", "recipes/ledom-tiny/pretrain.yaml", "--inputs", *inputs,
            "--tokenizer", str(w / "tokenizer"), "--direction", direction, "--max_steps", str(s["pt_steps"]),
            "--out_dir", str(w / f"pt-{direction}"), "--overwrite", *s["extra"]], log)
        run_module(["ledom_reason", "train", "finetune", "--config", "recipes/ledom-tiny/finetune.yaml", "--inputs", *pairs,
            "--model", str(w / f"pt-{direction}"), "--direction", direction, "--max_steps", str(s["ft_steps"]),
            "--out_dir", str(w / name), "--overwrite", *[x for x in s["extra"] if x.startswith(("--micro", "--save", "--compile"))]], log)


def stage_generate(w: Path, s: dict, log: Path) -> None:
    common = ["--model", str(w / "ledom-tiny-forward"), "--prompt", "{question}", "--n", str(s["n"]),
              "--temperature", "0.7", "--max-new-tokens", str(s["max_new"]), "--batch-size", str(s["gen_batch"]),
              "--greedy", "--no-chat-template", "--seed", "0"]
    lim = ["--limit", str(s["gen_limit"])] if s["gen_limit"] else []
    run_module(["ledom_reason", "generate", "--dataset", "gsm8k", "--split", "test", *lim, *common, "--out", str(w / "cands_gsm8k.jsonl")], log)
    run_module(["ledom_reason", "generate", "--dataset", "gsm8k", "--split", "test", "--data-dir", str(w / "synthtest"),
        *common, "--out", str(w / "cands_synth.jsonl")], log)


def stage_score(w: Path, s: dict, log: Path) -> None:
    lim = ["--limit", str(s["disc_limit"])] if s["disc_limit"] else []
    models = ["--model", str(w / "ledom-tiny"), "--forward-model", str(w / "ledom-tiny-forward"), "--dtype", "float32"]
    run_module(["ledom_reason", "make-discrimination", "--dataset", "gsm8k", "--split", "test", "--k", "4", "--seed", "0", *lim,
        "--out", str(w / "disc_gsm8k.jsonl")], log)
    run_module(["ledom_reason", "eval", "--discrimination", str(w / "disc_gsm8k.jsonl"), *models, "--lams", LAMS,
        "--normalize", "sum,mean", "--out", str(w / "res_disc")], log)
    ns = ",".join(str(n) for n in (1, 2, 4, 8, 16) if n <= s["n"])
    for name, extra in (("gsm8k", ["--dataset", "gsm8k"]), ("synth", ["--dataset", "gsm8k", "--data-dir", str(w / "synthtest")])):
        for norm in ("sum", "mean"):
            if norm == "mean":  # reuse the score cache of the "sum" run: scoring is the expensive part
                dst = w / f"res_bon_{name}_mean"
                dst.mkdir(exist_ok=True)
                if (w / f"res_bon_{name}_sum/scores.jsonl").exists():
                    shutil.copy(w / f"res_bon_{name}_sum/scores.jsonl", dst / "scores.jsonl")
            run_module(["ledom_reason", "eval", "--candidates", str(w / f"cands_{name}.jsonl"), *extra, *models,
                "--aggregators", "reward,majority,weighted,random,forward", "--n", ns, "--seeds", "20",
                "--lams", LAMS, "--normalize", norm, "--out", str(w / f"res_bon_{name}_{norm}")], log)


def stage_report(w: Path, s: dict, log: Path) -> None:
    out = ROOT / "benchmarks/results/replication"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/replication_report.py"), "--work", str(w), "--out", str(out)],
                       cwd=ROOT, check=False)
    if r.returncode != 0:
        sys.exit("report failed")
    meta = {"scale": s, "work": str(w), "date": time.strftime("%Y-%m-%d"), "python": sys.version.split()[0]}
    try:
        import torch
        import transformers

        meta.update(torch=torch.__version__, transformers=transformers.__version__,
                    device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
    except ImportError:
        pass
    (out / "report_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"report written to {out}")


STAGES = {"data": stage_data, "train": stage_train, "generate": stage_generate, "score": stage_score, "report": stage_report}


def main() -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("stage", choices=[*STAGES, "all"])
    p.add_argument("--scale", choices=list(SCALES), default="gpu")
    p.add_argument("--work", default="runs/replicate", help="working folder (models, candidates, scores)")
    a = p.parse_args()
    w = Path(a.work).resolve()
    w.mkdir(parents=True, exist_ok=True)
    log = w / "replicate.log"
    stages = list(STAGES) if a.stage == "all" else [a.stage]
    for st in stages:
        t = time.time()
        print(f"== {st}", flush=True)
        STAGES[st](w, SCALES[a.scale], log)
        print(f"== {st} done in {time.time() - t:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
