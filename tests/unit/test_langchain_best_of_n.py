"""LangChain LedomBestOfN end to end: LangChain's fake models + the real tiny reverse scorer."""

from __future__ import annotations

import asyncio
import itertools

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import FakeListChatModel, FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField, RunnableLambda

from ledom_reason import ScorerConfig, reverse_reward
from ledom_reason.answers import extract_answer
from ledom_reason.integrations._common import CandidateScoringError
from ledom_reason.integrations.langchain import BestOfNOutput, LedomBestOfN

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
ANSWERS = ["3 + 4 = 7 apples.\n#### 7", "3 * 4 = 12 apples.\n#### 12", "He has 7 apples.\n#### 7",
           "4 - 3 = 1 apple.\n#### 1"]
PROMPT = ChatPromptTemplate.from_messages([("system", "Solve it."), ("human", "{question}")])


def _best_direct(scorer, texts, normalize="mean"):
    r = [reverse_reward(s, normalize=normalize) for s in scorer.score([(Q, t) for t in texts])]
    return texts[max(range(len(texts)), key=lambda i: (r[i], -i))], r


def _chat():
    return GenericFakeChatModel(messages=itertools.cycle(ANSWERS))


def test_chat_model_returns_best_message_with_metadata(scorer):
    best = LedomBestOfN(runnable=_chat(), scorer=scorer, n=4)
    msg = best.invoke(Q)
    assert isinstance(msg, AIMessage)
    exp, rewards = _best_direct(scorer, ANSWERS)
    assert msg.content == exp
    meta = msg.response_metadata["ledom"]
    assert meta["reward"] == pytest.approx(max(rewards), abs=1e-5)
    assert sorted(round(r, 4) for r in meta["rewards"]) == sorted(round(r, 4) for r in rewards)
    assert meta["stats"]["generator_calls"] == 4


async def test_chain_async_details_and_lcel(scorer):
    chain = PROMPT | _chat() | StrOutputParser()
    best = LedomBestOfN(runnable=chain, scorer=scorer, n=4, return_details=True)
    out = await best.ainvoke({"question": Q})
    assert isinstance(out, BestOfNOutput)
    assert sorted(c.text for c in out.candidates) == sorted(ANSWERS)
    exp, _ = _best_direct(scorer, [c.text for c in out.candidates])
    assert out.text == exp == out.output  # `text`: the full chosen candidate
    assert out.answer == extract_answer(exp)  # `answer`: its extracted final answer, as everywhere else
    assert out.candidates[out.index].text == out.text and out.candidates[out.index].answer == out.answer
    assert out.stats["scorer_calls"] >= 1 and out.stats["scored_tokens"] > 0
    # composable with `|` on both sides
    pipe = RunnableLambda(lambda q: {"question": q}) | LedomBestOfN(runnable=chain, scorer=scorer, n=4) | (
        lambda s: s.splitlines()[-1])
    assert pipe.invoke(Q) == exp.splitlines()[-1]


def test_llm_and_fake_list_chat_model(scorer):
    out = LedomBestOfN(runnable=FakeListLLM(responses=ANSWERS), scorer=scorer, n=4, return_details=True).invoke(Q)
    assert isinstance(out.output, str) and all(c.text in ANSWERS for c in out.candidates)
    assert out.output == _best_direct(scorer, [c.text for c in out.candidates])[0]
    out = LedomBestOfN(runnable=FakeListChatModel(responses=ANSWERS[:2]), scorer=scorer, n=2).invoke(Q)
    assert out.content in ANSWERS[:2]


def test_batch_and_stream(scorer):
    best = LedomBestOfN(runnable=PROMPT | _chat() | StrOutputParser(), scorer=scorer, n=4)
    outs = best.batch([{"question": Q}, {"question": Q}], config={"max_concurrency": 2})
    assert all(o in ANSWERS for o in outs)
    chunks = list(best.stream({"question": Q}))
    assert len(chunks) == 1 and chunks[0] in ANSWERS


