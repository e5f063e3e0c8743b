"""Load test of ``ledom-reason serve``: many concurrent clients against a real server, every answer checked.

Builds a tiny random-weight reverse model (the test fixture's shape: byte-level BPE with 384 tokens,
Qwen2 with 2 layers of width 64), starts ``python -m ledom_reason serve`` as a subprocess on
127.0.0.1, and runs ``--clients`` concurrent asyncio clients for ``--duration`` seconds. Each request
carries 1..``--max-pairs`` random (question, candidate) pairs built from GSM8K test problems; every
response is compared with the in-process scorer's result for exactly those pairs, in order, so a
lost, duplicated or misrouted result is counted. Reports requests/s, pairs/s, p50/p99 latency, and
the server's mean batch (requests and pairs per model pass, from its /metrics); the in-process
scorer's pairs/s on the same pool is given for reference. Loopback only, bounded in time.

    python benchmarks/server_load.py                      # 64 clients, 60 s  → benchmarks/results/server_load.{md,json}
    python benchmarks/server_load.py --duration 5 --out-dir /tmp/bench    # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from ledom_reason.server.run import wait_ready

RESULTS = Path(__file__).resolve().parent / "results"
TOL = 1e-3  # nats; fp32 sums of ~100 tokens, batch composition changes the last bits only


# ---------------------------------------------------------------------- shared helpers (also used by server_faults.py)
def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("ledom-reason", "torch", "transformers", "fastapi", "starlette", "uvicorn", "pydantic", "httpx",
                "tenacity", "prometheus-client"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "platform": platform.platform(),
            "python": platform.python_version(), "cpu": cpu, "cpu_count": os.cpu_count(), "gpu": None,
            "load_average_at_start": os.getloadavg(), "versions": versions}


def build_tiny_model(out_dir: Path) -> Path:
    """The test suite's tiny reverse model (random weights), built locally in seconds."""
    from ledom_reason.testing import corpus_texts, make_tiny_model, train_tiny_tokenizer

    if not (out_dir / "config.json").exists():
        tok = train_tiny_tokenizer(corpus_texts(max_chars=200_000), vocab_size=384)
        make_tiny_model(out_dir, tok, arch="qwen2", seed=0)
    return out_dir


