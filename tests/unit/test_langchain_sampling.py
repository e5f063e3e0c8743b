"""How the LangChain adapter draws N samples: `n` when the model has it, else N concurrent calls with seeds."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models import FakeListChatModel, FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from ledom_reason.integrations._common import gather_all
from ledom_reason.integrations._langchain_io import Sampler, question_of, split_language_model


class NChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that honours an `n` field like ChatOpenAI (one call, n generations)."""

    n: int = 1
    calls: list[int] = []  # noqa: RUF012 (a pydantic field) shared by the model_copy() the sampler makes

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[override]
        self.calls.append(self.n)
        gens = [ChatGeneration(message=AIMessage(next(self.messages))) for _ in range(self.n)]
        return ChatResult(generations=gens)


class SeededChatModel(FakeListChatModel):
    """FakeListChatModel whose answer depends on its `seed` field, like a seeded sampler."""

    seed: int | None = None
    temperature: float = 0.0

    def _call(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        return f"{self.responses[(self.seed or 0) % len(self.responses)]} (T={self.temperature})"


PROMPT = ChatPromptTemplate.from_messages([("system", "Solve it."), ("human", "{question}")])


def test_split_language_model():
    m = GenericFakeChatModel(messages=iter(["a"]))
    assert split_language_model(m) == (None, m, None)
    pre, lm, post = split_language_model(PROMPT | m | StrOutputParser())
    assert pre is PROMPT and lm is m and isinstance(post, StrOutputParser)
    assert split_language_model(RunnableLambda(lambda x: x)) == (None, None, None)


def test_uses_n_when_model_has_it():
    m = NChatModel(messages=itertools.cycle(["a", "b", "c"]))
    outs, calls = Sampler(runnable=PROMPT | m | StrOutputParser()).sample({"question": "q?"}, 3, {})
    assert outs == ["a", "b", "c"] and calls == 1 and m.calls == [3]


async def test_uses_n_async_and_tops_up_when_model_returns_fewer():
    m = NChatModel(messages=itertools.cycle(["a", "b"]))
    outs, calls = await Sampler(runnable=m).asample("q?", 2, {})
    assert [o.content for o in outs] == ["a", "b"] and calls == 1

    class Stingy(NChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[override]
            self.calls.append(self.n)
            return ChatResult(generations=[ChatGeneration(message=AIMessage(next(self.messages)))])

    s = Stingy(messages=itertools.cycle(["x"]))
    outs, calls = await Sampler(runnable=s).asample("q?", 3, {})
    assert len(outs) == 3 and calls == 3


def test_distinct_seeds_and_temperature_without_n():
    m = SeededChatModel(responses=["r0", "r1", "r2", "r3"])
    outs, calls = Sampler(runnable=PROMPT | m | StrOutputParser(), seed=0, temperature=0.7).sample(
        {"question": "q?"}, 4, {"max_concurrency": 2})
    assert outs == [f"r{i} (T=0.7)" for i in range(4)] and calls == 4
    assert m.seed is None  # the caller's model is untouched


async def test_concurrent_async_calls_overlap():
    m = FakeListChatModel(responses=["a"], sleep=0.3)
    t = asyncio.get_running_loop().time()
    outs, calls = await Sampler(runnable=m).asample("q?", 4, {})
    assert calls == 4 and len(outs) == 4
    assert asyncio.get_running_loop().time() - t < 0.8  # 4 x 0.3 s in sequence would be 1.2 s


def test_llm_and_opaque_runnables():
    outs, _ = Sampler(runnable=FakeListLLM(responses=["x", "y"])).sample("q?", 2, {})
    assert sorted(outs) == ["x", "y"]
    outs, calls = Sampler(runnable=RunnableLambda(lambda q: q.upper())).sample("q?", 3, {})
    assert outs == ["Q?"] * 3 and calls == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("What is 2+2?", "What is 2+2?"),
        ({"question": "Q1"}, "Q1"),
        ([HumanMessage("Q2")], "Q2"),
        ([("system", "s"), ("human", "Q3")], "Q3"),
    ],
)
def test_question_of(value, expected):
    assert question_of(value, "question") == expected
    assert question_of(PROMPT.invoke({"question": "Q4"}), "question") == "Q4"


def test_question_of_errors():
    with pytest.raises(ValueError, match="`question`"):
        question_of({"q": "x"}, "question")
    with pytest.raises(TypeError, match="question"):
        question_of(42, "question")
    with pytest.raises(ValueError, match="empty"):
        question_of("  ", "question")


async def test_gather_all_cancels_siblings_on_failure_and_on_cancel():
    started, finished = [], []

    async def slow(i: int) -> int:
        started.append(i)
        await asyncio.sleep(5)
        finished.append(i)
        return i

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    before = len(asyncio.all_tasks())
    with pytest.raises(RuntimeError, match="boom"):
        await gather_all([lambda: slow(0), boom, lambda: slow(1)])
    assert finished == [] and len(asyncio.all_tasks()) == before

    task = asyncio.create_task(gather_all([lambda: slow(2), lambda: slow(3)], limit=1))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == [] and len(asyncio.all_tasks()) == before
