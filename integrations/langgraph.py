"""Step-wise pruned reasoning as a LangGraph node.

:class:`LedomReasoningNode` reads the conversation from the graph state, runs the core step-level beam
search (or DVTS) with a chat model as the step generator — every kept partial chain expanded
``expansions`` ways, all partial chains of a depth scored in ONE scorer call, the best ``beam_width``
kept — and appends the chosen chain to the state as an AI message. It is :class:`LedomStepPruner` with a
state-in, state-out interface: the same search, fields and ``ledom_search`` events, which reach both
``astream_events`` (``on_custom_event``) and LangGraph's ``stream_mode="custom"`` (as
``{"name": "ledom_search", "data": {"kind", "depth", ...}}``).

Setup:
    ``pip install 'ledom-reason[langchain]'``

Example:
    >>> from langgraph.graph import MessagesState, StateGraph, START, END  # doctest: +SKIP
    >>> g = StateGraph(MessagesState)  # doctest: +SKIP
    >>> g.add_node("reason", LedomReasoningNode(model=chat_model, scorer=scorer, beam_width=2))  # doctest: +SKIP
    >>> g.add_edge(START, "reason"); g.add_edge("reason", END)  # doctest: +SKIP
    >>> for chunk in g.compile().stream({"messages": [("user", "2+3?")]}, stream_mode="custom"):  # doctest: +SKIP
    ...     print(chunk["data"]["kind"], chunk["data"]["depth"])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledom_reason._optional import require

require("langchain_core", "langchain")

from langchain_core.messages import AIMessage, AnyMessage, convert_to_messages  # noqa: E402
from langchain_core.runnables import RunnableConfig, RunnableSerializable  # noqa: E402
from pydantic import BaseModel, ConfigDict, create_model, field_validator  # noqa: E402

from ledom_reason.concurrency import run_sync  # noqa: E402
from ledom_reason.integrations._langchain_io import QUESTION_RULES, question_of_messages  # noqa: E402
from ledom_reason.integrations._langchain_runs import atraced_invoke, traced_invoke  # noqa: E402
from ledom_reason.integrations.langchain import LedomStepPruner, StepSearchOutput  # noqa: E402

__all__ = ["LedomReasoningNode"]

_NODE_FIELDS = ("messages_key", "question", "message_name", "include_trace")


class LedomReasoningNode(RunnableSerializable[dict[str, Any], dict[str, Any]]):
    """A graph node that answers the conversation's question with step-wise pruned reasoning.

    Input: the graph state (a mapping with ``messages_key``, default ``"messages"``). Output: the state
    update ``{messages_key: [AIMessage]}``: the chosen chain as content, named ``message_name``, with
    ``response_metadata["ledom"] = {"reward", "answer", "finished", "steps", "chains", "stats"}`` (plus
    ``"trace"`` with ``include_trace=True``).

    Key init args:
        model / scorer / method / beam_width / expansions / max_depth / delimiter / lam / normalize /
            aggregator / system_prompt / use_n / temperature / seed: as for :class:`LedomStepPruner`
            (or pass ``pruner=`` a configured one).
        question: which text of the conversation is the question (``"last_human"`` default,
            ``"first_human"``, ``"all_human"`` or a callable ``messages -> str``).
        messages_key: the state key holding the conversation.
        message_name: the ``name`` of the AI message written to the state.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())

    pruner: LedomStepPruner
    """The search (its fields are the node's search settings)."""
    messages_key: str = "messages"
    """State key of the conversation."""
    question: Any = "last_human"
    """``"last_human"``, ``"first_human"``, ``"all_human"`` or a callable ``messages -> str``."""
    message_name: str | None = "ledom_reasoner"
    """``name`` of the written AI message (``None``: no name)."""
    include_trace: bool = False
    """Also put every search-tree node in the message metadata (large)."""

    def __init__(self, pruner: LedomStepPruner | None = None, **kwargs: Any) -> None:
        node = {k: kwargs.pop(k) for k in _NODE_FIELDS if k in kwargs}
        if pruner is None:
            pruner = LedomStepPruner(**kwargs)
        elif kwargs:
            raise TypeError(f"pass the search settings {sorted(kwargs)} to the `pruner`, not beside it")
        super().__init__(**{"pruner": pruner, **node})

    @field_validator("question")
    @classmethod
    def _check_question(cls, v: Any) -> Any:
        if not callable(v) and v not in QUESTION_RULES:
            raise ValueError(f"`question` must be one of {list(QUESTION_RULES)} or a callable, got {v!r}")
        return v

    # ------------------------------------------------------------------------------------ schemas
    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        fields: dict[str, Any] = {self.messages_key: (list[AnyMessage], ...)}
        return create_model(self.get_name("Input"), **fields)

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return self.get_input_schema(config)

    # ------------------------------------------------------------------------------------ run
    def _question(self, state: Any) -> str:
        if not isinstance(state, Mapping) or self.messages_key not in state:
            raise ValueError(f"the node's input must be a graph state with a `{self.messages_key}` key "
                             f"(got {type(state).__name__}): set `messages_key=`")
        return question_of_messages(convert_to_messages(state[self.messages_key]), self.question)

    def _update(self, out: StepSearchOutput) -> dict[str, Any]:
        meta = out.model_dump(exclude={"text"} if self.include_trace else {"text", "trace"})
        msg = AIMessage(out.text, name=self.message_name, response_metadata={"ledom": meta})
        return {self.messages_key: [msg]}

    async def _arun(self, state: Any, config: RunnableConfig) -> dict[str, Any]:
        return self._update(await self.pruner.ainvoke(self._question(state), config))

    def _run(self, state: Any, config: RunnableConfig) -> dict[str, Any]:
        return run_sync(self._arun(state, config))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = traced_invoke(self, self._run, input, config)
        return out

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = await atraced_invoke(self, self._arun, input, config)
        return out
