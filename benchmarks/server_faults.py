"""Fault test of ``ledom-reason serve`` + ``RemoteScorer``: kill the server mid-load; kill one of two replicas.

Two scenarios, each with ``--workers`` concurrent asyncio clients using :class:`RemoteScorer`
(1–4 random GSM8K pairs per call, every result compared with the in-process scorer):

* **restart** — one server; after ``--kill-at`` s it is SIGKILLed, restarted on the same port after
  ``--restart-delay`` s, and the load goes on for ``--after`` s once it is ready again. The
  client's retries (exponential backoff, Retry-After while the new process loads) must complete
  every request.
* **failover** — two replicas given to one ``RemoteScorer``; replica A is SIGKILLed after
  ``--kill-at`` s and the load runs ``--duration`` s in all. Every request must complete; those
  started after the kill are served by replica B (checked against B's ``/metrics``).

Loopback only; bounded in time (about a minute with the defaults, most of it process start-up).

    python benchmarks/server_faults.py                 # → benchmarks/results/server_faults.{md,json}
    python benchmarks/server_faults.py --out-dir /tmp/bench --after 2 --duration 6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server_load import (
    RESULTS,
    ServeProcess,
    build_tiny_model,
    check_scores,
    free_port,
    gsm8k_pool,
    machine_info,
    scrape,
)

from ledom_reason.scorers.remote import RemoteScorer

RETRY = {"max_attempts": 100_000, "retry_deadline_s": 120.0, "backoff_initial_s": 0.05, "backoff_max_s": 1.0,
         "connect_timeout": 2.0, "timeout": 60.0}


class Load:
    """Workers calling ``remote.ascore`` until ``stop`` is set; every call recorded and checked."""

    def __init__(self, remote: RemoteScorer, pool: list[tuple[str, str]], expected: list[Any], workers: int,
                 seed: int) -> None:
        self.remote, self.pool, self.expected = remote, pool, expected
        self.workers, self.seed = workers, seed
        self.stop = asyncio.Event()
        self.calls: list[dict[str, Any]] = []  # {start, end, ok, error}

    async def _worker(self, k: int) -> None:
        rng = random.Random(self.seed * 1000 + k)
        while not self.stop.is_set():
            idx = [rng.randrange(len(self.pool)) for _ in range(rng.randint(1, 4))]
            rec: dict[str, Any] = {"start": time.monotonic()}
            try:
                got = await self.remote.ascore([self.pool[i] for i in idx])
                rec["ok"] = check_scores(got, idx, self.expected)
                rec["error"] = None if rec["ok"] else "mismatch"
            except Exception as e:  # recorded: the benchmark's point is to count these
                rec["ok"], rec["error"] = False, f"{type(e).__name__}: {e}"
            rec["end"] = time.monotonic()
            self.calls.append(rec)

    async def run(self) -> None:
        await asyncio.gather(*(self._worker(k) for k in range(self.workers)))

    def summary(self) -> dict[str, Any]:
        lat = [c["end"] - c["start"] for c in self.calls]
        errors: dict[str, int] = {}
        for c in self.calls:
            if c["error"]:
                key = c["error"][:120]
                errors[key] = errors.get(key, 0) + 1
        return {"requests": len(self.calls), "completed_ok": sum(c["ok"] for c in self.calls),
                "failed": sum(not c["ok"] for c in self.calls), "errors": errors,
                "max_latency_s": round(max(lat), 2) if lat else None,
                "client_http_attempts": self.remote.stats["requests"], "client_retries": self.remote.stats["retries"]}


async def restart_scenario(model_dir: Path, pool, expected, args) -> dict[str, Any]:
    port = free_port()
    srv = ServeProcess(model_dir, port)
    await asyncio.to_thread(srv.wait_ready)
    remote = RemoteScorer(srv.url, **RETRY)
    load = Load(remote, pool, expected, args.workers, args.seed)
    t0 = time.monotonic()
    runner = asyncio.create_task(load.run())
    await asyncio.sleep(args.kill_at)
    t_kill = time.monotonic()
    srv.proc.kill()
    await asyncio.to_thread(srv.proc.wait)
    await asyncio.sleep(args.restart_delay)
    srv2 = ServeProcess(model_dir, port)
    await asyncio.to_thread(srv2.wait_ready)
    t_ready = time.monotonic()
    await asyncio.sleep(args.after)
    load.stop.set()
    await runner
    await remote.aclose()
    rc = await asyncio.to_thread(srv2.stop, signal.SIGTERM)
    s = load.summary()
    spanning = [c for c in load.calls if c["start"] < t_ready and c["end"] > t_kill]
    return {**s, "killed_at_s": round(t_kill - t0, 2), "downtime_s": round(t_ready - t_kill, 2),
            "requests_spanning_outage": len(spanning), "requests_spanning_outage_ok": sum(c["ok"] for c in spanning),
            "requests_after_restart": sum(c["start"] >= t_ready for c in load.calls),
            "restarted_server_exit_code": rc}


async def failover_scenario(model_dir: Path, pool, expected, args) -> dict[str, Any]:
    a, b = ServeProcess(model_dir, free_port()), ServeProcess(model_dir, free_port())
    await asyncio.gather(asyncio.to_thread(a.wait_ready), asyncio.to_thread(b.wait_ready))
    remote = RemoteScorer([a.url, b.url], **RETRY)
    load = Load(remote, pool, expected, args.workers, args.seed + 1)
    t0 = time.monotonic()
    runner = asyncio.create_task(load.run())
    await asyncio.sleep(args.kill_at)
    b_before = await asyncio.to_thread(scrape, b.url)
    a_before = await asyncio.to_thread(scrape, a.url)
    t_kill = time.monotonic()
    a.proc.kill()
    await asyncio.to_thread(a.proc.wait)
    await asyncio.sleep(max(0.0, args.duration - args.kill_at))
    load.stop.set()
    await runner
    await remote.aclose()
    b_after = await asyncio.to_thread(scrape, b.url)
    rc = await asyncio.to_thread(b.stop, signal.SIGTERM)
    key = 'ledom_requests_total{path="/v1/score",status="200"}'
    after = [c for c in load.calls if c["start"] >= t_kill]
    return {**load.summary(), "killed_at_s": round(t_kill - t0, 2),
            "served_by_a_before_kill": int(a_before.get(key, 0)), "served_by_b_before_kill": int(b_before.get(key, 0)),
            "requests_started_after_kill": len(after), "requests_started_after_kill_ok": sum(c["ok"] for c in after),
            "served_by_b_after_kill": int(b_after.get(key, 0) - b_before.get(key, 0)),
            "surviving_replica_exit_code": rc}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=16, help="concurrent RemoteScorer callers")
    p.add_argument("--kill-at", type=float, default=3.0, help="seconds of load before the kill")
    p.add_argument("--restart-delay", type=float, default=1.0, help="restart: seconds between kill and restart")
    p.add_argument("--after", type=float, default=4.0, help="restart: seconds of load after the new server is ready")
    p.add_argument("--duration", type=float, default=12.0, help="failover: seconds of load in all")
    p.add_argument("--pool", type=int, default=128)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    from ledom_reason import ReverseScorer

    info = machine_info()
    model_dir = args.model or build_tiny_model(Path(tempfile.gettempdir()) / "ledom-bench-tiny-model")
    pool = gsm8k_pool(args.pool, args.seed)
    expected = ReverseScorer.from_pretrained(model_dir, device="cpu").score(pool)
    print("restart scenario …", file=sys.stderr)
    restart = asyncio.run(restart_scenario(model_dir, pool, expected, args))
    print("failover scenario …", file=sys.stderr)
    failover = asyncio.run(failover_scenario(model_dir, pool, expected, args))
    out = {"benchmark": "server_faults",
           "command": "python benchmarks/server_faults.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": info, "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "client_retry_settings": RETRY, "restart": restart, "failover": failover}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "server_faults.json").write_text(json.dumps(out, indent=2) + "\n")
    text = render_markdown(out)
    (args.out_dir / "server_faults.md").write_text(text)
    print(text)
    ok = (restart["failed"] == 0 and failover["failed"] == 0
          and failover["served_by_b_after_kill"] >= failover["requests_started_after_kill_ok"])
    return 0 if ok else 1


def render_markdown(o: dict[str, Any]) -> str:
    mi, r, f, c = o["machine"], o["restart"], o["failover"], o["config"]
    v = mi["versions"]
    return f"""# Server fault test (CPU, tiny model)

