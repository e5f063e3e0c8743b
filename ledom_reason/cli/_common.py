"""Options shared by several commands: choosing and building a scorer, reading inputs, reporting errors.

Every error about an input file is reported as ``<file>:<line>: <message>`` (the line of the JSONL row,
blank lines counted), whether it comes from parsing, from validating a pair or from the scorer; ``main``
prints it after ``ledom-reason <command>: error: ``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ledom_reason.reward import NORMALIZE_CHOICES
from ledom_reason.types import PairError


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
    """Score in chunks with a progress bar; works for any Scorer (local or remote).

    Raises:
        PairError: a bad pair, with ``.index`` in ``pairs`` (not in the chunk).
    """
    out: list[Any] = []
    with progress_bar(len(pairs), desc) as bar:
        for a in range(0, len(pairs), chunk):
            part = pairs[a : a + chunk]
            try:
                out += scorer.score(part)
            except PairError as e:
                raise e.at(None if e.index is None else a + e.index) from None
            bar.update(len(part))
    return out


def read_rows(path: str | os.PathLike[str], required: Sequence[str] = ()) -> list[tuple[str, dict[str, Any]]]:
    """``(where, row)`` per JSONL row, ``where`` = ``"<file>:<line>"`` (bad JSON/rows raise naming it)."""
    from ledom_reason.io import iter_jsonl

    out = []
    for n, row in iter_jsonl(path):
        missing = [k for k in required if k not in row]
        if missing:
            raise ValueError(f"{path}:{n}: missing field(s) {missing}")
        out.append((f"{path}:{n}", row))
    return out


@contextmanager
def pair_errors_at(wheres: Sequence[str] | Callable[[int], str | None]) -> Iterator[None]:
    """Re-raise a :class:`PairError` about pair ``i`` as ``CLIError("<wheres[i]>: <reason>")``."""
    from ledom_reason.cli import CLIError

    try:
        yield
    except PairError as e:
        where = None
        if e.index is not None:
            if callable(wheres):
                where = wheres(e.index)
            elif 0 <= e.index < len(wheres):
                where = wheres[e.index]
        if where is None:
            raise
        raise CLIError(f"{where}: {e.reason}") from None


def located_score_fn(where_of: Mapping[tuple[str, str], str], desc: str = "scoring") -> Callable[[Any, list[tuple[str, str]]], list[Any]]:
    """A ``score_fn(scorer, pairs)`` (for score caches) whose pair errors name the input line of the pair."""
    def fn(scorer: Any, pairs: list[tuple[str, str]]) -> list[Any]:
        with pair_errors_at(lambda i: where_of.get(pairs[i]) if 0 <= i < len(pairs) else None):
            return score_with_progress(scorer, pairs, desc)
    return fn
