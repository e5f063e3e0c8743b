"""``ledom-reason serve``: run the HTTP scoring server (FastAPI + uvicorn) on a local model."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ledom_reason.cli._common import add_layout_args
from ledom_reason.server.config import ServerConfig

_D = ServerConfig()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve a reverse model over HTTP (POST /v1/score, GET /healthz, GET /metrics)",
        description="Start the scoring server. Binds 127.0.0.1 unless --host says otherwise; "
                    "SIGTERM finishes in-flight requests and exits 0. See docs/server.md.",
    )
    p.add_argument("--model", required=True, help="reverse model: local HF folder or bundled name")
    p.add_argument("--forward-model", help="forward model folder (enables lam < 1 in requests)")
    p.add_argument("--host", default=_D.host, help="interface to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=_D.port, help="TCP port (default: 8000)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="require `Authorization: Bearer <key>`, the key read from environment variable VAR")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default: bf16 on GPU, fp32 on CPU")
    p.add_argument("--truncate", default="candidate_left", choices=["candidate_left", "error"])
    p.add_argument("--model-name", help="name reported in responses (default: the model folder's name)")
    add_layout_args(p)
    b = p.add_argument_group("batching")
    b.add_argument("--max-batch-tokens", type=int, default=_D.max_batch_tokens,
                   help="token budget of one merged model pass across requests")
    b.add_argument("--max-wait-ms", type=float, default=_D.max_wait_ms,
                   help="how long a request may wait for others to join its pass")
    b.add_argument("--batch-tokens", type=int, default=None,
                   help="the scorer's padded-batch budget inside a pass (default: --max-batch-tokens)")
    b.add_argument("--max-queue", type=int, default=_D.max_queue, help="waiting requests before 503")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-pairs-per-request", type=int, default=_D.max_pairs_per_request)
    lim.add_argument("--max-field-chars", type=int, default=_D.max_field_chars)
    lim.add_argument("--max-body-bytes", type=int, default=_D.max_body_bytes)
    lim.add_argument("--graceful-timeout", type=float, default=_D.graceful_timeout_s,
                     help="seconds in-flight requests may take after SIGTERM")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ledom_reason.cli import CLIError

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise CLIError(f"--api-key-env {args.api_key_env}: the environment variable is unset or empty")
    config = ServerConfig(
        host=args.host, port=args.port, api_key=api_key, graceful_timeout_s=args.graceful_timeout,
        max_batch_tokens=args.max_batch_tokens, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
        max_pairs_per_request=args.max_pairs_per_request, max_field_chars=args.max_field_chars,
        max_body_bytes=args.max_body_bytes, model_name=args.model_name or Path(args.model).name or args.model,
    )
    if config.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        print(f"WARNING: binding {config.host} without --api-key-env: anyone who can reach this port can "
              "use the model", file=sys.stderr)

    from ledom_reason._optional import require

    for dep in ("fastapi", "uvicorn", "prometheus_client"):
        require(dep, "server")
    from ledom_reason.server.app import create_app
    from ledom_reason.server.run import run_server

    def load() -> object:
        from ledom_reason.scorers.local import ReverseScorer

        return ReverseScorer.from_pretrained(
            args.model, device=args.device, dtype=args.dtype, forward_model=args.forward_model,
            batch_tokens=args.batch_tokens or args.max_batch_tokens, truncate=args.truncate,
            bos=args.bos, forward_bos=args.forward_bos,
        )

    print(f"ledom-reason serve: loading {args.model}; listening on http://{config.host}:{config.port} "
          "(GET /healthz answers 200 once the model is ready)", file=sys.stderr)
    return run_server(create_app(load, config), config, log_level=args.log_level, access_log=args.access_log)
