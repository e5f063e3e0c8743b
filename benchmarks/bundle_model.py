"""Copy a trained model folder into a small, loadable bundle: bf16 safetensors + tokenizer + config.

    python benchmarks/bundle_model.py SRC DST [--dtype bfloat16]

Drops checkpoints, logs and tokenized data; keeps only what `ReverseScorer.from_pretrained` needs.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    a = p.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dst = Path(a.dst)
    if dst.exists():
        shutil.rmtree(dst)
    model = AutoModelForCausalLM.from_pretrained(a.src, dtype=getattr(torch, a.dtype), local_files_only=True)
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(a.src, local_files_only=True).save_pretrained(dst)
    for f in ("train_config.json", "log.jsonl"):
        if (Path(a.src) / f).exists():
            shutil.copy(Path(a.src) / f, dst / f)
    total = sum(f.stat().st_size for f in dst.iterdir())
    print(f"{dst}: {sum(x.numel() for x in model.parameters()) / 1e6:.2f}M params, {total / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
