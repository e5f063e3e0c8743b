"""Score (question, candidate) pairs with a reverse model and rank them.

Runs offline on CPU with the bundled `ledom-tiny` (or pass --model with a LEDOM checkpoint folder;
--model random builds a tiny random-weight model locally, whose scores carry no signal).

    python examples/score_pairs.py [--model DIR]
"""

from __future__ import annotations

import argparse
import tempfile

from ledom_reason import ReverseScorer, reverse_reward


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False)
    p.add_argument("--model", default="ledom-tiny")
    args = p.parse_args()
    model = args.model
    if model == "random":
        from ledom_reason.testing import corpus_texts, make_tiny_model, train_tiny_tokenizer

        tok = train_tiny_tokenizer(corpus_texts(max_chars=50_000), vocab_size=300)
        model = make_tiny_model(tempfile.mkdtemp(), tok)
    scorer = ReverseScorer.from_pretrained(model, device="cpu")
    q = "Natalia sold 48 clips in April and half as many in May. How many clips did she sell in total?"
    cands = ["She sold 48/2 = 24 clips in May.\nIn total 48+24 = 72 clips.\n#### 72",
             "She sold 48*2 = 96 clips in May.\nIn total 48+96 = 144 clips.\n#### 144"]
    scores = scorer.score([(q, c) for c in cands])
    for c, s in sorted(zip(cands, scores, strict=True), key=lambda t: -reverse_reward(t[1])):
        print(f"{reverse_reward(s):9.3f}  ({s.question_tokens} question tokens)  {c.splitlines()[-1]}")


if __name__ == "__main__":
    main()
