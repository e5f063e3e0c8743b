"""LedomStepPruner: core beam search / DVTS with a LangChain chat model as step generator, events as
LangChain custom events. LangChain's fake chat models + the real tiny reverse scorer."""

from __future__ import annotations

import asyncio
import itertools

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import ConfigurableField, RunnableLambda

from ledom_reason import reverse_reward
from ledom_reason.integrations._langchain_io import step_messages
from ledom_reason.integrations.langchain import LedomStepPruner, StepSearchOutput

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
STEPS = ["Tom starts with 3 apples.", "He buys 4 more apples.", "3 + 4 = 7.\n#### 7", "3 * 4 = 12.\n#### 12"]


def _pruner(scorer, **kw):
    kw.setdefault("model", GenericFakeChatModel(messages=itertools.cycle(STEPS)))
    return LedomStepPruner(scorer=scorer, **{"beam_width": 2, "expansions": 2, "max_depth": 3, **kw})


def test_beam_end_to_end_reward_matches_scorer(scorer):
    out = _pruner(scorer).invoke(Q)
    assert isinstance(out, StepSearchOutput)
    assert out.text == "\n\n".join(out.steps) and out.steps
    assert out.finished and out.answer in {"7", "12"}
    direct = reverse_reward(scorer.score([(Q, out.text)])[0], normalize="mean")
    assert out.reward == pytest.approx(direct, abs=1e-5)
    assert out.chains[0]["reward"] >= out.chains[-1]["reward"]
    assert out.stats["model_calls"] >= out.stats["generator_calls"] >= 1
    assert out.stats["scorer_calls"] <= 3  # one scorer call per depth at most
    assert out.trace and out.trace[0]["status"] == "root"


async def test_custom_events_stream_through_astream_events(scorer):
    kinds, final = [], None
    async for ev in _pruner(scorer).astream_events({"question": Q}, version="v2"):
        if ev["event"] == "on_custom_event":
            assert ev["name"] == "ledom_search"
            kinds.append((ev["data"]["kind"], ev["data"]["depth"]))
        elif ev["event"] == "on_chain_end" and ev["name"] == "LedomStepPruner":
            final = ev["data"]["output"]
    assert kinds[0] == ("depth_start", 0) and kinds[-1][0] == "finished"
    assert ("scored", 0) in kinds
    assert isinstance(final, StepSearchOutput)


def test_sync_invoke_dispatches_to_callbacks_and_works_inside_a_loop(scorer):
    seen = []

    class Rec(BaseCallbackHandler):
        def on_custom_event(self, name, data, **kw):  # type: ignore[override]
            seen.append(data["kind"])

    _pruner(scorer).invoke(Q, config={"callbacks": [Rec()]})
    assert seen and seen[-1] == "finished"

    async def inside_loop():
        return _pruner(scorer).invoke(Q)  # sync API from async code: runs in a helper thread

    assert asyncio.run(inside_loop()).steps


def test_dvts(scorer):
    out = _pruner(scorer, method="dvts").invoke(Q)
    assert out.steps and out.stats["scorer_calls"] >= 1
    assert {n["subtree"] for n in out.trace if n["status"] != "root"} <= {0, 1}


def test_configurable_beam_width(scorer):
    p = _pruner(scorer, max_depth=1).configurable_fields(beam_width=ConfigurableField(id="bw"))
    one = p.with_config(configurable={"bw": 1}).invoke(Q)
    three = p.with_config(configurable={"bw": 3}).invoke(Q)
    default = p.invoke(Q)
    # depth 0 scores beam_width x expansions partial chains in one call
    assert (one.stats["scored_pairs"], three.stats["scored_pairs"], default.stats["scored_pairs"]) == (2, 6, 4)


def test_uses_n_of_the_model(scorer):
    class NChat(GenericFakeChatModel):
        n: int = 1

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[override]
            return ChatResult(generations=[ChatGeneration(message=AIMessage(next(self.messages)))
                                           for _ in range(self.n)])

    out = _pruner(scorer, model=NChat(messages=itertools.cycle(STEPS))).invoke(Q)
    assert out.stats["model_calls"] == out.stats["generator_calls"]


def test_step_messages():
    first = step_messages("sys", Q, "")
    assert [m.type for m in first] == ["system", "human"] and first[1].content == Q
    later = step_messages("sys", Q, "step one")
    assert "step one" in later[1].content and Q in later[1].content


def test_bad_input(scorer):
    with pytest.raises(ValueError, match="beam_width"):
        _pruner(scorer, beam_width=0)
    with pytest.raises(ValueError, match="aggregator"):
        _pruner(scorer, aggregator="random")
    with pytest.raises(ValueError, match="`question`"):
        _pruner(scorer).invoke({"q": Q})
    non_text = RunnableLambda(lambda _: {"tool": "calc"})
    with pytest.raises(TypeError, match="step candidate 0"):
        _pruner(scorer, model=non_text).invoke(Q)


async def test_cancellation_leaves_nothing_running(scorer):
    p = _pruner(scorer, model=FakeListChatModel(responses=STEPS[:2], sleep=0.05), max_depth=50)  # never finishes
    before = len(asyncio.all_tasks())
    task = asyncio.create_task(p.ainvoke(Q))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before
