"""Where the CPU fast path spends its time (SmolLM2-135M shape, fp32), and what bf16 would buy.

Random-weight model and seeded pairs as in ``scoring_throughput.py``. Three measurements, one run:

1. ``torch.profiler`` op table of the fast path on the same pairs, padded buckets vs packed rows with
   the per-sequence attention kernel (``segments``): matmuls vs attention vs element-wise ops, and the
   padded token slots each path pushes through the matmuls.
2. The machine's matmul ceilings, fp32 and bf16 (oneDNN/AMX where the CPU has it), 2048³.
3. The fast path in bf16 (weights and activations) against fp32 on the same pairs: speed and |Δ| per pair —
   whether bf16 is "exact enough" to be a default (it is not: see docs/performance.md).

    python benchmarks/cpu_profile.py --pairs 6 --threads 2 --out benchmarks/results/cpu_profile.md
    python benchmarks/cpu_profile.py --pairs 16 --padding-only     # the throughput benchmark's pairs
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pretrain_mfu import measure_gemm_flops
from scoring_throughput import SHAPES, build_model, make_pairs

from ledom_reason.scorers.engine import fast_logprobs, plan_batches

CPU = torch.device("cpu")
GROUPS = {"matmul": ("aten::mm", "aten::addmm", "aten::bmm"),
          "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math"),
          "element-wise": ("aten::mul", "aten::add", "aten::cat", "aten::silu", "aten::neg", "aten::pow", "aten::sum",
                           "aten::mean", "aten::rsqrt", "aten::sub", "aten::cos", "aten::sin", "aten::copy_")}


def profile(model: torch.nn.Module, seqs: list, kernel: str | None, budget: int) -> tuple[float, dict[str, float], str]:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    fast_logprobs(model, seqs[:1], CPU, batch_tokens=budget, head_chunk_bytes=2**28, packed_kernel=kernel)
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        fast_logprobs(model, seqs, CPU, batch_tokens=budget, head_chunk_bytes=2**28, packed_kernel=kernel)
        sec = time.perf_counter() - t0
    avgs = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in avgs)
    shares = {g: sum(e.self_cpu_time_total for e in avgs if e.key in names) / total for g, names in GROUPS.items()}
    shares["other"] = 1 - sum(shares.values())
    return sec, shares, avgs.table(sort_by="self_cpu_time_total", row_limit=12)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--budget-tokens", type=int, default=8192)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="markdown report path")
    p.add_argument("--padding-only", action="store_true",
                   help="only print the padded token slots of --pairs seeded pairs (no model, no timing)")
    args = p.parse_args(argv)
    if args.padding_only:
        lengths = [len(s.input_ids) for s in make_pairs(args.pairs, SHAPES["135m"]["vocab_size"], 0)]
        slots = sum(len(b) * max(lengths[i] for i in b) for b in plan_batches(lengths, args.budget_tokens))
        print(f"{args.pairs} pairs, {sum(lengths):,} tokens: padded buckets of {args.budget_tokens} push {slots:,} "
              f"token slots ({100 * (slots / sum(lengths) - 1):.0f} % padding)")
        return 0
    torch.set_num_threads(args.threads)
    model = build_model(SHAPES["135m"], CPU, torch.float32)
    seqs = make_pairs(args.pairs, model.config.vocab_size, 0)
    lengths = [len(s.input_ids) for s in seqs]
    real = sum(lengths)
    padded_slots = sum(len(b) * max(lengths[i] for i in b) for b in plan_batches(lengths, args.budget_tokens))
    lines = ["# CPU profile of the fast path (SmolLM2-135M shape, fp32)\n",
             f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads, load average "
             f"{os.getloadavg()[0]:.1f} at start\n", f"`python benchmarks/cpu_profile.py {' '.join(sys.argv[1:])}`\n",
             f"{args.pairs} pairs, {real:,} tokens (lengths {lengths}); padded buckets push {padded_slots:,} token "
             f"slots through the matmuls ({100 * (padded_slots / real - 1):.0f} % padding), packed rows {real:,}.\n",
             "| path | seconds | tokens/s | matmul | attention | element-wise | other |", "|---|---:|---:|---:|---:|---:|---:|"]
    tables = []
    for name, kernel in (("padded buckets", None), ("packed rows, segments kernel", "segments")):
        sec, sh, table = profile(model, seqs, kernel, args.budget_tokens)
        lines.append(f"| {name} | {sec:.1f} | {real / sec:.0f} | {100 * sh['matmul']:.0f} % | "
                     f"{100 * sh['attention']:.0f} % | {100 * sh['element-wise']:.0f} % | {100 * sh['other']:.0f} % |")
        tables.append(f"\n{name}:\n\n```\n{table}\n```\n")
    g32 = measure_gemm_flops(CPU)
    a = torch.randn(2048, 2048, dtype=torch.bfloat16)
    for _ in range(2):
        a @ a
    t0 = time.perf_counter()
    for _ in range(10):
        a @ a
    g16 = 2 * 2048**3 * 10 / (time.perf_counter() - t0)
    lines.append(f"\nMatmul ceilings (2048³): fp32 {g32 / 1e12:.3f} TFLOP/s, bf16 {g16 / 1e12:.3f} TFLOP/s "
                 f"({g16 / g32:.1f}×).\n")
    ref = fast_logprobs(model, seqs, CPU, batch_tokens=args.budget_tokens, head_chunk_bytes=2**28, packed_kernel="segments")
    t0 = time.perf_counter()
    ref = fast_logprobs(model, seqs, CPU, batch_tokens=args.budget_tokens, head_chunk_bytes=2**28, packed_kernel="segments")
    s32 = time.perf_counter() - t0
    model16 = model.to(torch.bfloat16)
    fast_logprobs(model16, seqs[:1], CPU, batch_tokens=args.budget_tokens, head_chunk_bytes=2**28, packed_kernel="segments")
    t0 = time.perf_counter()
    b16 = fast_logprobs(model16, seqs, CPU, batch_tokens=args.budget_tokens, head_chunk_bytes=2**28, packed_kernel="segments")
    s16 = time.perf_counter() - t0
    d = [abs(x - y) for x, y in zip(ref, b16, strict=True)]
    q = [len(s.input_ids) - s.score_start for s in seqs]
    lines.append(f"Fast path (segments) in bf16 vs fp32 on the same weights: {real / s16:.0f} vs {real / s32:.0f} "
                 f"tokens/s ({s32 / s16:.1f}×); |Δ| per pair max {max(d):.2f}, mean {sum(d) / len(d):.2f} nats "
                 f"({max(x / n for x, n in zip(d, q, strict=True)):.4f} nats per question token at most).\n")
    report = "\n".join(lines) + "\n" + "".join(tables)
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
