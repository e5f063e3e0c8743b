"""DSPy LedomBestOfN: N concurrent attempts (threads / asyncio), reverse-scored with the real tiny scorer."""

from __future__ import annotations

import asyncio
import copy
import time

import pytest

pytest.importorskip("dspy")

import dspy
from dspy.utils.dummies import DummyLM

from ledom_reason import ScorerConfig, reverse_reward
from ledom_reason.integrations._common import CandidateScoringError
from ledom_reason.integrations.dspy import LedomBestOfN

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
ANSWERS = [
    {"reasoning": "3 + 4 = 7.", "answer": "7"},
    {"reasoning": "3 * 4 = 12.", "answer": "12"},
    {"reasoning": "He has seven apples in all.", "answer": "7"},
    {"reasoning": "4 - 3 = 1.", "answer": "1"},
]


def _direct(scorer, a):
    return reverse_reward(scorer.score([(Q, f"{a['reasoning']}\n\n{a['answer']}")])[0], normalize="mean")


class Slow(dspy.Module):
    """A program that takes `delay` seconds before its ChainOfThought call (sync and async)."""

    def __init__(self, delay: float = 0.25, fail_on: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")
        self.delay = delay
        self.fail_on = fail_on

    def _check(self, pred):
        if pred.answer in self.fail_on:
            raise RuntimeError(f"tool failed on {pred.answer}")
        return pred

    def forward(self, **kw):
        time.sleep(self.delay)
        return self._check(self.cot(**kw))

    async def aforward(self, **kw):
        await asyncio.sleep(self.delay)
        return self._check(await self.cot.acall(**kw))


def _expected(scorer, answers=ANSWERS):
    return max(answers, key=lambda a: _direct(scorer, a))


def test_forward_picks_best_concurrently(scorer):
    best = LedomBestOfN(Slow(0.4), N=4, scorer=scorer)
    t = time.perf_counter()
    with dspy.context(lm=DummyLM(list(ANSWERS))):
        pred = best(question=Q)
    wall = time.perf_counter() - t
    assert wall < 1.0, f"attempts did not overlap ({wall:.2f} s; in sequence 1.6 s)"
    exp = _expected(scorer)
    assert (pred.reasoning, pred.answer) == (exp["reasoning"], exp["answer"])
    assert pred.ledom["reward"] == pytest.approx(_direct(scorer, exp), abs=1e-5)
    assert sorted(round(r, 4) for r in pred.ledom["rewards"]) == sorted(round(_direct(scorer, a), 4) for a in ANSWERS)
    assert pred.ledom["stats"]["generator_calls"] == 4


async def test_aforward_picks_best_concurrently(scorer):
    best = LedomBestOfN(Slow(0.4), N=4, scorer=scorer)
    t = time.perf_counter()
    with dspy.context(lm=DummyLM(list(ANSWERS))):
        pred = await best.acall(question=Q)
    assert time.perf_counter() - t < 1.0  # in sequence 1.6 s
    exp = _expected(scorer)
    assert (pred.reasoning, pred.answer) == (exp["reasoning"], exp["answer"])


def test_trace_keeps_only_the_best_attempt(scorer):
    best = LedomBestOfN(dspy.ChainOfThought("question -> answer"), N=3, scorer=scorer)
    with dspy.context(lm=DummyLM(list(ANSWERS[:3])), trace=[]):
        pred = best(question=Q)
        trace = list(dspy.settings.trace)
    assert len(trace) == 1 and trace[0][2].answer == pred.answer


def test_failed_attempts_are_skipped_within_fail_count(scorer, caplog):
    best = LedomBestOfN(Slow(0.0, fail_on=frozenset({"7"})), N=4, scorer=scorer)
    with dspy.context(lm=DummyLM(list(ANSWERS))):
        pred = best(question=Q)
    assert pred.answer in {"12", "1"}
    assert "attempt" in caplog.text and "failed" in caplog.text
    strict = LedomBestOfN(Slow(0.0, fail_on=frozenset({"7"})), N=4, scorer=scorer, fail_count=1)
    with dspy.context(lm=DummyLM(list(ANSWERS))), pytest.raises(RuntimeError, match="2 of 4 attempts failed"):
        strict(question=Q)


def test_deepcopy_shares_the_scorer_and_optimizers_see_inner_predictors(scorer):
    best = LedomBestOfN(dspy.ChainOfThought("question -> answer"), N=2, scorer=scorer)
    clone = copy.deepcopy(best)
    assert clone.reward.scorer is scorer
    assert len(best.predictors()) == 1


def test_bad_input(scorer):
    qa = dspy.ChainOfThought("question -> answer")
    with pytest.raises(ValueError, match="`N`"):
        LedomBestOfN(qa, N=0, scorer=scorer)
    with pytest.raises(TypeError, match="`N`"):
        LedomBestOfN(qa, N=2.5, scorer=scorer)
    lm = DummyLM(list(ANSWERS))
    with dspy.context(lm=lm), pytest.raises(ValueError, match="`question`"):
        LedomBestOfN(qa, N=2, scorer=scorer)(query=Q)
    assert lm.history == []  # failed before any LM call
    with dspy.context(lm=DummyLM([{"reasoning": "", "answer": ""}] * 2)), pytest.raises(RuntimeError, match="answer fields"):
        LedomBestOfN(qa, N=2, scorer=scorer)(question=Q)


def test_scorer_failure_names_the_candidate(scorer):
    strict = type(scorer)(scorer.model, scorer.tokenizer, config=ScorerConfig(truncate="error", max_length=64))
    long = {"reasoning": "step " * 200, "answer": "7"}
    best = LedomBestOfN(Slow(0.0), N=2, scorer=strict, max_workers=1)
    with dspy.context(lm=DummyLM([ANSWERS[0], long])), pytest.raises(CandidateScoringError, match="candidate 1") as ei:
        best(question=Q)
    assert ei.value.candidate.startswith("step step")


async def test_cancellation_leaves_nothing_running(scorer):
    best = LedomBestOfN(Slow(5.0), N=3, scorer=scorer)
    before = len(asyncio.all_tasks())
    with dspy.context(lm=DummyLM(list(ANSWERS))):
        task = asyncio.create_task(best.acall(question=Q))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(asyncio.all_tasks()) == before
