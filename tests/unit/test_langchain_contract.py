"""Runnable contract checks for the LangChain adapters (langchain-tests has no generic Runnable suite).

For each runnable: invoke == ainvoke == batch == abatch == stream == astream == astream_events' end output,
JSON schemas build, the graph draws, with_config/with_retry keep behaviour, and callbacks see one run.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult

from ledom_reason.integrations.langchain import LedomBestOfN, LedomVerifier

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
ANSWERS = ["3 + 4 = 7 apples.\n#### 7", "3 * 4 = 12 apples.\n#### 12"]


def _key(out):
    if isinstance(out, list):
        return [(c.index, round(c.reward, 4)) for c in out]
    return out


class SeededChat(GenericFakeChatModel):
    """GenericFakeChatModel answering by its `seed` (also when streamed): every run sees the same N
    candidates, whatever the interleaving of concurrent calls."""

    responses: list[str]
    seed: int | None = None

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:  # type: ignore[override]
        text = self.responses[(self.seed or 0) % len(self.responses)]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


def _cases(scorer):
    chat = SeededChat(responses=ANSWERS, messages=iter([]))
    return [
        (LedomVerifier(scorer=scorer), {"question": Q, "candidates": ANSWERS}),
        (LedomBestOfN(runnable=chat | StrOutputParser(), scorer=scorer, n=2), Q),
    ]


def test_integrations_package_is_import_light():
    code = ("import sys, ledom_reason.integrations, ledom_reason.integrations._common; "
            "print([m for m in ('langchain_core', 'dspy', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("case", [0, 1])
async def test_runnable_contract(scorer, case):
    runnable, x = _cases(scorer)[case]
    ref = _key(runnable.invoke(x))
    assert _key(await runnable.ainvoke(x)) == ref
    assert [_key(o) for o in runnable.batch([x, x])] == [ref, ref]
    assert [_key(o) for o in await runnable.abatch([x, x])] == [ref, ref]
    assert _key(list(runnable.stream(x))[-1]) == ref
    assert _key([c async for c in runnable.astream(x)][-1]) == ref
    events = [e async for e in runnable.astream_events(x, version="v2")]
    assert events[0]["event"] == "on_chain_start" and events[-1]["event"] == "on_chain_end"
    assert _key(events[-1]["data"]["output"]) == ref
    assert runnable.get_input_jsonschema() and runnable.get_output_jsonschema() is not None
    assert runnable.get_graph().nodes
    assert _key(runnable.with_config(tags=["t"], run_name="x").invoke(x)) == ref
    assert _key(runnable.with_retry(stop_after_attempt=2).invoke(x)) == ref
    assert runnable.get_name() == type(runnable).__name__


# ---------------------------------------------------------------------------------------- schemas (issue 17.4)
def test_best_of_n_exposes_the_wrapped_schemas(scorer):
    from langchain_core.prompts import ChatPromptTemplate

    chain = ChatPromptTemplate.from_messages([("user", "{question}")]) | SeededChat(responses=ANSWERS,
                                                                                  messages=iter([]))
    best = LedomBestOfN(runnable=chain, scorer=scorer, n=2)
    schema = best.get_input_jsonschema()
    assert schema == chain.get_input_jsonschema() and schema["required"] == ["question"]
    assert best.get_output_jsonschema() == chain.get_output_jsonschema()
    assert best.InputType == chain.InputType and best.OutputType == chain.OutputType
    detailed = LedomBestOfN(runnable=chain, scorer=scorer, n=2, return_details=True)
    assert detailed.get_output_jsonschema()["title"] == "BestOfNOutput"
    graph = best.get_graph()
    assert graph.first_node().data.model_json_schema() == schema  # the graph's input node is the prompt's schema
    assert graph.last_node().data.model_json_schema() == chain.get_output_jsonschema()
    tool = best.as_tool(name="answer", description="answers a question")  # tool conversion sees the fields
    assert set(tool.args) == {"question"}
    assert tool.invoke({"question": Q}).content in ANSWERS


def test_step_pruner_schema_and_tool_conversion(scorer):
    from ledom_reason.integrations.langchain import LedomStepPruner, StepSearchOutput

    pruner = LedomStepPruner(model=SeededChat(responses=ANSWERS, messages=iter([])), scorer=scorer,
                             beam_width=1, expansions=1, max_depth=1, question_key="problem")
    assert pruner.get_input_jsonschema()["required"] == ["problem"]
    assert pruner.get_output_jsonschema()["title"] == "StepSearchOutput"
    out = pruner.as_tool(name="solve", description="solves step by step").invoke({"problem": Q})
    assert isinstance(out, StepSearchOutput) and out.text == pruner.invoke({"problem": Q}).text
    assert LedomVerifier(scorer=scorer).get_input_jsonschema()["title"] == "VerifierRequest"