`{o['command']}` — {mi['date']}, {mi['cpu']} ({mi['cpu_count']} cores), Python {mi['python']}, torch {v['torch']},
fastapi {v['fastapi']}, uvicorn {v['uvicorn']}, httpx {v['httpx']}, tenacity {v['tenacity']}.
{c['workers']} concurrent `RemoteScorer.ascore` callers, 1–4 GSM8K pairs per call, every result compared
with the in-process scorer. Servers are `python -m ledom_reason serve` subprocesses on 127.0.0.1, killed with SIGKILL.

## Kill the server mid-load and restart it

| requests | completed OK | failed | killed at | downtime (kill → ready) | requests spanning the outage (OK) | after restart | max latency | client retries |
|---|---|---|---|---|---|---|---|---|
| {r['requests']} | {r['completed_ok']} | {r['failed']} | {r['killed_at_s']} s | {r['downtime_s']} s | {r['requests_spanning_outage']} ({r['requests_spanning_outage_ok']}) | {r['requests_after_restart']} | {r['max_latency_s']} s | {r['client_retries']} |

## Two replicas, one killed

| requests | completed OK | failed | killed at | started after the kill (OK) | served by B after the kill | max latency | client retries |
|---|---|---|---|---|---|---|---|
| {f['requests']} | {f['completed_ok']} | {f['failed']} | {f['killed_at_s']} s | {f['requests_started_after_kill']} ({f['requests_started_after_kill_ok']}) | {f['served_by_b_after_kill']} | {f['max_latency_s']} s | {f['client_retries']} |

Before the kill, A had served {f['served_by_a_before_kill']} and B {f['served_by_b_before_kill']} requests (round-robin).
"Served by B after the kill" counts B's 200 answers after the kill, including requests started
before it and retried on B. Exit codes after SIGTERM: restarted server {r['restarted_server_exit_code']},
surviving replica {f['surviving_replica_exit_code']}.
"""


if __name__ == "__main__":
    sys.exit(main())
