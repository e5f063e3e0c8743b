"""``ledom-reason inspect``: what a checkpoint is, and whether it really reads text backwards."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="report a checkpoint (architecture, vocabulary, special tokens…) and check its direction",
        description="Load MODEL as the scorer would and report architecture, parameters, dtype, embedding rows vs "
                    "len(tokenizer), context length, special tokens and chat template; then read built-in English "
                    "and math paragraphs reversed and in reading order under each BOS layout and say whether the "
                    "model is a reverse model (direction: reverse | forward | unclear). See docs/checkpoints.md.")
    p.add_argument("model", help="the reverse model: local HF folder or bundled name (e.g. ledom-tiny)")
    p.add_argument("--forward-model", help="also check the forward model meant to go with it")
    p.add_argument("--json", action="store_true", help="print one JSON object (with at least `direction`)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default: bf16 on GPU, fp32 on CPU")
    p.add_argument("--slow-tokenizer", action="store_true", help="load with use_fast=False (transformers 4)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="let transformers run Python code shipped in the folder (only for code you have read)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ledom_reason.scorers.inspection import inspect_checkpoint

    report = inspect_checkpoint(args.model, forward_model=args.forward_model, device=args.device, dtype=args.dtype,
                                trust_remote_code=args.trust_remote_code,
                                use_fast=False if args.slow_tokenizer else None)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0
