"""An agent loop that prunes its own reasoning steps with LedomStepPruner and prints the search events.

For each task the agent asks the pruner for a step-by-step solution: a chat model proposes next steps, the
core beam search keeps the partial chains the reverse model scores best, and every depth is streamed as a
LangChain custom event. If the chosen chain has no final answer, the agent retries with a wider beam
(``beam_width`` is a configurable field).

Offline by default (a LangChain fake chat model proposes steps; see _setup.py for the scorer):

    python examples/langchain_step_pruner_agent.py [--model DIR | --scorer-url URL]
        [--openai-base-url URL --openai-model NAME] [--method beam|dvts]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import add_args, make_scorer, openai_chat_model

TASKS = [
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "A box holds 6 eggs. How many eggs are in 2 boxes?",
]
FAKE_STEPS = [  # what a sampling chat model might propose as "the next step"
    "First, note the starting amount.",
    "Add the new items to the starting amount.",
    "Multiply the two numbers.",
    "So the total is 3 + 4 = 7.\n#### 7",
    "So the total is 2 * 6 = 12.\n#### 12",
    "Subtract the smaller number.",
]


async def run_agent(args: argparse.Namespace) -> None:
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.runnables import ConfigurableField

    from ledom_reason.integrations.langchain import LedomStepPruner

    scorer = make_scorer(args)
    model = openai_chat_model(args, temperature=0.8) or GenericFakeChatModel(messages=itertools.cycle(FAKE_STEPS))
    pruner = LedomStepPruner(model=model, scorer=scorer, method=args.method, beam_width=2, expansions=2,
                             max_depth=4).configurable_fields(beam_width=ConfigurableField(id="beam_width"))

    for task in TASKS:
        print(f"\n=== task: {task}")
        for beam_width in (2, 3):  # the agent widens its search when it did not reach an answer
            result = None
            async for ev in pruner.astream_events({"question": task}, version="v2",
                                                  config={"configurable": {"beam_width": beam_width}}):
                if ev["event"] == "on_custom_event":
                    d = ev["data"]
                    print(f"[event] {ev['name']}: " + ", ".join(
                        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in d.items() if not isinstance(v, list | dict)))
                elif ev["event"] == "on_chain_end" and ev["name"] == "LedomStepPruner":
                    result = ev["data"]["output"]
            assert result is not None
            answer = result.answer  # None when no chain reached a final answer
            print(f"final chain (beam_width={beam_width}, reward={result.reward:.3f}, finished={result.finished}):")
            for i, step in enumerate(result.steps, 1):
                print(f"  {i}. {step.splitlines()[0]}")
            s = result.stats
            print(f"  compute: {s['model_calls']} chat-model calls, {s['scorer_calls']} scorer calls, "
                  f"{s['scored_pairs']} partial chains / {s['scored_tokens']} tokens scored, {s['wall_time_s']:.2f} s")
            if answer is not None:
                print(f"agent answer: {answer}")
                break
            print("no final answer yet: retrying with a wider beam")


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    add_args(p)
    p.add_argument("--method", choices=["beam", "dvts"], default="beam")
    asyncio.run(run_agent(p.parse_args()))


if __name__ == "__main__":
    main()