def gsm8k_pool(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` pairs: GSM8K test questions with their gold solution or another problem's solution."""
    from ledom_reason.paths import data_dir

    rows = []
    with open(data_dir() / "gsm8k" / "test.jsonl", encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if len(rows) >= n:
                break
    rng = random.Random(seed)
    return [(r["question"], r["answer"] if i % 2 == 0 else rng.choice(rows)["answer"]) for i, r in enumerate(rows)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``python -m ledom_reason serve`` as a child process on 127.0.0.1."""

    def __init__(self, model_dir: Path, port: int, *extra: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile("w+")  # anonymous: gone when this process exits
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ledom_reason", "serve", "--model", str(model_dir), "--port", str(port),
             "--log-level", "warning", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        self.started = time.monotonic()

    def wait_ready(self, timeout: float = 120.0) -> float:
        wait_ready(self.url, timeout=timeout)
        return time.monotonic() - self.started

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def tail(self, n: int = 2000) -> str:
        """The end of the server's log (for error messages)."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-n:]


def scrape(url: str) -> dict[str, float]:
    """``/metrics`` as ``{sample_name_with_labels: value}``."""
    out = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def check_scores(got: list[dict[str, Any]] | list[Any], idx: list[int], expected: list[Any]) -> bool:
    """Do the scores of one response match the in-process scores of exactly these pairs, in order?"""
    if len(got) != len(idx):
        return False
    for g, i in zip(got, idx, strict=True):
        rev = g["reverse_logprob"] if isinstance(g, dict) else g.reverse_logprob
        qt = g["question_tokens"] if isinstance(g, dict) else g.question_tokens
        if qt != expected[i].question_tokens or abs(rev - expected[i].reverse_logprob) > TOL:
            return False
    return True


def server_5xx(m: dict[str, float]) -> int:
    """5xx answers to ``POST /v1/score`` (``/healthz`` answers 503 while loading, by design)."""
    return int(sum(v for k, v in m.items()
                   if k.startswith("ledom_requests_total") and 'path="/v1/score"' in k and 'status="5' in k))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


# ---------------------------------------------------------------------- the load
async def run_load(url: str, pool: list[tuple[str, str]], expected: list[Any], *, clients: int, duration: float,
                   max_pairs: int, seed: int) -> dict[str, Any]:
    deadline = time.monotonic() + duration
    lat: list[float] = []
    done_at: list[tuple[float, int]] = []  # (seconds since start, pairs) of each good answer
    stats = {"sent": 0, "ok": 0, "mismatched": 0, "errors": 0, "pairs": 0}
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def client(k: int) -> None:
            rng = random.Random(seed * 1000 + k)
            while time.monotonic() < deadline:
                idx = [rng.randrange(len(pool)) for _ in range(rng.randint(1, max_pairs))]
                body = {"pairs": [{"question": pool[i][0], "candidate": pool[i][1]} for i in idx]}
                stats["sent"] += 1
                t0 = time.perf_counter()
                try:
                    r = await http.post("/v1/score", json=body)
                except httpx.HTTPError as e:
                    stats["errors"] += 1
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                    continue
                lat.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    stats["errors"] += 1
                    errors[f"HTTP {r.status_code}"] = errors.get(f"HTTP {r.status_code}", 0) + 1
                    continue
                if check_scores(r.json()["scores"], idx, expected):
                    stats["ok"] += 1
                    stats["pairs"] += len(idx)
                    done_at.append((time.perf_counter() - t_start, len(idx)))
                else:
                    stats["mismatched"] += 1

        t_start = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        wall = time.perf_counter() - t_start
    window = max(1.0, duration / 6)
    series = [0.0] * (int(wall // window) + 1)
    for t, n in done_at:
        series[int(t // window)] += n
    per_window = [round(x / window, 1) for x in series[: int(duration // window)]]  # full windows under load
    return {**stats, "wall_s": wall, "error_kinds": errors, "latencies": lat,
            "pairs_per_s_by_window": {"window_s": window, "values": per_window}}


def in_process_rate(scorer: Any, pool: list[tuple[str, str]], repeats: int = 3) -> float:
    scorer.score(pool[:8])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        scorer.score(pool)
        best = min(best, time.perf_counter() - t0)
    return len(pool) / best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--max-pairs", type=int, default=8, help="pairs per request: uniform in 1..N")
    p.add_argument("--pool", type=int, default=256, help="distinct pairs requests draw from")
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--model", type=Path, default=None, help="model folder (default: build the tiny test model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    from ledom_reason import ReverseScorer

    info = machine_info()
    model_dir = args.model or build_tiny_model(Path(tempfile.gettempdir()) / "ledom-bench-tiny-model")
    pool = gsm8k_pool(args.pool, args.seed)
    scorer = ReverseScorer.from_pretrained(model_dir, device="cpu", batch_tokens=args.max_batch_tokens)
    expected = scorer.score(pool)
    inproc = in_process_rate(scorer, pool)
    print(f"in-process scorer: {inproc:.0f} pairs/s on the {len(pool)}-pair pool", file=sys.stderr)

    srv = ServeProcess(model_dir, free_port(), "--max-wait-ms", str(args.max_wait_ms),
                       "--max-batch-tokens", str(args.max_batch_tokens), "--max-queue", str(max(256, 2 * args.clients)))
    try:
        ready_s = srv.wait_ready()
        print(f"server ready in {ready_s:.1f} s; {args.clients} clients for {args.duration:.0f} s …", file=sys.stderr)
        res = asyncio.run(run_load(srv.url, pool, expected, clients=args.clients, duration=args.duration,
                                   max_pairs=args.max_pairs, seed=args.seed))
        m = scrape(srv.url)
    finally:
        rc = srv.stop()
    inproc_after = in_process_rate(scorer, pool)
    lat = res.pop("latencies")
    passes = m.get("ledom_batch_requests_count", 0.0)
    out = {
        "benchmark": "server_load",
        "command": "python benchmarks/server_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": info,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "server_ready_s": round(ready_s, 2),
        "requests_sent": res["sent"], "requests_ok": res["ok"], "requests_mismatched": res["mismatched"],
        "requests_failed": res["errors"], "error_kinds": res["error_kinds"],
        "lost_or_duplicated": res["sent"] - res["ok"],
        "wall_s": round(res["wall_s"], 2),
        "requests_per_s": round(res["ok"] / res["wall_s"], 1),
        "pairs_per_s": round(res["pairs"] / res["wall_s"], 1),
        "latency_p50_ms": round(1000 * pct(lat, 50), 1), "latency_p99_ms": round(1000 * pct(lat, 99), 1),
        "latency_mean_ms": round(1000 * statistics.fmean(lat), 1) if lat else None,
        "model_passes": int(passes),
        "mean_batch_requests": round(m.get("ledom_batch_requests_sum", 0) / passes, 2) if passes else None,
        "mean_batch_pairs": round(m.get("ledom_batch_pairs_sum", 0) / passes, 2) if passes else None,
        "server_5xx": server_5xx(m),
        "pairs_per_s_by_window": res["pairs_per_s_by_window"],
        "load_average_at_end": os.getloadavg(),
        "in_process_pairs_per_s": round(inproc, 1),
        "in_process_pairs_per_s_after": round(inproc_after, 1),
        "server_exit_code_after_sigterm": rc,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "server_load.json").write_text(json.dumps(out, indent=2) + "\n")
    md_text = render_markdown(out)
    (args.out_dir / "server_load.md").write_text(md_text)
    print(md_text)
    ok = out["lost_or_duplicated"] == 0 and out["server_5xx"] == 0 and rc == 0
    return 0 if ok else 1


def render_markdown(o: dict[str, Any]) -> str:
    mi, c = o["machine"], o["config"]
    v = mi["versions"]
    return f"""# Server load test (CPU, tiny model)

`{o['command']}` — {mi['date']}, {mi['cpu']} ({mi['cpu_count']} cores, load average at start
{', '.join(f'{x:.1f}' for x in mi['load_average_at_start'])}), Python {mi['python']}, torch {v['torch']},
transformers {v['transformers']}, fastapi {v['fastapi']}, uvicorn {v['uvicorn']}, httpx {v['httpx']}.
Server and clients share the machine's cores. Model: random-weight 2-layer Qwen2 (width 64, vocab 384);
pairs: GSM8K test questions × solutions, 1–{c['max_pairs']} pairs per request.

| clients | duration | requests | requests/s | pairs/s | p50 latency | p99 latency | mean batch (requests / pairs per pass) | lost or duplicated | 5xx |
|---|---|---|---|---|---|---|---|---|---|
| {c['clients']} | {o['wall_s']} s | {o['requests_ok']} | {o['requests_per_s']} | {o['pairs_per_s']} | {o['latency_p50_ms']} ms | {o['latency_p99_ms']} ms | {o['mean_batch_requests']} / {o['mean_batch_pairs']} | {o['lost_or_duplicated']} | {int(o['server_5xx'])} |

Every response was compared with the in-process scorer's scores for exactly its pairs, in order
(|Δ| ≤ {TOL} nats): {o['requests_ok']} matched, {o['requests_mismatched']} mismatched, {o['requests_failed']} failed.
Pairs/s in successive {o['pairs_per_s_by_window']['window_s']:.0f}-second windows: {', '.join(str(x) for x in o['pairs_per_s_by_window']['values'])}
(load average at the end: {', '.join(f'{x:.1f}' for x in o['load_average_at_end'])}).
In-process scorer on the same {c['pool']}-pair pool (one call, no server running): {o['in_process_pairs_per_s']} pairs/s
before the load, {o['in_process_pairs_per_s_after']} pairs/s after it (the machine is shared: compare within a run).
Server exit code after SIGTERM: {o['server_exit_code_after_sigterm']}.
"""


if __name__ == "__main__":
    sys.exit(main())
