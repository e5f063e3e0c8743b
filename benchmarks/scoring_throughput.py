"""Scoring throughput: the naive baseline vs the fast path (padded buckets and packed varlen).

Random-weight models of real shapes, random token ids (no tokenizer, no download), seeded pairs with
questions of 40–200 and candidates of 100–900 tokens, reversed as ``[BOS] + candidate + question``
(token ids are random, so the order inside each part does not matter for timing). Measured in one run:

* ``naive``   — right-padded batches in input (random) order, the model's own forward with an
  attention mask (SDPA), full-vocabulary fp32 log-softmax; the largest batch that fits (probed
  on a worst-case batch on GPU; ``--naive-batch`` on CPU).
* ``padded``  — fast path, length-sorted right-padded buckets under ``--budget-tokens``.
* ``packed``  — fast path, packed rows without padding on a varlen kernel (GPU: torch varlen).
* ``packed+compile`` — the same with ``torch.compile`` (``--compile``; time-guarded).

Also a correctness block: fast (padded, packed) vs the unbatched reference in fp32 on a 2-layer
model of the first shape, and per-pair |Δ| of every fast variant vs naive in the run's dtype.

Throughput counts every input token (BOS + candidate + question). MFU = useful FLOPs / time /
peak, with useful FLOPs per pair = 2·N_dec·T + 2·L·d·T² (causal attention, i.e. 2·L·S·d per token
averaged over positions) + 2·V·d·Q (LM head on the Q question rows only); the same count is used
for every variant, so MFU ratios equal throughput ratios. Peak: 989e12 (H100 dense bf16).

GPU (H100):  python benchmarks/scoring_throughput.py --device cuda --models 2b,7b --compile --out-dir OUT
CPU (2 cores): python benchmarks/scoring_throughput.py --device cpu --models 135m --pairs 16 \
    --budget-tokens 8192 --naive-batch 8 --threads 2 --check-pairs 4 --warmup-pairs 2 --gemm-peak \
    --compile --compile-models 135m --out-dir benchmarks/results
``--gemm-peak`` adds "% of measured GEMM peak": useful FLOP/s over the FLOP/s of a 2048³ matmul in the
run's dtype, timed right before and after each variant (the mean of the two), for CPUs with no spec peak
and boxes shared with other jobs (the load average is reported next to it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import inspect
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pretrain_mfu import measure_gemm_flops

from ledom_reason.scorers.engine import ScoringSeq, fast_logprobs, pick_kernel, reference_logprobs

PEAK_FLOPS = 989e12

SHAPES: dict[str, dict[str, Any]] = {
    # 2B-class: hidden 2048, 24 layers (MHA, 16 heads of 128), Qwen2 vocabulary.
    "2b": dict(arch="qwen2", hidden_size=2048, num_hidden_layers=24, num_attention_heads=16,
               num_key_value_heads=16, intermediate_size=5632, vocab_size=152064, tie_word_embeddings=False),
    # Qwen2-7B shape.
    "7b": dict(arch="qwen2", hidden_size=3584, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, intermediate_size=18944, vocab_size=152064, tie_word_embeddings=False),
    # SmolLM2-135M shape (Llama, tied embeddings).
    "135m": dict(arch="llama", hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True),
}


def build_model(shape: dict[str, Any], device: torch.device, dtype: torch.dtype, layers: int | None = None,
                seed: int = 0) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    kw = dict(shape)
    cls = {"qwen2": Qwen2Config, "llama": LlamaConfig}[kw.pop("arch")]
    if layers is not None:
        kw["num_hidden_layers"] = layers
    cfg = cls(**kw, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model.eval()


def make_pairs(n: int, vocab: int, seed: int) -> list[ScoringSeq]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        q, c = rng.randint(40, 200), rng.randint(100, 900)
        ids = [1] + [rng.randrange(3, vocab) for _ in range(c + q)]
        out.append(ScoringSeq(ids, 1 + c))
    return out


def useful_flops(model: torch.nn.Module, seqs: list[ScoringSeq]) -> float:
    cfg = model.config
    d, n_layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    n_dec = sum(p.numel() for n, p in model.model.layers.named_parameters() if p.dim() == 2)
    total = 0.0
    for s in seqs:
        t, q = len(s.input_ids), len(s.input_ids) - s.score_start
        total += 2 * n_dec * t + 2 * n_layers * d * t * t + 2 * vocab * d * q
    return total


@torch.inference_mode()
def naive_logprobs(model: torch.nn.Module, seqs: list[ScoringSeq], batch: int, device: torch.device) -> list[float]:
    """What one writes first: padded batches in input order, full fp32 log-softmax over the vocabulary."""
    out: list[float] = []
    for a in range(0, len(seqs), batch):
        chunk = seqs[a : a + batch]
        w = max(len(s.input_ids) for s in chunk)
        x = torch.zeros(len(chunk), w, dtype=torch.long)
        mask = torch.zeros(len(chunk), w, dtype=torch.long)
        keep = torch.zeros(len(chunk), w - 1, dtype=torch.bool)
        for r, s in enumerate(chunk):
            x[r, : len(s.input_ids)] = torch.tensor(s.input_ids)
            mask[r, : len(s.input_ids)] = 1
            keep[r, s.score_start - 1 : len(s.input_ids) - 1] = True
        x, mask, keep = x.to(device), mask.to(device), keep.to(device)
        logits = model(input_ids=x, attention_mask=mask, use_cache=False).logits  # (B, W, V)
        logp = torch.log_softmax(logits.float(), dim=-1)
        tok = logp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1).double()
        out += (tok * keep).sum(1).tolist()
        del logits, logp, tok
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Any, device: torch.device, repeats: int) -> tuple[list[float], float, float]:
    """Run ``fn`` ``repeats`` times; (last result, median seconds, peak GiB)."""
    times, res = [], None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        res = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return res, statistics.median(times), peak


def probe_naive_batch(model: torch.nn.Module, seqs: list[ScoringSeq], device: torch.device) -> int:
    """Largest batch of worst-case (longest) pairs the naive path survives."""
    longest = max(seqs, key=lambda s: len(s.input_ids))
    for b in (128, 96, 64, 48, 32, 24, 16, 12, 8, 6, 4, 2, 1):
        ok = True
        try:
            naive_logprobs(model, [longest] * b, b, device)
            sync(device)
        except torch.OutOfMemoryError:
            ok = False
        gc.collect()  # outside the except block, so the failed frame's tensors are gone
        torch.cuda.empty_cache()
        if ok:
            return b
    raise RuntimeError("naive path does not fit even one pair")


def delta(a: list[float], b: list[float], seqs: list[ScoringSeq]) -> dict[str, float]:
    d = [abs(x - y) for x, y in zip(a, b, strict=True)]
    per_tok = [x / (len(s.input_ids) - s.score_start) for x, s in zip(d, seqs, strict=True)]
    return {"max_abs_pair": max(d), "mean_abs_pair": statistics.fmean(d), "max_abs_per_token": max(per_tok)}


def check_fp32(shape: dict[str, Any], device: torch.device, n: int, seed: int) -> dict[str, Any]:
    """fp32: fast padded and packed (dense/flex kernels) vs the unbatched reference, 2-layer model."""
    model = build_model(shape, device, torch.float32, layers=2, seed=seed)
    seqs = make_pairs(n, model.config.vocab_size, seed + 1)
    ref = reference_logprobs(model, seqs, device)
    out: dict[str, Any] = {"pairs": n, "layers": 2, "dtype": "float32",
                           "score_spread": statistics.pstdev(ref)}
    for name, kernel in (("padded", None), ("packed_dense", "dense"), ("packed_flex", "flex"),
                         ("packed_segments", "segments")):
        try:
            f = fast_logprobs(model, seqs, device, batch_tokens=8192, head_chunk_bytes=2**28, packed_kernel=kernel)
            out[name] = delta(f, ref, seqs)
        except Exception as e:  # report, keep going: the benchmark must finish
            out[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


_NAIVE_CACHE: dict[str, list[float]] = {}


def noise_check(model: torch.nn.Module, seqs: list[ScoringSeq], device: torch.device, kernel: str | None,
                naive_batch: int, head_bytes: int) -> dict[str, Any]:
    """How far each bf16 path is from the fp32 truth on the same weights, and bf16's own noise floor.

    bf16 paths: naive at its batch, the unbatched bf16 reference (batch 1), fast padded and packed.
    Then the model is upcast to fp32 (exact for bf16 weights): the fp32 reference and the fp32
    fast padded path. Reported: |Δ| of each vs the fp32 reference, and naive-vs-unbatched in bf16.
    """
    kw = {"batch_tokens": 65536, "head_chunk_bytes": head_bytes}
    runs = {"naive_bf16": naive_logprobs(model, seqs, naive_batch, device),
            "reference_bf16": reference_logprobs(model, seqs, device),
            "padded_bf16": fast_logprobs(model, seqs, device, **kw)}
    if kernel is not None:
        runs["packed_bf16"] = fast_logprobs(model, seqs, device, packed_kernel=kernel, **kw)
    model.float()
    ref32 = reference_logprobs(model, seqs, device)
    runs["padded_fp32"] = fast_logprobs(model, seqs, device, **kw)
    out: dict[str, Any] = {"pairs": len(seqs), "vs_fp32_reference": {k: delta(v, ref32, seqs) for k, v in runs.items()},
                           "naive_bf16_vs_reference_bf16": delta(runs["naive_bf16"], runs["reference_bf16"], seqs)}
    return out



def run_shape(name: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype,
              t_start: float, compile_only: bool = False) -> dict[str, Any]:
    """Build one random-weight model and time its variants (``compile_only``: the compile variant)."""
    shape = SHAPES[name]
    model = build_model(shape, device, dtype, seed=args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    seqs = make_pairs(args.pairs, model.config.vocab_size, args.seed)
    tokens = sum(len(s.input_ids) for s in seqs)
    flops = useful_flops(model, seqs)
    res: dict[str, Any] = {"shape": name, "config": shape, "params": n_params, "pairs": len(seqs),
                           "tokens": tokens, "useful_flops": flops, "variants": {}}
    head_bytes = args.head_chunk_mb * 2**20
    kernel = pick_kernel(args.packed_kernel, device, dtype) if args.packed_kernel != "none" else None
    variants: list[tuple[str, Any]] = []
    want = set(args.variants.split(","))
    if not compile_only:
        nb = probe_naive_batch(model, seqs, device) if device.type == "cuda" else args.naive_batch
        res["naive_batch"] = nb
        if "naive" in want:
            variants.append(("naive", lambda ss: naive_logprobs(model, ss, nb, device)))
        for budget in args.budget_tokens:
            if kernel is not None and "packed" in want:
                variants.append((f"packed-{kernel}@{budget}", lambda ss, b=budget: fast_logprobs(
                    model, ss, device, batch_tokens=b, head_chunk_bytes=head_bytes, packed_kernel=kernel)))
            if "padded" in want:
                variants.append((f"padded@{budget}", lambda ss, b=budget: fast_logprobs(
                    model, ss, device, batch_tokens=b, head_chunk_bytes=head_bytes)))
    elif kernel is not None:
        b = args.budget_tokens[0]
        variants.append((f"packed-{kernel}+compile@{b}", lambda ss: fast_logprobs(
            model, ss, device, batch_tokens=b, head_chunk_bytes=head_bytes, packed_kernel=kernel,
            compile_model=True)))
    for vname, fn in variants:
        if time.perf_counter() - t_start > args.time_limit_s and vname != "naive":
            res["variants"][vname] = {"skipped": "time limit"}
            continue
        try:
            t0 = time.perf_counter()
            fn(seqs[: args.warmup_pairs])  # warm-up: kernels, allocator, compilation
            if compile_only:
                res["compile_warmup_s"] = time.perf_counter() - t0
            # the machine's matmul ceiling right before and after this variant (paired: shared boxes drift)
            g0 = measure_gemm_flops(device) if args.gemm_peak else None
            vals, sec, peak = timed(lambda f=fn: f(seqs), device, args.repeats)
            g1 = measure_gemm_flops(device) if args.gemm_peak else None
        except Exception as e:  # report and keep going: the benchmark must finish
            res["variants"][vname] = {"error": f"{type(e).__name__}: {e}"[:400]}
            print(f"  {name} {vname}: ERROR {res['variants'][vname]['error']}", flush=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        v = {"seconds": sec, "tokens_per_s": tokens / sec, "mfu": flops / sec / PEAK_FLOPS,
             "peak_gib": peak}
        if g0 is not None and g1 is not None:
            v["gemm_flops"] = [g0, g1]
            v["gemm_frac"] = flops / sec / ((g0 + g1) / 2)
            v["load_avg"] = os.getloadavg()[0]
        if vname == "naive":
            _NAIVE_CACHE[name] = vals
            res["score_spread"] = statistics.pstdev(vals)
        elif name in _NAIVE_CACHE:
            v["vs_naive"] = delta(vals, _NAIVE_CACHE[name], seqs)
            v["speedup"] = tokens / sec / _NAIVE_TPS[name]
        if vname == "naive":
            _NAIVE_TPS[name] = tokens / sec
        res["variants"][vname] = v
        gemm = f", {100 * v['gemm_frac']:.0f}% of GEMM {sum(v['gemm_flops']) / 2e12:.3f}T" if "gemm_frac" in v else ""
        print(f"  {name} {vname}: {v['tokens_per_s']:.0f} tok/s, {sec:.2f} s, peak {peak:.1f} GiB, "
              f"max|d| {v.get('vs_naive', {}).get('max_abs_pair', 0):.2e}{gemm}", flush=True)
    variants.clear()  # drops the closures that hold the model
    if args.noise_pairs and not compile_only:
        res["noise"] = noise_check(model, seqs[: args.noise_pairs], device, kernel,
                                   res.get("naive_batch", args.naive_batch), head_bytes)
        print(f"  {name} noise: {json.dumps(res['noise'])}", flush=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return res


_NAIVE_TPS: dict[str, float] = {}


def environment(device: torch.device) -> dict[str, Any]:
    import transformers

    env: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "torch": torch.__version__,
        "transformers": transformers.__version__, "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "command": " ".join(sys.argv),
    }
    try:
        env["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        env["git"] = None
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        try:
            from torch.nn.attention.varlen import varlen_attn

            env["varlen_signature"] = str(inspect.signature(varlen_attn))
        except ImportError as e:
            env["varlen_signature"] = f"unavailable: {e}"
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def table(results: dict[str, Any]) -> str:
    gemm = any("gemm_frac" in v for r in results["shapes"] for v in r["variants"].values())
    lines = ["| shape | variant | tokens/s | × naive | " + ("% of measured GEMM peak (GEMM TFLOP/s, load)"
                                                          if gemm else "MFU") + " | peak GiB | max \\|Δ\\| pair (nats) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in results["shapes"]:
        for vname, v in r["variants"].items():
            if "tokens_per_s" not in v:
                lines.append(f"| {r['shape']} | {vname} | {next(iter(v.values()))} | | | | |")
                continue
            sp = f"{v['speedup']:.2f}" if "speedup" in v else "1.00"
            dl = f"{v['vs_naive']['max_abs_pair']:.2e}" if "vs_naive" in v else "—"
            pk = "—" if v["peak_gib"] != v["peak_gib"] else f"{v['peak_gib']:.1f}"
            eff = (f"{100 * v['gemm_frac']:.0f}% ({sum(v['gemm_flops']) / 2e12:.3f}, {v['load_avg']:.1f})"
                   if "gemm_frac" in v else f"{100 * v['mfu']:.1f}%")
            lines.append(f"| {r['shape']} | {vname} | {v['tokens_per_s']:,.0f} | {sp} | {eff} | {pk} | {dl} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default="2b,7b", help="comma list of " + ",".join(SHAPES))
    p.add_argument("--pairs", type=int, default=512)
    p.add_argument("--budget-tokens", default="65536", help="comma list of fast-path token budgets")
    p.add_argument("--naive-batch", type=int, default=8, help="naive batch on CPU (GPU probes the largest)")
    p.add_argument("--packed-kernel", default="auto", help="auto|varlen|flash_attn|flex|dense|none")
    p.add_argument("--head-chunk-mb", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=1, help="timed passes over all pairs (median)")
    p.add_argument("--warmup-pairs", type=int, default=48)
    p.add_argument("--check-pairs", type=int, default=16, help="pairs in the fp32 reference check (0 = skip)")
    p.add_argument("--variants", default="naive,packed,padded", help="which of naive,packed,padded to time")
    p.add_argument("--noise-pairs", type=int, default=0, help="pairs of the bf16-vs-fp32 noise check (0 = skip)")
    p.add_argument("--compile", action="store_true", help="add a torch.compile variant")
    p.add_argument("--compile-models", default="2b")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--gemm-peak", action="store_true",
                   help="time a 2048³ matmul before and after each variant: '%% of measured GEMM peak'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit-s", type=float, default=330.0, help="skip remaining variants after this")
    p.add_argument("--tag", default=None, help="file tag (default: gpu name or 'cpu')")
    p.add_argument("--out-dir", default=None)
    args = p.parse_args(argv)
    args.budget_tokens = [int(x) for x in args.budget_tokens.split(",")]
    args.compile_models = args.compile_models.split(",")
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    results: dict[str, Any] = {"env": environment(device), "dtype": str(dtype), "peak_flops": PEAK_FLOPS,
                               "args": {k: v for k, v in vars(args).items()}, "shapes": []}
    print(json.dumps(results["env"], indent=1), flush=True)
    models = args.models.split(",")
    if args.check_pairs:
        results["fp32_check"] = check_fp32(SHAPES[models[0]], device, args.check_pairs, args.seed)
        print("fp32 check:", json.dumps(results["fp32_check"]), flush=True)
    for name in models:
        results["shapes"].append(run_shape(name, args, device, dtype, t_start))
    if args.compile:  # last: compilation time must not eat the budget of the main figures
        for name in args.compile_models:
            if name in models and time.perf_counter() - t_start < args.time_limit_s:
                r = run_shape(name, args, device, dtype, t_start, compile_only=True)
                r["shape"] = name
                results["shapes"].append(r)
    md = table(results)
    results["table_md"] = md
    tag = args.tag or ("cpu" if device.type == "cpu" else
                       torch.cuda.get_device_name().split()[1].lower() if " " in torch.cuda.get_device_name()
                       else "gpu")
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"scoring_throughput_{tag}.json").write_text(json.dumps(results, indent=1))
        env = results["env"]
        header = (f"# Scoring throughput ({tag})\n\n{env.get('gpu') or env.get('cpu')}, torch {env['torch']}, "
                  f"transformers {env['transformers']}, {env['date']}, dtype {dtype}\n\n`{env['command']}`\n\n")
        (out / f"scoring_throughput_{tag}.md").write_text(header + md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
