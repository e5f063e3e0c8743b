"""LangChain adapters report true compute accounting: the wall time of the whole call (slow generator calls
included), generation and scoring time apart, and generated tokens from the models' `usage_metadata`."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnableLambda

from ledom_reason.integrations.langchain import LedomBestOfN, LedomStepPruner
from ledom_reason.search import STATS_FIELDS

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
ANSWERS = ["3 + 4 = 7 apples.\n#### 7", "3 * 4 = 12 apples.\n#### 12", "He has 7 apples.\n#### 7"]
SLEEP_S = 0.3


def _msg(text: str) -> AIMessage:
    # a token count the test can recompute: one token per whitespace-separated word
    n = len(text.split())
    return AIMessage(text, usage_metadata={"input_tokens": 5, "output_tokens": n, "total_tokens": 5 + n})


def _slow_model(seconds: float = SLEEP_S):
    model = GenericFakeChatModel(messages=itertools.cycle([_msg(a) for a in ANSWERS]))

    def slow(msg):
        time.sleep(seconds)
        return msg

    async def aslow(msg):
        await asyncio.sleep(seconds)
        return msg

    return model | RunnableLambda(slow, afunc=aslow)


def test_best_of_n_stats_cover_slow_generator_calls_and_count_tokens(scorer):
    best = LedomBestOfN(runnable=_slow_model(), scorer=scorer, n=3, return_details=True)
    t0 = time.perf_counter()
    out = best.invoke(Q, {"max_concurrency": 1})  # three 0.3 s calls one after another
    outside = time.perf_counter() - t0
    st = out.stats
    assert list(st) == list(STATS_FIELDS)
    assert st["generator_calls"] == 3
    assert st["generated_tokens"] == sum(len(a.split()) for a in ANSWERS)
    assert st["generation_time_s"] >= 3 * SLEEP_S
    assert st["scorer_calls"] == 1 and st["scoring_time_s"] > 0
    assert st["generation_time_s"] + st["scoring_time_s"] <= st["wall_time_s"] <= outside


async def test_async_best_of_n_metadata_carries_the_same_accounting(scorer):
    best = LedomBestOfN(runnable=_slow_model(), scorer=scorer, n=3)
    msg = await best.ainvoke(Q)  # concurrent: the three sleeps overlap
    st = msg.response_metadata["ledom"]["stats"]
    assert SLEEP_S <= st["generation_time_s"] < 3 * SLEEP_S
    assert st["generated_tokens"] == sum(len(a.split()) for a in ANSWERS)
    assert st["generation_time_s"] + st["scoring_time_s"] <= st["wall_time_s"]


def test_tokens_survive_an_output_parser_and_are_none_when_unreported(scorer):
    counted = LedomBestOfN(runnable=_slow_model(0.0) | StrOutputParser(), scorer=scorer, n=3, return_details=True)
    assert counted.invoke(Q).stats["generated_tokens"] == sum(len(a.split()) for a in ANSWERS)
    silent = GenericFakeChatModel(messages=itertools.cycle([AIMessage(a) for a in ANSWERS]))  # no usage_metadata
    out = LedomBestOfN(runnable=silent, scorer=scorer, n=3, return_details=True).invoke(Q)
    assert out.stats["generated_tokens"] is None and out.stats["generator_calls"] == 3


def test_step_pruner_counts_step_tokens(scorer):
    steps = ["First, 3 + 4 = 7.", "So the answer is 7.\n#### 7"]
    model = GenericFakeChatModel(messages=itertools.cycle([_msg(s) for s in steps]))
    out = LedomStepPruner(model=model, scorer=scorer, beam_width=1, expansions=2, max_depth=3).invoke(Q)
    st = out.stats
    assert st["model_calls"] == st["generator_calls"] * 2  # no `n` field: two concurrent calls per expansion
    # every model call produced one trace node: its words are the tokens that call reported
    assert st["generated_tokens"] == sum(len(n["step"].split()) for n in out.trace if n["status"] != "root")
    assert st["generation_time_s"] + st["scoring_time_s"] <= st["wall_time_s"]


def test_agent_middleware_accounts_for_the_whole_turn(scorer):
    pytest.importorskip("langchain")
    from langchain.agents import create_agent
    from langchain_core.messages import HumanMessage

    from ledom_reason.integrations.langchain import LedomBestOfNMiddleware

    class SlowFake(GenericFakeChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            time.sleep(SLEEP_S)
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    model = SlowFake(messages=iter([_msg(a) for a in ANSWERS]))
    agent = create_agent(model, middleware=[LedomBestOfNMiddleware(scorer=scorer, n=3, max_concurrency=1)])
    t0 = time.perf_counter()
    out = agent.invoke({"messages": [HumanMessage(Q)]})
    outside = time.perf_counter() - t0
    st = out["messages"][-1].response_metadata["ledom"]["stats"]
    assert list(st) == list(STATS_FIELDS)
    assert st["generator_calls"] == 3 and st["generated_tokens"] == sum(len(a.split()) for a in ANSWERS)
    assert st["generation_time_s"] >= 3 * SLEEP_S  # one after another (max_concurrency=1)
    assert st["generation_time_s"] + st["scoring_time_s"] <= st["wall_time_s"] <= outside
