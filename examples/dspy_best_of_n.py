"""DSPy: ChainOfThought + LedomBestOfN (N concurrent attempts, reverse-scored), then optimise with ledom_metric.

Offline by default (dspy's DummyLM plays the LM; see _setup.py for the scorer):

    python examples/dspy_best_of_n.py [--model DIR | --scorer-url URL]
        [--openai-base-url URL --openai-model NAME] [--n 4]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before importing dspy: no network
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import add_args, make_scorer

QUESTION = "A box holds 6 eggs. How many eggs are in 2 boxes?"
ATTEMPTS = [  # what a sampling LM might answer
    {"reasoning": "Each box holds 6 eggs and there are 2 boxes, so 2 * 6 = 12 eggs.", "answer": "12"},
    {"reasoning": "6 + 2 = 8 eggs.", "answer": "8"},
    {"reasoning": "Two boxes of six eggs make twelve eggs.", "answer": "12"},
    {"reasoning": "6 / 2 = 3 eggs in each box.", "answer": "3"},
]
TRAIN = {
    "Tom has 3 apples and buys 4 more. How many apples does he have?":
        {"reasoning": "He has 3 + 4 = 7 apples.", "answer": "7"},
    "Sara reads 5 pages a day. How many pages does she read in 3 days?":
        {"reasoning": "5 pages a day for 3 days is 5 * 3 = 15 pages.", "answer": "15"},
    "There are 10 birds and 4 fly away. How many birds are left?":
        {"reasoning": "10 - 4 = 6 birds are left.", "answer": "6"},
    "A pen costs 2 dollars. How much do 5 pens cost?":
        {"reasoning": "5 pens at 2 dollars each cost 5 * 2 = 10 dollars.", "answer": "10"},
}


def _lm(args: argparse.Namespace, answers: object) -> object:
    import dspy
    from dspy.utils.dummies import DummyLM

    if args.openai_base_url:
        return dspy.LM(f"openai/{args.openai_model}", api_base=args.openai_base_url,
                       api_key=os.environ.get("OPENAI_API_KEY", "not-needed"), cache=False)
    return DummyLM(answers)


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    add_args(p)
    p.add_argument("--n", type=int, default=4, help="number of attempts N")
    args = p.parse_args()

    import dspy

    from ledom_reason.integrations.dspy import LedomBestOfN, ledom_metric

    scorer = make_scorer(args)

    # 1. The 5-line usage: N concurrent ChainOfThought attempts, the reverse model picks one.
    qa = dspy.ChainOfThought("question -> answer")
    best = LedomBestOfN(qa, N=args.n, scorer=scorer)
    with dspy.context(lm=_lm(args, ATTEMPTS)):
        pred = best(question=QUESTION)
    print(f"question: {QUESTION}")
    print(f"best answer: {pred.answer}  (attempt {pred.ledom['index']}, reward {pred.ledom['reward']:.3f})")
    print("rewards: " + ", ".join(f"{r:.3f}" for r in pred.ledom["rewards"]))

    # 2. Optimise with the reverse reward as the metric: keep demos whose reasoning explains the question
    #    back well (threshold = median reward of the training traces here).
    trainset = [dspy.Example(question=q, answer=a["answer"]).with_inputs("question") for q, a in TRAIN.items()]
    metric = ledom_metric(scorer)
    rewards = sorted(metric(dspy.Example(question=q), dspy.Prediction(**a)) for q, a in TRAIN.items())
    threshold = rewards[len(rewards) // 2]
    optimizer = dspy.BootstrapFewShot(metric=ledom_metric(scorer, threshold=threshold),
                                      max_bootstrapped_demos=4, max_labeled_demos=0, max_rounds=1)
    with dspy.context(lm=_lm(args, TRAIN)):
        compiled = optimizer.compile(dspy.ChainOfThought("question -> answer"), trainset=trainset)
    demos = compiled.predictors()[0].demos
    print(f"\nmetric threshold {threshold:.3f}; bootstrapped demos: {len(demos)} of {len(trainset)}")
    for d in demos:
        print(f"  - {d['question']} -> {d['answer']}")


if __name__ == "__main__":
    main()