def test_custom_event_and_callbacks(scorer):
    events = []

    class Rec(BaseCallbackHandler):
        def on_custom_event(self, name, data, **kw):  # type: ignore[override]
            events.append((name, data))

    LedomBestOfN(runnable=_chat(), scorer=scorer, n=2).invoke(Q, config={"callbacks": [Rec()], "tags": ["x"]})
    assert [n for n, _ in events] == ["ledom_best_of_n"]
    assert len(events[0][1]["rewards"]) == 2


def test_configurable_n_and_lambda(scorer_fwd):
    best = LedomBestOfN(runnable=_chat(), scorer=scorer_fwd, n=2, return_details=True).configurable_fields(
        n=ConfigurableField(id="ledom_n"), lam=ConfigurableField(id="ledom_lam"))
    out = best.with_config(configurable={"ledom_n": 3, "ledom_lam": 0.5}).invoke(Q)
    assert len(out.candidates) == 3
    s = scorer_fwd.score([(Q, c.text) for c in out.candidates])
    for c, sc in zip(out.candidates, s, strict=True):
        assert c.reward == pytest.approx(0.5 * sc.forward_mean + 0.5 * sc.reverse_mean, abs=1e-5)
    assert len(best.invoke(Q).candidates) == 2


def test_bad_input(scorer):
    with pytest.raises(ValueError, match="n"):
        LedomBestOfN(runnable=_chat(), scorer=scorer, n=0)
    with pytest.raises(ValueError, match="`question`"):
        LedomBestOfN(runnable=PROMPT | _chat(), scorer=scorer, n=2).invoke({"q": Q})
    non_text = RunnableLambda(lambda _: {"tool": "calc"})
    with pytest.raises(TypeError, match="candidate 0"):
        LedomBestOfN(runnable=non_text, scorer=scorer, n=2).invoke(Q)
    tool_call = GenericFakeChatModel(messages=itertools.cycle(
        [AIMessage(content=[{"type": "tool_use", "id": "1", "name": "calc", "input": {}}])]))
    with pytest.raises(TypeError, match="must be text"):
        LedomBestOfN(runnable=tool_call, scorer=scorer, n=2).invoke(Q)


def test_scorer_failure_mid_batch_names_candidate(scorer):
    strict = type(scorer)(scorer.model, scorer.tokenizer, config=ScorerConfig(truncate="error", max_length=64))
    model = FakeListLLM(responses=[ANSWERS[0], "step " * 200, ANSWERS[1]])
    with pytest.raises(CandidateScoringError, match="candidate 1") as ei:
        LedomBestOfN(runnable=model, scorer=strict, n=3, return_details=True).invoke(Q, {"max_concurrency": 1})
    assert ei.value.candidate.startswith("step step")


async def test_cancellation_cancels_pending_generator_calls(scorer):
    finished = []

    async def slow_gen(x):
        await asyncio.sleep(5)
        finished.append(x)
        return "never"

    best = LedomBestOfN(runnable=RunnableLambda(slow_gen), scorer=scorer, n=4)
    before = len(asyncio.all_tasks())
    task = asyncio.create_task(best.ainvoke(Q))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before and finished == []


async def test_batch_scores_all_inputs_in_one_scorer_call(scorer):
    calls = []

    class Counting:
        def score(self, pairs):
            calls.append(len(pairs))
            return scorer.score(pairs)

        async def ascore(self, pairs):
            return self.score(pairs)

    best = LedomBestOfN(runnable=PROMPT | _chat() | StrOutputParser(), scorer=Counting(), n=4)
    outs = best.batch([{"question": Q}] * 3)
    assert calls == [12] and all(o in ANSWERS for o in outs)
    calls.clear()
    outs = await best.abatch([{"question": Q}, {"q": Q}, {"question": Q}], return_exceptions=True)
    assert calls == [8]
    assert isinstance(outs[1], ValueError) and outs[0] in ANSWERS and outs[2] in ANSWERS
