"""LedomBestOfNMiddleware inside a real LangChain v1 `create_agent` graph: LangChain fake chat models, a real
tool, sync / async / streaming, with the choice checked against rewards recomputed with `scorer.score`."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytest.importorskip("langchain")

from langchain.agents import create_agent
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from pydantic import Field

from ledom_reason import reverse_reward
from ledom_reason.integrations.langchain import LedomBestOfNMiddleware

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
FINALS = ["3 + 4 = 7 apples.\n#### 7", "He has 12 apples.\n#### 12", "The answer is 1.", "Seven apples in all."]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class ToolFake(GenericFakeChatModel):
    """GenericFakeChatModel that create_agent can bind tools to (the script decides the calls)."""

    delay: float = 0.0
    seen_tags: list[Any] = Field(default_factory=list)  # shared by the model copies

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        time.sleep(self.delay)
        self.seen_tags.append(list(self.tags or []))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


class NFake(ToolFake):
    """A fake with an `n` field (as ChatOpenAI has): one call returns `n` generations."""

    n: int = 1
    seen_n: list[int] = Field(default_factory=list)

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.seen_n.append(self.n)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(next(self.messages))) for _ in range(self.n)])


def _tool_calls(n: int) -> list[AIMessage]:
    return [AIMessage("", tool_calls=[{"name": "add", "args": {"a": 3, "b": 4}, "id": f"call_{i}"}]) for i in range(n)]


def _reward(scorer, question, text):
    return reverse_reward(scorer.score([(question, text)])[0], lam=1.0, normalize="mean")


def _best(scorer, texts, question=Q):
    return max(texts, key=lambda t: _reward(scorer, question, t))


def _agent(scorer, model, n, **kw):
    return create_agent(model, tools=[add], middleware=[LedomBestOfNMiddleware(scorer=scorer, n=n, **kw)])


def _check_final(scorer, out, finals, n):
    msgs = out["messages"]
    assert [type(m).__name__ for m in msgs] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    tool_turn, tool_result, final = msgs[1], msgs[2], msgs[3]
    assert tool_turn.tool_calls and tool_turn.response_metadata["ledom"]["verified"] is False
    assert tool_turn.response_metadata["ledom"]["skipped"] == "tool_calls"
    assert isinstance(tool_result, ToolMessage) and tool_result.content == "7"  # the real tool ran
    assert final.content == _best(scorer, finals)
    d = final.response_metadata["ledom"]
    assert d["verified"] and d["question"] == Q and d["kinds"] == ["final"] * n
    assert sorted(round(r, 4) for r in d["rewards"]) == sorted(round(_reward(scorer, Q, t), 4) for t in finals)
    assert d["reward"] == pytest.approx(_reward(scorer, Q, final.content), abs=1e-5)
    assert d["stats"]["generator_calls"] == n and d["stats"]["scorer_calls"] == 1


def test_sync_agent_with_tool_returns_the_best_final_answer(scorer):
    n = 4
    model = ToolFake(messages=iter([*_tool_calls(n), *FINALS]), delay=0.15)
    t = time.perf_counter()
    out = _agent(scorer, model, n).invoke({"messages": [HumanMessage(Q)]})
    assert time.perf_counter() - t < 2 * n * 0.15 * 0.75, "the N handler calls did not overlap"
    _check_final(scorer, out, FINALS, n)
    assert all("nostream" in tags for tags in model.seen_tags)


async def test_async_agent_runs_candidates_concurrently(scorer):
    n = 4
    model = ToolFake(messages=iter([*_tool_calls(n), *FINALS]), delay=0.3)
    t = time.perf_counter()
    out = await _agent(scorer, model, n).ainvoke({"messages": [HumanMessage(Q)]})
    assert time.perf_counter() - t < 2 * n * 0.3 * 0.6, "the N async handler calls did not overlap"
    _check_final(scorer, out, FINALS, n)


def test_streaming_shows_the_chosen_message_and_custom_events(scorer):
    n = 3
    finals = FINALS[:n]
    model = ToolFake(messages=iter([*_tool_calls(n), *finals]))
    chunks = list(_agent(scorer, model, n).stream({"messages": [HumanMessage(Q)]},
                                                  stream_mode=["updates", "messages", "custom"]))
    best = _best(scorer, finals)
    events = [c for mode, c in chunks if mode == "custom"]
    assert [e["name"] for e in events] == ["ledom_best_of_n", "ledom_best_of_n"]
    assert events[0]["data"]["verified"] is False and events[1]["data"]["verified"] is True
    streamed = [m.content for mode, (m, _) in ((mo, c) for mo, c in chunks if mo == "messages")
                if isinstance(m, AIMessage) and m.content]
    assert streamed == [best]  # candidates are not streamed, the chosen one is, once
    updates = [c["model"]["messages"][-1] for mode, c in chunks if mode == "updates" and "model" in c]
    assert updates[-1].content == best


async def test_astream_events_see_the_middleware_event(scorer):
    n = 2
    model = ToolFake(messages=iter([*_tool_calls(n), *FINALS[:n]]))
    names = [e["name"] async for e in _agent(scorer, model, n).astream_events(
        {"messages": [HumanMessage(Q)]}, version="v2") if e["event"] == "on_custom_event"]
    assert names == ["ledom_best_of_n", "ledom_best_of_n"]


def test_model_with_n_field_samples_in_one_call(scorer):
    n = 3
    model = NFake(messages=iter(FINALS))
    out = create_agent(model, middleware=[LedomBestOfNMiddleware(scorer=scorer, n=n)]).invoke(
        {"messages": [HumanMessage(Q)]})
    final = out["messages"][-1]
    assert model.seen_n == [n]
    assert final.content == _best(scorer, FINALS[:n])
    assert final.response_metadata["ledom"]["stats"]["generator_calls"] == 1


@pytest.mark.parametrize("rule", ["last_human", "all_human", "first_human"])
def test_multi_turn_question(scorer, rule):
    q1, q2 = "A box holds 6 eggs.", "How many eggs are in 2 boxes?"
    history = [HumanMessage(q1), AIMessage("Got it."), HumanMessage(q2)]
    finals = ["2 * 6 = 12 eggs.\n#### 12", "6 + 2 = 8 eggs.", "There are 3 boxes."]
    question = {"last_human": q2, "all_human": f"{q1}\n\n{q2}", "first_human": q1}[rule]
    model = ToolFake(messages=iter(finals))
    out = create_agent(model, middleware=[LedomBestOfNMiddleware(scorer=scorer, n=3, question=rule)]).invoke(
        {"messages": history})
    final = out["messages"][-1]
    assert final.response_metadata["ledom"]["question"] == question
    assert final.content == _best(scorer, finals, question)


def test_rank_mode_scores_tool_calls_too(scorer):
    calls = _tool_calls(1)
    model = ToolFake(messages=iter([calls[0], *FINALS[:2], *FINALS]))
    mw = LedomBestOfNMiddleware(scorer=scorer, n=3, tool_calls="rank")
    out = create_agent(model, tools=[add], middleware=[mw]).invoke({"messages": [HumanMessage(Q)]})
    first = out["messages"][1]
    texts = ['add({"a": 3, "b": 4})', *FINALS[:2]]
    d = first.response_metadata["ledom"]
    assert sorted(d["kinds"]) == ["final", "final", "tool"] and d["verified"]
    best = _best(scorer, texts)
    assert (first.content or 'add({"a": 3, "b": 4})') == best


def test_pass_mode_drops_tool_calls_from_a_final_turn(scorer):
    model = ToolFake(messages=iter([AIMessage(FINALS[0]), *_tool_calls(1), AIMessage(FINALS[1])]))
    mw = LedomBestOfNMiddleware(scorer=scorer, n=3, max_concurrency=1)  # in order: candidate 0 is final
    final = create_agent(model, tools=[add], middleware=[mw]).invoke({"messages": [HumanMessage(Q)]})["messages"][-1]
    d = final.response_metadata["ledom"]
    assert d["kinds"] == ["final", "tool", "final"] and d["rewards"][1] is None
    assert final.content == _best(scorer, FINALS[:2])


def test_bad_arguments_and_inputs(scorer):
    with pytest.raises(ValueError, match="`n`"):
        LedomBestOfNMiddleware(scorer=scorer, n=0)
    with pytest.raises(ValueError, match="`tool_calls`"):
        LedomBestOfNMiddleware(scorer=scorer, tool_calls="vote")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`question`"):
        LedomBestOfNMiddleware(scorer=scorer, question="last")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`lam`"):
        LedomBestOfNMiddleware(scorer=scorer, lam=1.5)
    model = ToolFake(messages=iter(FINALS))
    agent = create_agent(model, middleware=[LedomBestOfNMiddleware(scorer=scorer, n=2)])
    with pytest.raises(ValueError, match="no human message"):
        agent.invoke({"messages": [AIMessage("hello")]})
    assert model.seen_tags == []  # failed before any model call
