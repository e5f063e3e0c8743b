"""``ledom-reason quality``: per-document data-quality score S = mean forward CE − mean reverse CE."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quality", help="score documents by forward CE − reverse CE (paper 2) and keep the top fraction",
        description="Input rows: {text} or {question, solution|answer}; output adds forward_ce, reverse_ce, "
        "quality (higher = reversed reading easier) and tokens, in input order.")
    p.add_argument("--forward", required=True, help="forward model folder (the twin)")
    p.add_argument("--reverse", required=True, help="reverse model folder")
    p.add_argument("--input", required=True, help="JSONL documents")
    p.add_argument("--output", required=True, help="scores JSONL (written atomically)")
    p.add_argument("--keep-top", type=float, help="fraction F in (0, 1]: also write the top-F documents by score")
    p.add_argument("--keep-output", help="where the kept documents go (needed with --keep-top)")
    p.add_argument("--text-field", default="text")
    p.add_argument("--question-field", default="question")
    p.add_argument("--solution-field", action="append", help="solution field(s) tried in order (default: solution, answer)")
    p.add_argument("--device", default=None, help="cpu, cuda … (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    p.add_argument("--batch-tokens", type=int, default=16384, help="token budget per model pass")
    p.add_argument("--max-length", type=int, default=None, help="truncate documents (default: model context)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from types import SimpleNamespace

    from ledom_reason.cli import CLIError
    from ledom_reason.io import read_jsonl, write_jsonl_atomic
    from ledom_reason.training.data import iter_documents
    from ledom_reason.training.quality import load_pair, score_documents, select_top

    if (args.keep_top is None) != (args.keep_output is None):
        raise CLIError("--keep-top and --keep-output go together")
    if args.keep_top is not None and not 0 < args.keep_top <= 1:
        raise CLIError(f"--keep-top must be in (0, 1], got {args.keep_top}")
    opts = SimpleNamespace(text_field=args.text_field, question_field=args.question_field,
                           solution_fields=args.solution_field or ["solution", "answer"])
    rows = read_jsonl(args.input)
    docs = list(iter_documents(args.input, opts))
    if len(docs) != len(rows):
        raise CLIError(f"{args.input}: {len(rows) - len(docs)} row(s) have empty text; remove them first")
    fwd, rev, tok = load_pair(args.forward, args.reverse, device=args.device, dtype=args.dtype)
    scores = score_documents(fwd, rev, tok, docs, batch_tokens=args.batch_tokens, max_length=args.max_length)
    out = [{**row, "forward_ce": s.forward_ce, "reverse_ce": s.reverse_ce, "quality": s.quality, "tokens": s.tokens}
           for row, s in zip(rows, scores, strict=True)]
    write_jsonl_atomic(args.output, out)
    if args.keep_top is not None:
        keep = select_top([s.quality for s in scores], args.keep_top)
        write_jsonl_atomic(args.keep_output, [rows[i] for i in keep])
        print(f"kept {len(keep)} of {len(rows)} documents → {args.keep_output}")
    print(f"scored {len(rows)} documents → {args.output}")
    return 0
