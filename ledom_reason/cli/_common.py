"""Options shared by several commands: choosing and building a scorer."""

from __future__ import annotations

import argparse
from typing import Any

from ledom_reason.reward import NORMALIZE_CHOICES


def add_scorer_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--model DIR`` (local) or ``--url URL`` (remote server), plus backend options."""
    g = p.add_argument_group("scorer")
    g.add_argument("--model", help="reverse model: local HF folder or bundled name (e.g. ledom-tiny)")
    g.add_argument("--url", action="append", help="remote scoring server base URL (repeat for replicas)")
    g.add_argument("--api-key-env", default="LEDOM_API_KEY", help="env var holding the server's API key")
    g.add_argument("--forward-model", help="forward model folder (needed for --lam < 1)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    g.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="default: bf16 on GPU, fp32 on CPU")
    g.add_argument("--batch-tokens", type=int, default=16384, help="token budget per model pass")
    g.add_argument("--truncate", default="candidate_left", choices=["candidate_left", "error"])
    g.add_argument("--forward-chat-template", action="store_true", help="wrap the question in the forward tokenizer's chat template")
    p.set_defaults(_scorer_required=required)


def add_reward_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lam", type=float, default=1.0, help="λ: weight of the reverse term (1 = reverse only)")
    p.add_argument("--normalize", default="sum", choices=list(NORMALIZE_CHOICES))


def build_scorer(args: argparse.Namespace) -> Any:
    """Build the scorer the options ask for (imports torch/httpx only now)."""
    from ledom_reason.cli import CLIError

    if args.url and args.model:
        raise CLIError("give either --model or --url, not both")
    if args.url:
        import os

        from ledom_reason.scorers.remote import RemoteScorer

        return RemoteScorer(args.url, api_key=os.environ.get(args.api_key_env))
    if not args.model:
        raise CLIError("a scorer is needed: --model DIR (or ledom-tiny) or --url URL")
    from ledom_reason.scorers.local import ReverseScorer

    return ReverseScorer.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, forward_model=args.forward_model,
        batch_tokens=args.batch_tokens, truncate=args.truncate,
        forward_chat_template=args.forward_chat_template,
    )


def progress_bar(total: int, desc: str) -> Any:
    """A tqdm bar on stderr (silent when stderr is not a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="pair", disable=None, leave=False)


def score_with_progress(scorer: Any, pairs: list[tuple[str, str]], desc: str, chunk: int = 512) -> list[Any]:
    """Score in chunks with a progress bar; works for any Scorer (local or remote)."""
    out: list[Any] = []
    with progress_bar(len(pairs), desc) as bar:
        for a in range(0, len(pairs), chunk):
            part = pairs[a : a + chunk]
            out += scorer.score(part)
            bar.update(len(part))
    return out
