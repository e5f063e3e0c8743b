"""Wrap a LangChain chat chain with LedomBestOfN: sample N answers, keep the one the reverse model prefers.

Offline by default (a LangChain fake chat model plays the generator; see _setup.py for the scorer):

    python examples/langchain_best_of_n.py [--model DIR | --scorer-url URL]
        [--openai-base-url URL --openai-model NAME] [--n 4]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import add_args, make_scorer, openai_chat_model

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
FAKE_ANSWERS = [  # what a sampling chat model might say
    "Tom starts with 3 apples and buys 4 more, so he has 3 + 4 = 7 apples.\n#### 7",
    "He buys 4 apples 3 times, so 3 * 4 = 12 apples.\n#### 12",
    "3 apples plus 4 apples is 7 apples.\n#### 7",
    "Tom has 4 - 3 = 1 apple left.\n#### 1",
]


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    add_args(p)
    p.add_argument("--n", type=int, default=4, help="number of samples N")
    args = p.parse_args()

    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from ledom_reason.integrations.langchain import LedomBestOfN

    scorer = make_scorer(args)
    model = openai_chat_model(args) or GenericFakeChatModel(messages=itertools.cycle(FAKE_ANSWERS))
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Solve the problem step by step and end with '#### <answer>'."), ("human", "{question}")])
    chain = prompt | model | StrOutputParser()

    # The 5-line usage: wrap the chain, invoke it like the chain.
    best = LedomBestOfN(runnable=chain, scorer=scorer, n=args.n, return_details=True)
    result = best.invoke({"question": QUESTION})

    print(f"question: {QUESTION}\n")
    for c in result.candidates:
        mark = "  <- chosen" if c.index == result.index else ""
        print(f"  [{c.index}] reward={c.reward:8.3f}  {c.text.splitlines()[-1]}{mark}")
    print(f"\nchosen answer: {result.answer}\nchosen text (last line): {result.text.splitlines()[-1]}")
    s = result.stats
    print(f"compute: {s.get('generator_calls')} generator calls, {s.get('scorer_calls')} scorer calls, "
          f"{s.get('scored_tokens')} tokens scored, {s.get('wall_time_s', 0.0):.2f} s")

    # Drop-in inside LCEL: the default output is the chosen output itself.
    answer = (LedomBestOfN(runnable=chain, scorer=scorer, n=args.n) | (lambda s: s.splitlines()[-1])).invoke(
        {"question": QUESTION})
    print(f"LCEL pipeline answer: {answer}")


if __name__ == "__main__":
    main()
