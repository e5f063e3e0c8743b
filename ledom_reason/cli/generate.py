"""``ledom-reason generate``: sample N candidate solutions per problem with a local transformers model."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="sample N candidates per problem with a local model (resumable candidates JSONL)",
        description="Writes {id, question, gold, candidates, greedy?, meta} per problem; rerun to resume.")
    p.add_argument("--model", required=True, help="local Hugging Face causal-LM folder (the generator)")
    p.add_argument("--dataset", default="gsm8k", choices=["gsm8k", "math500", "amc23"])
    p.add_argument("--split", default="test")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--limit", type=int, default=None, help="first N problems")
    p.add_argument("--n", type=int, default=8, help="samples per problem")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16, help="sequences per generate() call")
    p.add_argument("--greedy", action="store_true", help="also write one greedy solution per problem")
    p.add_argument("--chat-template", dest="chat_template", action="store_true", default=None,
                   help="wrap the prompt in the tokenizer's chat template (default: when it has one)")
    p.add_argument("--no-chat-template", dest="chat_template", action="store_false")
    p.add_argument("--prompt", default=None,
                   help="prompt format with {question} (default: an instruction to solve step by step and end "
                        "with '#### <answer>'); use '{question}' for a forward twin trained by ledom-reason")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda … (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    p.add_argument("--out", required=True, help="candidates JSONL (appended; existing problems skipped)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ledom_reason.eval.datasets import load_dataset
    from ledom_reason.eval.generation import GenerationConfig, generate_candidates
    from ledom_reason.scorers.local import load_causal_lm, resolve_device, resolve_dtype

    cfg = GenerationConfig(n=args.n, temperature=args.temperature, top_p=args.top_p,
                           max_new_tokens=args.max_new_tokens, greedy=args.greedy, seed=args.seed,
                           chat_template=args.chat_template, batch_size=args.batch_size,
                           **({"prompt": args.prompt} if args.prompt else {}))
    problems = load_dataset(args.dataset, args.split, data_dir=args.data_dir, limit=args.limit)
    dev = resolve_device(args.device)
    model, tok = load_causal_lm(args.model, None, dev, resolve_dtype(args.dtype, dev))
    with tqdm(total=len(problems), desc="generating", unit="problem", file=sys.stderr, disable=None) as bar:
        from ledom_reason.io import read_resumable

        bar.update(len({r.get("id") for r in read_resumable(args.out)} & {p.id for p in problems}))
        n = generate_candidates(model, tok, problems, args.out, cfg, progress=bar.update, model_name=args.model)
    print(f"wrote {n} problems to {args.out}", file=sys.stderr)
    return 0
