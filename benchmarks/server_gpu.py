"""Server overhead at saturation on a GPU: pairs/s through ``ledom-reason``'s HTTP server vs. in-process.

Builds a random-weight 2B-class Qwen2-shaped reverse model from a config (no download; bf16 on
CUDA) and a byte-level BPE tokenizer trained in seconds on synthetic text (the model's vocabulary
is the Qwen2 size, 151,936; the tokenizer uses the first few thousand ids). Then, on the same
pairs:

1. **in-process** — ``ReverseScorer.score(all pairs)`` (tokenize + fast path), best of ``--repeats``;
2. **server** — the app from ``create_app`` on uvicorn in a thread of this process (same scorer
   object), saturated by ``--clients`` concurrent HTTP clients running in a separate process
   (so that client JSON work does not compete for this process's GIL), each request
   ``--pairs-per-request`` pairs, all pairs sent ``--repeats`` times; pairs/s = pairs / wall time.

Overhead = 1 − server / in-process. Every server score is compared with the in-process score of
the same pair (max |Δ| reported; bf16 batch composition changes the last bits). Prints a markdown
table (and writes JSON with ``--out``).

Dependencies: torch, transformers (+ tokenizers), fastapi, uvicorn, httpx, tenacity, pydantic,
prometheus-client, and this repository on ``sys.path``.

    python benchmarks/server_gpu.py                          # H100: 2B-class, bf16
    python benchmarks/server_gpu.py --shape qwen2-1.5b
    python benchmarks/server_gpu.py --tiny                   # CPU smoke run in seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES: dict[str, dict[str, Any]] = {
    # 2B-class: hidden 2048, 24 layers, 16 query heads of 128, 2 KV heads (GQA), untied head: 2.06B params.
    "2b": dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=2,
               intermediate_size=8192, vocab_size=151936, tie_word_embeddings=False),
    # Qwen2-1.5B's shape (tied embeddings): 1.54B params.
    "qwen2-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                       intermediate_size=8960, vocab_size=151936, tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                 intermediate_size=128, vocab_size=1024, tie_word_embeddings=False),
}


# ---------------------------------------------------------------------- data and model
def synthetic_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ne", "tu", "ra", "si", "po", "de", "va", "gu", "le", "xo", "bi", "an", "or"]
    words = ["".join(rng.choices(syll, k=rng.randint(1, 4))) for _ in range(3000)]
    words += ["the", "of", "and", "is", "how", "many", "apples", "total", "each", "then", "so", "=", "+", "*"]
    out = []
    for _ in range(n):
        k = rng.randint(8, 40)
        out.append(" ".join(rng.choice(words) if rng.random() > 0.15 else str(rng.randint(0, 999))
                            for _ in range(k)) + rng.choice([".", "?", "!"]))
    return out


def make_pairs(n: int, q_words: tuple[int, int], c_words: tuple[int, int], seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    sents = synthetic_texts(4000, seed + 1)

    def text(lo: int, hi: int) -> str:
        want, parts, have = rng.randint(lo, hi), [], 0
        while have < want:
            s = rng.choice(sents)
            parts.append(s)
            have += s.count(" ") + 1
        return " ".join(parts)

    return [(text(*q_words), text(*c_words)) for _ in range(n)]


def build_scorer(shape: str, device: str, dtype: str, batch_tokens: int, seed: int) -> tuple[Any, int]:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from ledom_reason.scorers.config import ScorerConfig
    from ledom_reason.scorers.local import ReverseScorer, resolve_dtype
    from ledom_reason.testing import train_tiny_tokenizer

    tok = train_tiny_tokenizer(synthetic_texts(20_000, seed), vocab_size=4096 if shape != "tiny" else 512)
    kw = dict(SHAPES[shape])
    kw["vocab_size"] = max(kw["vocab_size"], len(tok))  # the model's vocabulary ⊇ the tokenizer's ids
    cfg = Qwen2Config(**kw, max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    dev = torch.device(device)
    dt = resolve_dtype(dtype, dev)
    torch.manual_seed(seed)
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dt)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    scorer = ReverseScorer(model, tok, config=ScorerConfig(batch_tokens=batch_tokens), name=f"random-{shape}")
    return scorer, n_params


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------------- load generator (child process)
def _client_main(url: str, requests: list[list[tuple[str, str]]], clients: int, q: Any) -> None:
    import httpx

    async def run() -> dict[str, Any]:
        results: list[Any] = [None] * len(requests)
        lat: list[float] = []
        errors: list[str] = []
        nxt = iter(range(len(requests)))
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:

            async def worker() -> None:
                for i in nxt:
                    body = {"pairs": [{"question": qq, "candidate": c} for qq, c in requests[i]]}
                    t0 = time.perf_counter()
                    r = await http.post("/v1/score", json=body)
                    lat.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                        continue
                    results[i] = [(s["reverse_logprob"], s["question_tokens"]) for s in r.json()["scores"]]

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            wall = time.perf_counter() - t0
        return {"wall": wall, "results": results, "lat": lat, "errors": errors}

    q.put(asyncio.run(run()))


def run_clients(url: str, requests: list[list[tuple[str, str]]], clients: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_client_main, args=(url, requests, clients, q), daemon=True)
    proc.start()
    out = q.get()
    proc.join(60)
    return out


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny model, few pairs, CPU unless --device: a smoke run")
    p.add_argument("--shape", choices=sorted(SHAPES), default="2b")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--dtype", default=None, help="default: bf16 on GPU, fp32 on CPU")
    p.add_argument("--pairs", type=int, default=2048)
    p.add_argument("--q-words", type=int, nargs=2, default=(40, 120), help="question length range (words)")
    p.add_argument("--c-words", type=int, nargs=2, default=(100, 400), help="candidate length range (words)")
    p.add_argument("--batch-tokens", type=int, default=16384, help="scorer's padded batch budget (both paths)")
    p.add_argument("--server-batch-tokens", type=int, default=None, help="batcher budget (default 4 × --batch-tokens)")
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--pairs-per-request", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.tiny:
        args.shape, args.pairs, args.clients, args.repeats = "tiny", min(args.pairs, 96), min(args.clients, 8), 1
        args.q_words, args.c_words = (5, 20), (10, 40)
        args.device = args.device or "cpu"

    import torch

    from ledom_reason.server.app import create_app
    from ledom_reason.server.config import ServerConfig
    from ledom_reason.server.run import ServerThread, wait_ready

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    scorer, n_params = build_scorer(args.shape, device, args.dtype, args.batch_tokens, args.seed)
    pairs = make_pairs(args.pairs, tuple(args.q_words), tuple(args.c_words), args.seed)
    enc = scorer.encode(pairs)
    mean_tokens = statistics.fmean(len(e.reverse.input_ids) for e in enc)
    print(f"model {args.shape} ({n_params / 1e9:.2f}B params) on {device}, {len(pairs)} pairs of "
          f"{mean_tokens:.0f} tokens on average; setup {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    # 1. in-process
    scorer.score(pairs[: min(64, len(pairs))])  # warm-up (kernels, allocator)
    sync(device)
    best, ref = float("inf"), None
    for _ in range(args.repeats):
        t = time.perf_counter()
        ref = scorer.score(pairs)
        sync(device)
        best = min(best, time.perf_counter() - t)
    inproc = len(pairs) / best

    # 2. through the server
    k = args.pairs_per_request
    requests = [pairs[i : i + k] for i in range(0, len(pairs), k)] * args.repeats
    cfg = ServerConfig(max_batch_tokens=args.server_batch_tokens or 4 * args.batch_tokens,
                       max_wait_ms=args.max_wait_ms, max_queue=max(256, 4 * args.clients),
                       max_pairs_per_request=max(1024, k))
    app = create_app(scorer, cfg)
    with ServerThread(app, config=cfg) as srv:
        wait_ready(srv.url)
        warm = run_clients(srv.url, requests[: args.clients], args.clients)  # warm-up: connections, threads
        out = run_clients(srv.url, requests, args.clients)
        m = app.state.ledom.metrics.registry
        passes = m.get_sample_value("ledom_batch_requests_count") or 0
        mean_batch_pairs = (m.get_sample_value("ledom_batch_pairs_sum") or 0) / passes if passes else 0.0
    served_pairs = sum(len(r) for r, res in zip(requests, out["results"], strict=True) if res is not None)
    server_rate = served_pairs / out["wall"]

    # 3. check every answer against the in-process scores
    assert ref is not None
    max_abs, lost, tok_mismatch = 0.0, 0, 0
    for j, res in enumerate(out["results"]):
        base = (j % (len(requests) // args.repeats)) * k
        if res is None or len(res) != len(requests[j]):
            lost += 1
            continue
        for n, (lp, qt) in enumerate(res):
            e = ref[base + n]
            tok_mismatch += qt != e.question_tokens
            max_abs = max(max_abs, abs(lp - e.reverse_logprob))

    row = {
        "shape": args.shape, "params_B": round(n_params / 1e9, 3), "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "dtype": str(next(scorer.model.parameters()).dtype).removeprefix("torch."),
        "pairs": len(pairs), "mean_tokens_per_pair": round(mean_tokens, 1),
        "in_process_pairs_per_s": round(inproc, 1), "server_pairs_per_s": round(server_rate, 1),
        "overhead_pct": round(100 * (1 - server_rate / inproc), 1),
        "clients": args.clients, "pairs_per_request": k, "requests": len(requests),
        "mean_batch_pairs": round(mean_batch_pairs, 1),
        "latency_p50_ms": round(1000 * statistics.median(out["lat"]), 1),
        "latency_p99_ms": round(1000 * sorted(out["lat"])[int(0.99 * (len(out["lat"]) - 1))], 1),
        "lost_requests": lost + len(out["errors"]), "question_token_mismatches": tok_mismatch,
        "max_abs_diff_nats": max_abs, "warmup_errors": len(warm["errors"]),
        "torch": torch.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python benchmarks/server_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(row, indent=2) + "\n")
    print(render_markdown(row))
    return 0 if row["lost_requests"] == 0 and tok_mismatch == 0 else 1


def render_markdown(r: dict[str, Any]) -> str:
    return (
        f"`{r['command']}` — {r['date']}, {r['gpu'] or r['device']}, torch {r['torch']}, Python {r['python']}\n\n"
        "| model | dtype | pairs × tokens | in-process pairs/s | server pairs/s | overhead | clients × pairs/request "
        "| mean pass (pairs) | p50 / p99 latency | lost | max abs diff |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {r['shape']} ({r['params_B']}B) | {r['dtype']} | {r['pairs']} × {r['mean_tokens_per_pair']} "
        f"| {r['in_process_pairs_per_s']} | {r['server_pairs_per_s']} | {r['overhead_pct']} % "
        f"| {r['clients']} × {r['pairs_per_request']} | {r['mean_batch_pairs']} "
        f"| {r['latency_p50_ms']} / {r['latency_p99_ms']} ms | {r['lost_requests']} | {r['max_abs_diff_nats']:.2g} |\n"
    )


if __name__ == "__main__":
    sys.exit(main())
