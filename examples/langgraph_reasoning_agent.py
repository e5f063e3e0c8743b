"""A LangGraph agent that reasons step by step with reverse-model pruning, then checks itself with a tool.

The graph is a plain ``StateGraph(MessagesState)``:

    START -> reason -> agent -> END

* ``reason`` is a :class:`LedomReasoningNode`: a chat model proposes next steps, the core beam search keeps
  the partial chains the reverse model scores best (one scorer call per depth) and writes the chosen chain
  to the conversation.
* ``agent`` is a LangChain v1 ``create_agent`` with a real ``calculator`` tool and
  :class:`LedomBestOfNMiddleware`: it recomputes the chain's arithmetic with the tool (a tool-call turn,
  passed through unverified), then samples N final answers and keeps the one the reverse model ranks first.

Every search depth and every Best-of-N choice is printed from LangGraph's ``stream_mode="custom"`` as it
happens. Offline by default (fake chat models play the LLMs; see _setup.py for the scorer):

    python examples/langgraph_reasoning_agent.py [--model DIR | --scorer-url URL]
        [--openai-base-url URL --openai-model NAME] [--n 3]
"""

from __future__ import annotations

import argparse
import ast
import itertools
import operator
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import add_args, make_scorer, openai_chat_model

TASKS = [
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "A box holds 6 eggs. How many eggs are in 2 boxes?",
]
FAKE_STEPS = [  # what a sampling chat model might propose as "the next step"
    "First, note the starting amount.",
    "Combine the two amounts given in the problem.",
    "So the total is 3 + 4 = 7.\n#### 7",
    "So the total is 2 * 6 = 12.\n#### 12",
    "Subtract the smaller number: 4 - 3 = 1.\n#### 1",
]
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_ARITH = re.compile(r"(\d+(?:\.\d+)?\s*[-+*/]\s*\d+(?:\.\d+)?)")


def calculate(expression: str) -> str:
    """Evaluate `a op b` arithmetic (+ - * /) safely, without eval."""
    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        raise ValueError(f"not plain arithmetic: {expression!r}")
    value = ev(ast.parse(expression, mode="eval").body)
    return str(int(value)) if value == int(value) else str(value)


def _fake_agent_model() -> Any:
    """An offline stand-in for a tool-calling chat model: it calls the calculator on the arithmetic of the
    reasoning it was given, then phrases a final answer (the phrasing varies with its seed)."""
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class ToolCallingFake(GenericFakeChatModel):
        seed: int | None = None

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self  # the script below decides which tool to call

        def _generate(self, messages: list[Any], stop: Any = None, run_manager: Any = None,
                      **kwargs: Any) -> ChatResult:
            last = messages[-1]
            if isinstance(last, ToolMessage):
                r = last.content
                phrasings = [f"The calculator confirms {r}.\n#### {r}", f"So the answer is {r}.\n#### {r}",
                             f"{r}", f"Checking the arithmetic gives {r}; the answer is {r}.\n#### {r}"]
                msg = AIMessage(phrasings[(self.seed or 0) % len(phrasings)])
            else:
                found = _ARITH.findall(" ".join(str(m.content) for m in messages))
                msg = (AIMessage("", tool_calls=[{"name": "calculator", "args": {"expression": found[-1]},
                                                  "id": f"call_{self.seed or 0}"}])
                       if found else AIMessage("I could not find a computation to check."))
            return ChatResult(generations=[ChatGeneration(message=msg)])

    return ToolCallingFake(messages=iter([]))


def build_graph(scorer: Any, step_model: Any, agent_model: Any, n: int) -> Any:
    """The compiled graph: START -> reason (pruned step-wise reasoning) -> agent (tool + Best-of-N) -> END."""
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph

    from ledom_reason.integrations.langchain import LedomBestOfNMiddleware, LedomReasoningNode

    calculator = tool("calculator")(calculate)
    agent = create_agent(agent_model, tools=[calculator], name="agent",
                         system_prompt="Check the reasoning's arithmetic with the calculator, then answer.",
                         middleware=[LedomBestOfNMiddleware(scorer=scorer, n=n)])
    graph = StateGraph(MessagesState)
    graph.add_node("reason", LedomReasoningNode(model=step_model, scorer=scorer, beam_width=2, expansions=2,
                                                max_depth=4))
    graph.add_node("agent", agent)
    graph.add_edge(START, "reason")
    graph.add_edge("reason", "agent")
    graph.add_edge("agent", END)
    return graph.compile()


def _show(event: dict[str, Any]) -> str:
    d = event["data"]
    if event["name"] == "ledom_search":
        extra = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items()
                          if k not in ("kind", "depth") and not isinstance(v, list | dict))
        return f"[search] depth {d['depth']} {d['kind']}" + (f": {extra}" if extra else "")
    if not d["verified"]:
        return f"[best-of-n] tool-call turn passed through ({d['skipped']}), {d['stats']['generator_calls']} samples"
    rewards = ", ".join("-" if r is None else f"{r:.3f}" for r in d["rewards"])
    return f"[best-of-n] kept candidate {d['index']} of {len(d['rewards'])} (rewards {rewards})"


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    add_args(p)
    p.add_argument("--n", type=int, default=3, help="final answers sampled per turn")
    args = p.parse_args()

    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import HumanMessage, ToolMessage

    scorer = make_scorer(args)
    step_model = openai_chat_model(args, temperature=0.8) or GenericFakeChatModel(messages=itertools.cycle(FAKE_STEPS))
    agent_model = openai_chat_model(args, temperature=0.8) or _fake_agent_model()
    app = build_graph(scorer, step_model, agent_model, args.n)

    for task in TASKS:
        print(f"\n=== task: {task}")
        final = None
        for _, mode, chunk in app.stream({"messages": [HumanMessage(task)]}, stream_mode=["custom", "values"],
                                         subgraphs=True):
            if mode == "custom":
                print(_show(chunk))
            elif mode == "values" and chunk["messages"]:
                final = chunk
        assert final is not None
        msgs = final["messages"]
        reasoning = next(m for m in msgs if m.name == "ledom_reasoner")
        print("chosen reasoning:")
        for i, step in enumerate(reasoning.response_metadata["ledom"]["steps"], 1):
            print(f"  {i}. {step.splitlines()[0]}")
        for m in msgs:
            if isinstance(m, ToolMessage):
                print(f"tool {m.name} -> {m.content}")
        print(f"final answer: {msgs[-1].text.splitlines()[0] if msgs[-1].text else '(none)'}")


if __name__ == "__main__":
    main()
