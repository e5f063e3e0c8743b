"""DSPy LedomBestOfN reports true compute accounting: the whole call's wall time (slow attempts included),
generation and scoring time apart, and the completion tokens DSPy's LM usage records."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

pytest.importorskip("dspy")

import dspy
from dspy.clients.engines.dummy_engine import AsyncDummyEngine, DummyEngine
from dspy.lm15 import Usage
from dspy.utils.dummies import DummyLM

from ledom_reason.integrations.dspy import LedomBestOfN
from ledom_reason.search import STATS_FIELDS

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
ANSWERS = [{"reasoning": "3 + 4 = 7.", "answer": "7"}, {"reasoning": "3 * 4 = 12.", "answer": "12"},
           {"reasoning": "He has seven apples.", "answer": "7"}]
SLEEP_S = 0.3


class WordCountEngine(DummyEngine):
    """DummyLM's engine, but reporting one completion token per word of the scripted output."""

    def _complete_messages(self, messages):
        resp = super()._complete_messages(messages)
        n = len(resp.message.text.split())
        self.owner.words.append(n)
        return dataclasses.replace(resp, usage=Usage(input_tokens=1, output_tokens=n, total_tokens=1 + n))


class CountingLM(DummyLM):
    """DummyLM whose engine (and its copies' engines) report one completion token per word."""

    def __init__(self, answers) -> None:
        super().__init__(answers)
        self.words: list[int] = []  # what the engine reported, shared by the copies
        self._use_counting_engine()

    def _use_counting_engine(self) -> None:
        self._engine_spec = WordCountEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)

    def copy(self, **kwargs):
        copied = super().copy(**kwargs)
        copied._use_counting_engine()
        return copied


def counting_lm(answers) -> CountingLM:
    return CountingLM(answers)


class Slow(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, **kw):
        time.sleep(SLEEP_S)
        return self.cot(**kw)

    async def aforward(self, **kw):
        await asyncio.sleep(SLEEP_S)
        return await self.cot.acall(**kw)


def test_forward_stats_cover_the_attempts_and_count_completion_tokens(scorer):
    lm = counting_lm(list(ANSWERS))
    best = LedomBestOfN(Slow(), N=3, scorer=scorer, max_workers=1)  # one after another: 3 × 0.3 s
    t0 = time.perf_counter()
    with dspy.context(lm=lm):
        pred = best(question=Q)
    outside = time.perf_counter() - t0
    st = pred.ledom["stats"]
    assert list(st) == list(STATS_FIELDS)
    assert st["generator_calls"] == 3
    assert len(lm.words) == 3 and st["generated_tokens"] == sum(lm.words) > 0
    assert st["generation_time_s"] >= 3 * SLEEP_S
    assert st["scorer_calls"] == 1 and st["scoring_time_s"] > 0
    assert st["generation_time_s"] + st["scoring_time_s"] <= st["wall_time_s"] <= outside


async def test_aforward_stats_and_unreported_usage(scorer):
    lm = counting_lm(list(ANSWERS))
    with dspy.context(lm=lm):
        pred = await LedomBestOfN(Slow(), N=3, scorer=scorer).acall(question=Q)
    st = pred.ledom["stats"]
    assert SLEEP_S <= st["generation_time_s"] < 3 * SLEEP_S  # concurrent attempts overlap
    assert st["generated_tokens"] == sum(lm.words)
    with dspy.context(lm=DummyLM(list(ANSWERS))):  # DummyLM's own engine reports 0 tokens: taken as reported
        st0 = LedomBestOfN(dspy.ChainOfThought("question -> answer"), N=3, scorer=scorer)(question=Q).ledom["stats"]
    assert st0["generated_tokens"] == 0


def test_stepwise_cot_counts_the_step_calls_tokens(scorer):
    """LedomStepwiseCoT's stats carry the completion tokens of its step calls (DSPy usage per call)."""
    from ledom_reason.integrations.dspy import LedomStepwiseCoT

    steps = ["Tom starts with 3 apples.", "He buys 4 more, 3 + 4 = 7.\n#### 7"]
    lm = counting_lm([{"next_step": s} for s in steps] + [{"answer": "7"}])
    cot = LedomStepwiseCoT("question -> answer", scorer=scorer, beam_width=1, expansions=2, max_depth=3)
    with dspy.context(lm=lm):
        st = cot(question=Q).ledom["stats"]
    step_calls = st["predictor_calls"] - 1  # the last call is the answer predictor
    assert st["generator_calls"] >= 1 and step_calls == len(lm.words) - 1
    assert st["generated_tokens"] == sum(lm.words[:step_calls]) > 0
    with dspy.context(lm=DummyLM([{"next_step": s} for s in steps] + [{"answer": "7"}])):
        st0 = LedomStepwiseCoT("question -> answer", scorer=scorer, beam_width=1, expansions=2,
                               max_depth=3)(question=Q).ledom["stats"]
    assert st0["generated_tokens"] == 0  # DummyLM reports 0 tokens: reported, not unknown
