"""Best-of-N for LangChain v1 agents: a ``create_agent`` middleware that samples the model N times per turn
and keeps the answer the reverse scorer ranks first.

Setup:
    ``pip install 'ledom-reason[langchain]'`` (``langchain>=1``; also exported by
    :mod:`ledom_reason.integrations.langchain`)

Example:
    >>> from langchain.agents import create_agent  # doctest: +SKIP
    >>> from ledom_reason.integrations.langchain import LedomBestOfNMiddleware  # doctest: +SKIP
    >>> agent = create_agent(model, tools=[calculator],
    ...                      middleware=[LedomBestOfNMiddleware(scorer=scorer, n=4)])  # doctest: +SKIP
    >>> out = agent.invoke({"messages": [("user", "What is 17 * 23?")]})  # doctest: +SKIP
    >>> out["messages"][-1].response_metadata["ledom"]["rewards"]  # doctest: +SKIP

Decisions (see docs/integrations.md, *Agents*):

* **The question** of a turn is, by default, the text of the last human message of the conversation (the
  turn the model is answering; AI, tool and system messages are context, not the question).
  ``question="first_human"`` takes the first one, ``"all_human"`` joins every human message (follow-ups that
  only make sense with earlier turns), or pass a callable ``messages -> str``.
* **Tool-call turns** (``tool_calls="pass"``, default): the turn's kind is the kind of candidate 0 (the
  request as the agent made it, with the first seed). When candidate 0 calls a tool, it is returned
  unchanged — tool calls are not answers to verify — and marked ``verified: False``. Otherwise the
  final-answer candidates among the N are ranked and candidates that call tools are left out.
  ``tool_calls="rank"`` ranks every candidate, a tool call scored as its text plus ``name(args)`` lines.
* **Sampling**: when the model has an ``n`` field (e.g. ``ChatOpenAI``) and the agent has no
  ``response_format``, ONE handler call with ``n=N`` (the N generations are read from the model's
  ``on_llm_end`` callback); otherwise N handler calls — concurrent threads in ``wrap_model_call``, asyncio
  tasks in ``awrap_model_call`` — each with a copy of the model with ``seed + i`` / ``temperature`` where
  it has those fields. Candidate calls are tagged ``nostream`` and run with ``disable_streaming=True``, so
  ``stream_mode="messages"`` shows the chosen message once, whole, instead of N interleaved candidates
  (``stream_candidates=True`` streams every candidate's tokens instead).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from ledom_reason._optional import require

require("langchain", "langchain")

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse  # noqa: E402
from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager  # noqa: E402
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage  # noqa: E402
from langchain_core.outputs import LLMResult  # noqa: E402
from langchain_core.runnables.config import get_executor_for_config  # noqa: E402

from ledom_reason.integrations._common import check_n, gather_all, scoring_error  # noqa: E402
from ledom_reason.integrations._langchain_io import QuestionRule, question_of_messages  # noqa: E402
from ledom_reason.integrations._langchain_runs import aemit, emit  # noqa: E402
from ledom_reason.reward import Normalize, validate_reward_args  # noqa: E402
from ledom_reason.search import BestOfNConfig, BestOfNResult, aselect_best_of_n, select_best_of_n  # noqa: E402
from ledom_reason.types import Scorer  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["LedomBestOfNMiddleware", "question_of_messages"]

Handler = Callable[[ModelRequest], ModelResponse]
AHandler = Callable[[ModelRequest], Awaitable[ModelResponse]]
NOSTREAM = "nostream"  # LangGraph's TAG_NOSTREAM: token streaming skips runs carrying it


class _Generations(BaseCallbackHandler):
    """Keeps every generation of one model call (``invoke`` returns only the first of ``n``)."""

    def __init__(self) -> None:
        self.messages: list[BaseMessage] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for gens in response.generations:
            self.messages.extend(g.message for g in gens if hasattr(g, "message"))


def _with_handler(callbacks: Any, handler: BaseCallbackHandler) -> Any:
    if isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
        manager.add_handler(handler, inherit=False)
        return manager
    return [*(callbacks or []), handler]


def _ai_message(resp: ModelResponse) -> AIMessage | None:
    return next((m for m in resp.result if isinstance(m, AIMessage)), None)


class LedomBestOfNMiddleware(AgentMiddleware[AgentState[Any], Any]):
    """Sample the agent's model N times per turn, score each candidate's text against the conversation's
    question with a reverse scorer (one scorer call), and return the best :class:`ModelResponse`.

    The chosen AI message carries ``response_metadata["ledom"] = {"verified", "index", "reward", "rewards",
    "kinds", "answer", "question", "aggregator", "stats"}`` (``rewards``/``kinds`` in sampling order,
    ``None`` for candidates not scored; ``stats`` = the core ``SearchStats`` plus ``generator_calls``) and
    the same dict is sent as a ``ledom_best_of_n`` custom event (LangChain callbacks and LangGraph's
    ``stream_mode="custom"`` as ``{"name": "ledom_best_of_n", "data": ...}``).

    Key init args:
        scorer: a :class:`~ledom_reason.types.Scorer`.
        n: candidates per turn (>= 1).
        lam / normalize / aggregator: reward and selection settings (``BestOfNConfig``).
        question: which text is the question (``"last_human"``, ``"first_human"``, ``"all_human"`` or a
            callable ``messages -> str``).
        tool_calls: ``"pass"`` (verify final answers only) or ``"rank"`` (rank tool calls too).
        use_n / temperature / seed / max_concurrency / stream_candidates: sampling (module docstring).
    """

    def __init__(self, scorer: Scorer, n: int = 4, *, lam: float = 1.0, normalize: Normalize = "mean",
                 aggregator: str = "reward", question: QuestionRule = "last_human",
                 tool_calls: Literal["pass", "rank"] = "pass", use_n: bool = True,
                 temperature: float | None = 1.0, seed: int | None = 0, max_concurrency: int | None = None,
                 stream_candidates: bool = False) -> None:
        super().__init__()
        if not callable(getattr(scorer, "score", None)):
            raise TypeError(f"`scorer` must implement score()/ascore(), got {type(scorer).__name__}")
        validate_reward_args(lam, normalize)
        if tool_calls not in ("pass", "rank"):
            raise ValueError(f"`tool_calls` must be 'pass' or 'rank', got {tool_calls!r}")
        if not callable(question) and question not in ("last_human", "first_human", "all_human"):
            raise ValueError("`question` must be 'last_human', 'first_human', 'all_human' or a callable, "
                             f"got {question!r}")
        if max_concurrency is not None:
            check_n(max_concurrency, "max_concurrency")
        self.scorer = scorer
        self.n = check_n(n, "n")
        self.config = BestOfNConfig(aggregator=aggregator, lam=lam, normalize=normalize,  # type: ignore[arg-type]
                                    score_votes=True)
        self.question = question
        self.tool_calls = tool_calls
        self.use_n = use_n
        self.temperature = temperature
        self.seed = seed
        self.max_concurrency = max_concurrency
        self.stream_candidates = stream_candidates

    # ------------------------------------------------------------------------------------ requests
    def _copy(self, model: BaseChatModel, i: int, **update: Any) -> BaseChatModel:
        fields = type(model).model_fields
        if "seed" in fields and self.seed is not None:
            update["seed"] = self.seed + i
        if "temperature" in fields and self.temperature is not None:
            update["temperature"] = self.temperature
        if not self.stream_candidates:  # nobody sees a candidate's tokens: generate it whole
            update["tags"] = [*(model.tags or []), NOSTREAM]
            if "disable_streaming" in fields:
                update["disable_streaming"] = True
        return model.model_copy(update=update) if update else model

    def _requests(self, request: ModelRequest, k: int, start: int = 0) -> list[ModelRequest]:
        if not isinstance(request.model, BaseChatModel):  # e.g. a configurable model: call it as it is
            return [request] * k
        return [request.override(model=self._copy(request.model, start + i)) for i in range(k)]

    def _n_request(self, request: ModelRequest) -> tuple[ModelRequest, _Generations] | None:
        model = request.model
        if not (self.use_n and self.n > 1 and request.response_format is None and isinstance(model, BaseChatModel)
                and "n" in type(model).model_fields):
            return None
        gens = _Generations()
        copy = self._copy(model, 0, n=self.n, callbacks=_with_handler(model.callbacks, gens))
        return request.override(model=copy), gens

    def _from_n_call(self, first: ModelResponse, gens: _Generations) -> list[ModelResponse]:
        msg = _ai_message(first)
        out = [first]
        for m in gens.messages[1:self.n]:
            if isinstance(m, AIMessage) and msg is not None and msg.name and not m.name:
                m = m.model_copy(update={"name": msg.name})  # the agent names its messages
            out.append(ModelResponse(result=[m]))
        return out

    def _draw(self, request: ModelRequest, handler: Handler) -> tuple[list[ModelResponse], int]:
        """N candidates and the number of handler calls made."""
        responses: list[ModelResponse] = []
        if (nr := self._n_request(request)) is not None:
            responses = self._from_n_call(handler(nr[0]), nr[1])
        rest = self._requests(request, self.n - len(responses), start=len(responses))
        if rest:  # a context-copying pool: each call sees the graph's run config, as the handler expects
            with get_executor_for_config({"max_concurrency": self.max_concurrency or len(rest)}) as ex:
                responses += list(ex.map(handler, rest))
        return responses, len(rest) + (nr is not None)

    async def _adraw(self, request: ModelRequest, handler: AHandler) -> tuple[list[ModelResponse], int]:
        responses: list[ModelResponse] = []
        if (nr := self._n_request(request)) is not None:
            responses = self._from_n_call(await handler(nr[0]), nr[1])
        rest = self._requests(request, self.n - len(responses), start=len(responses))
        if rest:
            responses += await gather_all([functools.partial(handler, r) for r in rest], self.max_concurrency)
        return responses, len(rest) + (nr is not None)

    # ------------------------------------------------------------------------------------ candidates
    @staticmethod
    def _kind_and_text(resp: ModelResponse) -> tuple[str, str]:
        """``("final" | "tool", text)`` of a candidate; text is ``""`` when it has none."""
        if resp.structured_response is not None:
            s = resp.structured_response
            dumped = s.model_dump_json() if hasattr(s, "model_dump_json") else json.dumps(s, default=str)
            return "final", dumped
        msg = _ai_message(resp)
        if msg is None:
            return "final", ""
        text = msg.text
        if msg.tool_calls:
            calls = "\n".join(f"{c['name']}({json.dumps(c['args'], sort_keys=True)})" for c in msg.tool_calls)
            return "tool", f"{text}\n{calls}".strip()
        return "final", text

    def _pool(self, responses: list[ModelResponse]) -> tuple[list[str], list[str | None], str | None]:
        """Candidate kinds, the text to score per candidate (``None``: not scored), and a skip reason."""
        kt = [self._kind_and_text(r) for r in responses]
        kinds = [k for k, _ in kt]
        if self.tool_calls == "pass" and kinds[0] == "tool":
            return kinds, [None] * len(kt), "tool_calls"
        texts = [t if t.strip() and (self.tool_calls == "rank" or k == "final") else None for k, t in kt]
        if all(t is None for t in texts):
            return kinds, texts, "no_text"
        return kinds, texts, None

    def _details(self, question: str, kinds: list[str], texts: list[str | None], calls: int,
                 result: BestOfNResult | None, skipped: str | None) -> tuple[int, dict[str, Any]]:
        scored = [i for i, t in enumerate(texts) if t is not None]
        base: dict[str, Any] = {"question": question, "kinds": kinds, "aggregator": self.config.aggregator}
        if result is None:
            return 0, {**base, "verified": False, "skipped": skipped, "index": 0, "reward": None,
                       "rewards": [None] * len(kinds), "answer": None,
                       "stats": {"generator_calls": calls}}
        by_index = {scored[r.index]: r.reward for r in result.ranking}
        chosen = scored[result.index]
        return chosen, {**base, "verified": True, "index": chosen, "reward": by_index[chosen],
                        "rewards": [by_index.get(i) for i in range(len(kinds))], "answer": result.answer,
                        "stats": {**result.stats.to_dict(), "generator_calls": calls}}

    @staticmethod
    def _annotate(resp: ModelResponse, details: dict[str, Any]) -> ModelResponse:
        result = [m.model_copy(update={"response_metadata": {**m.response_metadata, "ledom": details}})
                  if isinstance(m, AIMessage) and m is _ai_message(resp) else m for m in resp.result]
        return ModelResponse(result=result, structured_response=resp.structured_response)

    @staticmethod
    def _writer(request: ModelRequest) -> Callable[[Any], None] | None:
        runtime = getattr(request, "runtime", None)
        return getattr(runtime, "stream_writer", None)

    def _event(self, request: ModelRequest, details: dict[str, Any]) -> None:
        try:
            emit("ledom_best_of_n", details, None, writer=self._writer(request))
        except RuntimeError:  # called outside any run (no parent run to attach a LangChain event to)
            logger.debug("ledom_best_of_n event not dispatched: no parent run")

    async def _aevent(self, request: ModelRequest, details: dict[str, Any]) -> None:
        try:
            await aemit("ledom_best_of_n", details, None, writer=self._writer(request))
        except RuntimeError:
            logger.debug("ledom_best_of_n event not dispatched: no parent run")

    # ------------------------------------------------------------------------------------ hooks
    def wrap_model_call(self, request: ModelRequest, handler: Handler) -> ModelResponse:
        """Draw N candidates (threads), score them in one scorer call, return the best."""
        question = question_of_messages(request.messages, self.question)  # fail before any model call
        responses, calls = self._draw(request, handler)
        kinds, texts, skipped = self._pool(responses)
        result = None
        if skipped is None:
            todo = [t for t in texts if t is not None]
            try:
                result = select_best_of_n(question, todo, self.scorer, self.config)
            except Exception as e:
                raise scoring_error(e, todo) from e
        i, details = self._details(question, kinds, texts, calls, result, skipped)
        self._event(request, details)
        return self._annotate(responses[i], details)

    async def awrap_model_call(self, request: ModelRequest, handler: AHandler) -> ModelResponse:
        """Draw N candidates concurrently (asyncio), score them in one scorer call, return the best."""
        question = question_of_messages(request.messages, self.question)
        responses, calls = await self._adraw(request, handler)
        kinds, texts, skipped = self._pool(responses)
        result = None
        if skipped is None:
            todo = [t for t in texts if t is not None]
            try:
                result = await aselect_best_of_n(question, todo, self.scorer, self.config)
            except Exception as e:
                raise scoring_error(e, todo) from e
        i, details = self._details(question, kinds, texts, calls, result, skipped)
        await self._aevent(request, details)
        return self._annotate(responses[i], details)
