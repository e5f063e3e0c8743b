"""Pretraining throughput and MFU of reverse models (~125M, ~350M) on one GPU.

Each variant builds the model (Qwen2 blocks through ``transformers``), runs a few warm-up steps
(compilation included there), then times ``--steps`` full optimizer steps (forward, backward,
fused AdamW) on random tokens of length ``--seq-len`` in bf16 autocast. Variants: with/without
``torch.compile`` (regional, per decoder layer) × full / chunked (/ Liger fused, when installed)
cross-entropy; plus the 125M model with per-document position ids (packed-document mask).

MFU = (6N + 12·L·H·Q·T) · tokens/s / peak, N = parameters without the input embedding (LM head
included), Q = head dim, T = sequence length; peak = 989e12 (H100 bf16 dense) unless ``--peak-flops``.

Depends on torch + transformers + this repository only. GPU (about 3–4 minutes on an H100):

    python benchmarks/pretrain_mfu.py --out benchmarks/results/pretrain_mfu_h100.json

CPU smoke mode (a tiny model, no MFU): ``python benchmarks/pretrain_mfu.py --tiny``

CPU mode at a real shape (fp32, no spec peak; ``--gemm-peak`` reports the fraction of this machine's
own measured matmul throughput instead):

    python benchmarks/pretrain_mfu.py --device cpu --only 125M --batch 1 --seq-len 256 --compile no \
        --gemm-peak --out benchmarks/results/pretrain_mfu_cpu.json

``--gemm-peak`` also works on the GPU: it times a large bf16 matmul, so the table shows both MFU
(against the 989 TFLOP/s spec) and the share of what a plain GEMM reaches on the same device.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from ledom_reason.training.loss import LossModule, liger_available
from ledom_reason.training.model import count_params, make_model_config, model_flops_per_token

MODELS = {
    # name: (hidden, layers, heads, kv heads, intermediate, micro batch)
    "125M": (768, 12, 12, 12, 2048, 32),
    "350M": (1024, 24, 16, 16, 2816, 16),
    "tiny": (64, 2, 2, 1, 128, 4),
}


class _Vocab:
    """Stands in for a tokenizer: only its size and special ids are needed to build a model."""

    def __init__(self, n: int) -> None:
        self.n, self.bos_token_id, self.eos_token_id, self.pad_token_id = n, 1, 2, 0

    def __len__(self) -> int:
        return self.n


def run_variant(name: str, *, compile_: bool, loss: str, doc_mask: bool, args: argparse.Namespace,
                device: torch.device) -> dict:
    from transformers import AutoModelForCausalLM

    hidden, layers, heads, kv, inter, batch = MODELS[name]
    batch = args.batch or batch
    shape = SimpleNamespace(arch="qwen2", hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv,
                            intermediate_size=inter, max_position_embeddings=max(2048, args.seq_len),
                            rope_theta=10000.0, dropout=0.0, init_std=0.02, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(make_model_config(shape, _Vocab(args.vocab)),
                                             attn_implementation="sdpa", dtype=torch.float32).to(device)
    model.train()
    if compile_:
        for layer in model.get_decoder().layers:
            layer.compile()
    module = LossModule(model, loss, chunk=args.chunk)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    t = args.seq_len
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randint(3, args.vocab, (batch, t + 1), generator=g).to(device)
    ids, tgt = x[:, :-1].contiguous(), x[:, 1:].contiguous()
    pos = None
    if doc_mask:  # documents of 256 tokens packed in each row
        pos = (torch.arange(t, device=device) % 256).expand(batch, t).contiguous()

    def step() -> float:
        with amp:
            loss_sum, n = module(ids, tgt, pos)
        (loss_sum / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss_sum.detach()) / int(n)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        last = step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    tps = batch * t * args.steps / elapsed
    fpt = model_flops_per_token(model, t)
    peak = args.peak_flops if args.peak_flops is not None else (989e12 if device.type == "cuda" else 0.0)
    row = {
        "model": name, "params_M": round(count_params(model)["total"] / 1e6, 1), "compile": compile_, "loss": loss,
        "doc_mask": doc_mask, "batch": batch, "seq_len": t, "tokens_per_s": round(tps),
        "step_ms": round(1000 * elapsed / args.steps, 1), "mfu": round(fpt * tps / peak, 4) if peak else None,
        "peak_mem_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "warmup_s": round(warm_s, 1), "final_loss": round(last, 3), "flops_per_token": fpt,
    }
    if args.gemm_flops:
        row["gemm_frac"] = round(fpt * tps / args.gemm_flops, 4)
    return row


def measure_gemm_flops(device: torch.device, n: int | None = None, reps: int = 10) -> float:
    """FLOP/s of a square matmul in the benchmark's compute dtype (bf16 on CUDA, fp32 on CPU).

    A practical ceiling for this device, measured rather than taken from a data sheet.
    """
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def variants(tiny: bool, compile_modes: tuple[bool, ...] = (False, True)) -> list[tuple[str, bool, str, bool]]:
    """(model, compile, loss, doc_mask) rows to time, in order."""
    if tiny:
        return [("tiny", c, loss, dm) for c in compile_modes
                for loss, dm in (("full", False), ("chunked", False), ("chunked", True))]
    losses = ["full", "chunked"] + (["liger"] if liger_available() else [])
    out = []
    for m in ("125M", "350M"):
        for c in compile_modes:
            out += [(m, c, loss, False) for loss in losses]
    out.append(("125M", compile_modes[-1], "chunked", True))
    return out


def markdown(rows: list[dict]) -> str:
    gemm = any("gemm_frac" in r for r in rows)
    head = ("| model | params (M) | compile | loss | doc mask | batch×seq | tokens/s | step ms | MFU |"
            + (" of measured GEMM |" if gemm else "") + " peak mem (GB) |")
    lines = [head, "|" + "---|" * (11 if gemm else 10)]

    def pct(x: float | None) -> str:
        return f"{100 * x:.1f}%" if x is not None else "–"

    for r in rows:
        mem = r["peak_mem_gb"] if r["peak_mem_gb"] is not None else "–"
        lines.append(f"| {r['model']} | {r['params_M']} | {'yes' if r['compile'] else 'no'} | {r['loss']} | "
                     f"{'yes' if r['doc_mask'] else 'no'} | {r['batch']}×{r['seq_len']} | {r['tokens_per_s']:,} | "
                     f"{r['step_ms']} | {pct(r['mfu'])} |" + (f" {pct(r.get('gemm_frac'))} |" if gemm else "")
                     + f" {mem} |")
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def main() -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="CPU smoke mode: a tiny model, no MFU")
    p.add_argument("--seq-len", type=int, default=None, help="default 1024 (GPU), 128 (--tiny)")
    p.add_argument("--vocab", type=int, default=None, help="vocabulary size (default 32768; 512 with --tiny)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (compilation happens here)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per variant")
    p.add_argument("--chunk", type=int, default=8192, help="rows per chunk of the chunked loss")
    p.add_argument("--peak-flops", type=float, default=None, help="device peak FLOP/s (default 989e12 on CUDA)")
    p.add_argument("--only", default="", help="comma-separated model names to run (125M,350M)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                   help="auto = CUDA when available (--tiny always runs on CPU)")
    p.add_argument("--batch", type=int, default=None, help="micro batch (default: per model, see MODELS)")
    p.add_argument("--compile", choices=["both", "yes", "no"], default=None,
                   help="torch.compile variants (default: both; no with --tiny)")
    p.add_argument("--gemm-peak", action="store_true",
                   help="also report throughput as a fraction of a measured large-matmul FLOP/s on this device")
    p.add_argument("--out", default=None, help="JSON output (default benchmarks/results/pretrain_mfu[_tiny].json)")
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device")
    if a.tiny or a.device == "cpu" or (a.device == "auto" and not torch.cuda.is_available()):
        device = torch.device("cpu")
    else:
        device = torch.device("cuda")
    if device.type == "cpu" and not a.tiny and a.device != "cpu":
        p.error("no CUDA device: use --tiny (CPU smoke mode) or --device cpu (real shapes on CPU, slow)")
    if a.batch is not None and a.batch < 1:
        p.error("--batch must be >= 1")
    a.seq_len = a.seq_len or (128 if a.tiny else 1024)
    a.vocab = a.vocab or (512 if a.tiny else 32768)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.tiny else 3)
    a.steps = a.steps or (3 if a.tiny else 10)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    a.gemm_flops = measure_gemm_flops(device) if a.gemm_peak else None
    if a.gemm_flops:
        print(f"measured GEMM: {a.gemm_flops / 1e12:.3f} TFLOP/s", flush=True)
    rows = []
    only = {s for s in a.only.split(",") if s}
    unknown = only - set(MODELS)
    if unknown:
        p.error(f"--only: unknown model(s) {sorted(unknown)}; choose from {sorted(MODELS)}")
    a.compile = a.compile or ("no" if a.tiny else "both")
    compile_modes = {"both": (False, True), "yes": (True,), "no": (False,)}[a.compile]
    for name, c, loss, dm in variants(a.tiny, compile_modes):
        if only and name not in only:
            continue
        try:
            r = run_variant(name, compile_=c, loss=loss, doc_mask=dm, args=a, device=device)
        except torch.OutOfMemoryError as e:  # report and continue with the next variant
            r = {"model": name, "compile": c, "loss": loss, "doc_mask": dm, "error": f"OOM: {e}"[:200]}
            torch.cuda.empty_cache()
        gc.collect()  # free the variant's model and optimizer before the next one
        if device.type == "cuda":
            torch.cuda.empty_cache()
        torch._dynamo.reset()
        rows.append(r)
        print(json.dumps(r), flush=True)
    ok = [r for r in rows if "error" not in r]
    env = {"date": dt.date.today().isoformat(), "torch": torch.__version__, "python": platform.python_version(),
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
           "threads": torch.get_num_threads()}
    try:
        import transformers

        env["transformers"] = transformers.__version__
    except ImportError:
        pass
    print()
    print(f"Environment: {env}")
    print(markdown(ok))
    out = Path(a.out or Path(__file__).parent / "results" / ("pretrain_mfu_tiny.json" if a.tiny else "pretrain_mfu.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": env, "args": vars(a), "rows": rows}, indent=2))
    gemm = f"; measured GEMM {a.gemm_flops / 1e12:.3f} TFLOP/s" if a.gemm_flops else ""
    out.with_suffix(".md").write_text(f"Environment: {env}{gemm}\n\n{markdown(ok)}\n")
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
