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
    """``--model DIR`` (local), ``--url URL`` (our server) or ``--vllm-url URL`` (``vllm serve``), plus options."""
    g = p.add_argument_group("scorer")
    g.add_argument("--model", help="reverse model: local HF folder or bundled name (e.g. ledom-tiny)")
    g.add_argument("--url", action="append", help="remote scoring server base URL (repeat for replicas)")
    g.add_argument("--api-key-env", default=None,
                   help="env var holding the server's API key (default: LEDOM_API_KEY; VLLM_API_KEY with --vllm-url)")
    g.add_argument("--vllm-url", action="append",
                   help="`vllm serve` base URL serving the reverse model (repeat for replicas); needs --tokenizer")
    g.add_argument("--vllm-model", help="served model name at --vllm-url (default: the only one it serves)")
    g.add_argument("--tokenizer", help="tokenizer folder of the --vllm-url model (ids are built client-side)")
    g.add_argument("--vllm-forward-url", action="append", help="`vllm serve` URL of the forward model (for --lam < 1)")
    g.add_argument("--vllm-forward-model", help="served model name at --vllm-forward-url")
    g.add_argument("--forward-tokenizer", help="tokenizer folder of the forward model (default: --tokenizer)")
    g.add_argument("--forward-model", help="forward model folder (needed for --lam < 1)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    g.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="default: bf16 on GPU, fp32 on CPU")
    g.add_argument("--batch-tokens", type=int, default=16384, help="token budget per model pass")
    g.add_argument("--truncate", default="candidate_left", choices=["candidate_left", "error"])
    g.add_argument("--forward-chat-template", action="store_true", help="wrap the question in the forward tokenizer's chat template")
    add_layout_args(g)
    p.set_defaults(_scorer_required=required)


def add_layout_args(g: Any) -> None:
    """``--bos`` / ``--forward-bos``: the layout the checkpoints were trained with (docs/checkpoints.md)."""
    g.add_argument("--bos", default="auto", help="first token of the reverse input: auto (the tokenizer's BOS, if "
                   "any), none, tokenizer, or a token such as '<s>' — what the checkpoint was trained with "
                   "(`ledom-reason inspect` shows which reads best)")
    g.add_argument("--forward-bos", default="auto", help="the same for the forward model's prompt")


def add_reward_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lam", type=float, default=1.0, help="λ: weight of the reverse term (1 = reverse only)")
    p.add_argument("--normalize", default="sum", choices=list(NORMALIZE_CHOICES))


def build_scorer(args: argparse.Namespace) -> Any:
    """Build the scorer the options ask for (imports torch/httpx only now)."""
    return scorer_factory(args)()


def scorer_factory(args: argparse.Namespace) -> Callable[[], Any]:
    """A picklable zero-argument callable that builds the scorer the options ask for (for Ray workers too)."""
    import functools
    import os

    from ledom_reason.cli import CLIError

    given = [f for f, v in (("--model", args.model), ("--url", args.url), ("--vllm-url", getattr(args, "vllm_url", None)))
             if v]
    if len(given) > 1:
        raise CLIError(f"give only one of {', '.join(given)}")
    if getattr(args, "vllm_url", None):
        return _vllm_server_factory(args)
    if args.url:
        from ledom_reason.scorers.remote import RemoteScorer

        return functools.partial(RemoteScorer, args.url, api_key=os.environ.get(args.api_key_env or "LEDOM_API_KEY"))
    if not args.model:
        raise CLIError("a scorer is needed: --model DIR (or ledom-tiny), --url URL or --vllm-url URL --tokenizer DIR")
    from ledom_reason.scorers.local import ReverseScorer

    return functools.partial(
        ReverseScorer.from_pretrained, args.model, device=args.device, dtype=args.dtype,
        forward_model=args.forward_model, batch_tokens=args.batch_tokens, truncate=args.truncate,
        forward_chat_template=args.forward_chat_template, bos=args.bos, forward_bos=args.forward_bos,
    )


def _vllm_server_factory(args: argparse.Namespace) -> Callable[[], Any]:
    import functools
    import os

    from ledom_reason.cli import CLIError
    from ledom_reason.scorers.vllm_server import API_KEY_ENV, VLLMEndpoint, VLLMServerScorer

    if not args.tokenizer:
        raise CLIError("--vllm-url needs --tokenizer DIR (the served model's tokenizer: ids are built here)")
    key = os.environ.get(args.api_key_env or API_KEY_ENV)
    forward = None
    if args.vllm_forward_url:
        forward = VLLMEndpoint(args.vllm_forward_url, args.vllm_forward_model,
                               tokenizer=args.forward_tokenizer or args.tokenizer, api_key=key)
    elif args.forward_model:
        raise CLIError("with --vllm-url the forward model is --vllm-forward-url URL, not --forward-model")
    return functools.partial(VLLMServerScorer, args.vllm_url, model=args.vllm_model, tokenizer=args.tokenizer,
                             api_key=key, forward=forward, truncate=args.truncate, batch_tokens=args.batch_tokens,
                             forward_chat_template=args.forward_chat_template, bos=args.bos,
                             forward_bos=args.forward_bos)


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
