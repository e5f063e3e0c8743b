"""LedomReasoningNode in a real LangGraph StateGraph, and the runnables' custom events in stream_mode="custom"."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.graph import END, START, MessagesState, StateGraph

from ledom_reason import reverse_reward
from ledom_reason.integrations.langchain import LedomBestOfN, LedomReasoningNode, LedomStepPruner

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
STEPS = ["First, note the starting amount.", "Add the new apples to the starting amount.",
         "So the total is 3 + 4 = 7.\n#### 7", "Multiply the numbers: 3 * 4 = 12.\n#### 12", "Subtract: 4 - 3 = 1."]


class StepFake(GenericFakeChatModel):
    """A step proposer whose reply depends only on its seed and the prompt (any call order gives the same tree)."""

    seed: int | None = None

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        k = (self.seed or 0) + len(messages[-1].content)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(STEPS[k % len(STEPS)]))])


def _graph(node):
    g = StateGraph(MessagesState)
    g.add_node("reason", node)
    g.add_edge(START, "reason")
    g.add_edge("reason", END)
    return g.compile()


def _settings():
    return {"beam_width": 2, "expansions": 2, "max_depth": 3}


def test_node_in_state_graph_streams_search_events(scorer):
    app = _graph(LedomReasoningNode(model=StepFake(messages=iter([])), scorer=scorer, **_settings()))
    chunks = list(app.stream({"messages": [HumanMessage(Q)]}, stream_mode=["custom", "updates"]))
    events = [c for mode, c in chunks if mode == "custom"]
    update = next(c for mode, c in chunks if mode == "updates")["reason"]["messages"][0]
    # the same search, run as the plain runnable, gives the same events and the same chain
    pruner = LedomStepPruner(model=StepFake(messages=iter([])), scorer=scorer, **_settings())
    ref = pruner.invoke(Q)
    assert update.content == ref.text and update.name == "ledom_reasoner"
    meta = update.response_metadata["ledom"]
    assert meta["answer"] == ref.answer and meta["steps"] == ref.steps and "trace" not in meta
    assert meta["reward"] == pytest.approx(reverse_reward(scorer.score([(Q, ref.text)])[0], normalize="mean"),
                                           abs=1e-5)
    assert {e["name"] for e in events} == {"ledom_search"}
    kinds = [e["data"]["kind"] for e in events]
    depths = meta["stats"]["scorer_calls"]
    assert kinds == ["depth_start", "scored", "depth_end"] * depths + ["finished"]  # one scorer call per depth
    assert [e["data"]["depth"] for e in events if e["data"]["kind"] == "scored"] == list(range(depths))


async def test_node_async_equals_sync_and_astream_events(scorer):
    node = LedomReasoningNode(model=StepFake(messages=iter([])), scorer=scorer, **_settings())
    app = _graph(node)
    sync = app.invoke({"messages": [HumanMessage(Q)]})["messages"][-1]
    out = await app.ainvoke({"messages": [HumanMessage(Q)]})
    assert out["messages"][-1].content == sync.content
    names = [e["name"] async for e in app.astream_events({"messages": [HumanMessage(Q)]}, version="v2")
             if e["event"] == "on_custom_event"]
    assert names and set(names) == {"ledom_search"}


def test_node_question_rule_and_bad_state(scorer):
    node = LedomReasoningNode(model=StepFake(messages=iter([])), scorer=scorer, question="first_human",
                              beam_width=1, expansions=1, max_depth=1)
    out = node.invoke({"messages": [HumanMessage(Q), AIMessage("ok"), HumanMessage("and then?")]})
    msg = out["messages"][0]
    assert msg.content == LedomStepPruner(model=StepFake(messages=iter([])), scorer=scorer, beam_width=1,
                                          expansions=1, max_depth=1).invoke(Q).text
    with pytest.raises(ValueError, match="`messages`"):
        node.invoke({"history": []})
    with pytest.raises(ValueError, match="no human message"):
        node.invoke({"messages": [AIMessage("hi")]})
    with pytest.raises(TypeError, match="pruner"):
        LedomReasoningNode(pruner=LedomStepPruner(model=StepFake(messages=iter([])), scorer=scorer), beam_width=3)
    with pytest.raises(ValueError, match="`question`"):
        LedomReasoningNode(model=StepFake(messages=iter([])), scorer=scorer, question="last")
    assert set(node.get_input_schema().model_json_schema()["properties"]) == {"messages"}


def _check_custom(chunks):
    custom = [c for mode, c in chunks if mode == "custom"]
    final = next(c for mode, c in chunks if mode == "updates")["reason"]["messages"][0]
    assert [c["name"] for c in custom] == ["ledom_best_of_n"]
    assert custom[0]["data"]["index"] == final.response_metadata["ledom"]["index"]


async def test_runnable_events_reach_stream_mode_custom(scorer):
    best = LedomBestOfN(runnable=StepFake(messages=iter([])), scorer=scorer, n=3)

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [best.invoke(state["messages"])]}

    async def aanswer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await best.ainvoke(state["messages"])]}

    _check_custom(list(_graph(answer).stream({"messages": [HumanMessage(Q)]}, stream_mode=["custom", "updates"])))
    _check_custom([c async for c in _graph(aanswer).astream({"messages": [HumanMessage(Q)]},
                                                             stream_mode=["custom", "updates"])])
