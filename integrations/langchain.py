"""LangChain runnables that verify, select and prune reasoning with a reverse scorer.

Thin adapters over :mod:`ledom_reason` core: scoring is one :class:`~ledom_reason.types.Scorer` call,
rewards come from :mod:`ledom_reason.reward`, selection and search from :mod:`ledom_reason.search`.

Setup:
    ``pip install 'ledom-reason[langchain]'``

Example:
    >>> from langchain_core.language_models import FakeListChatModel  # doctest: +SKIP
    >>> from ledom_reason import ReverseScorer  # doctest: +SKIP
    >>> from ledom_reason.integrations.langchain import LedomBestOfN  # doctest: +SKIP
    >>> best = LedomBestOfN(runnable=FakeListChatModel(responses=["4", "5"]),
    ...                     scorer=ReverseScorer.from_pretrained("ledom-tiny"), n=2)  # doctest: +SKIP
    >>> best.invoke("What is 2+2?").content  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from ledom_reason._optional import require
from ledom_reason.concurrency import run_sync

require("langchain_core", "langchain")

from langchain_core.messages import BaseMessage  # noqa: E402
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable  # noqa: E402
from langchain_core.runnables.config import get_executor_for_config, merge_configs  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator  # noqa: E402

from ledom_reason.integrations._common import (  # noqa: E402
    CandidateScoringError,
    check_n,
    event_data,
    gather_all,
    pool_chains,
    scoring_error,
    text_of,
)
from ledom_reason.integrations._langchain_io import (  # noqa: E402
    Sampler,
    TokenCounter,
    parse_verifier_input,
    question_of,
    step_messages,
)
from ledom_reason.integrations._langchain_runs import (  # noqa: E402
    aemit,
    atraced_batch,
    atraced_invoke,
    emit,
    traced_batch,
    traced_invoke,
)
from ledom_reason.reward import RewardSettings, reward_settings_for, validate_reward_args  # noqa: E402
from ledom_reason.search import (  # noqa: E402
    BeamSearchConfig,
    BestOfNConfig,
    BestOfNResult,
    DVTSConfig,
    GeneratedSteps,
    SearchEvent,
    abeam_search,
    advts,
    aselect_best_of_n_batch,
    select_best_of_n_batch,
)
from ledom_reason.types import Scorer  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = [
    "BestOfNOutput",
    "CandidateScoringError",
    "LedomBestOfN",
    "LedomBestOfNMiddleware",
    "LedomReasoningNode",
    "LedomStepPruner",
    "LedomVerifier",
    "ScoredCandidate",
    "StepSearchOutput",
    "VerifierRequest",
]

# Agent pieces need `langchain` (v1) / `langgraph` beside langchain-core: imported when first used.
if TYPE_CHECKING:
    from ledom_reason.integrations.langchain_agents import LedomBestOfNMiddleware
    from ledom_reason.integrations.langgraph import LedomReasoningNode

_LAZY = {"LedomBestOfNMiddleware": "langchain_agents", "LedomReasoningNode": "langgraph"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"ledom_reason.integrations.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_MODEL_CONFIG = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())


class ScoredCandidate(BaseModel):
    """One candidate with its reward, as returned by :class:`LedomVerifier` (best first)."""

    model_config = ConfigDict(extra="forbid")

    text: str
    """The candidate text."""
    reward: float | None
    """``(1 − λ)·log P_fwd + λ·log P_rev`` with the runnable's λ and normalisation."""
    index: int
    """Position of the candidate in the input list."""
    answer: str | None = None
    """Final answer extracted from the text (``####``, ``\\boxed{}``, last number), if any."""
    p_correct: float | None = None
    """Calibrated P(correct), when the scorer has a calibration (see docs/calibration.md)."""
    score: dict[str, Any] = Field(default_factory=dict)
    """The raw :class:`~ledom_reason.types.PairScore` as a dict (log-probs, token counts)."""


class VerifierRequest(BaseModel):
    """Input of :class:`LedomVerifier` (as a dict)."""

    model_config = ConfigDict(extra="forbid")

    question: str
    candidates: list[str]


class _ScorerFields(RunnableSerializable[Any, Any]):
    """Fields shared by the runnables: the scorer and the reward settings."""

    model_config = _MODEL_CONFIG

    scorer: Scorer = Field(exclude=True)
    """Any :class:`~ledom_reason.types.Scorer` (local, remote, vLLM)."""
    lam: float | None = None
    """λ, the weight of the reverse term in [0, 1] (``< 1`` needs a scorer with a forward model); ``None``: the
    scorer's validated setting (``scorer.recommended_reward``, e.g. 0.9 for ``ReverseScorer.default(forward=True)``),
    else 1."""
    normalize: Literal["sum", "mean"] | None = None
    """``"mean"``: per-token log-probs (the default without a recommended setting, so rewards do not scale with
    length); ``"sum"``."""

    aggregator: str = "reward"
    """Core aggregator: ``reward`` (argmax), ``majority``, ``weighted``, ``random``, ``forward``."""

    @field_validator("lam")
    @classmethod
    def _check_lam(cls, v: float | None) -> float | None:
        if v is not None:
            validate_reward_args(v, "sum")
        return v

    @model_validator(mode="after")
    def _check_config(self) -> Any:
        self._bon_config()
        return self

    def _reward_settings(self) -> RewardSettings:
        return reward_settings_for(self.scorer, self.lam, self.normalize)

    def _bon_config(self) -> BestOfNConfig:
        # score_votes: a verifier always scores, so every aggregator's ranking carries rewards
        r = self._reward_settings()
        return BestOfNConfig(aggregator=self.aggregator, lam=r.lam, normalize=r.normalize,  # type: ignore[arg-type]
                             score_votes=True)


def scored_candidates(result: BestOfNResult) -> list[ScoredCandidate]:
    """The core ranking as :class:`ScoredCandidate` s (most preferred first)."""
    return [ScoredCandidate(text=r.text, reward=r.reward, index=r.index, answer=r.answer,
                            p_correct=None if r.score is None else r.score.p_correct,
                            score={} if r.score is None else r.score.to_dict()) for r in result.ranking]


# ---------------------------------------------------------------------------------------- verifier
class LedomVerifier(_ScorerFields):
    """Score candidates against their question with a reverse model and return them best first.

    Input: ``{"question": str, "candidates": list[str]}`` or ``[question, candidate, ...]`` (strings or
    messages). Output: ``list[ScoredCandidate]`` sorted by reward (ties keep input order).
    ``batch``/``abatch`` score every input's candidates in ONE scorer call.

    Key init args:
        scorer: a :class:`~ledom_reason.types.Scorer`.
        lam / normalize: reward settings (see :func:`ledom_reason.reward.reverse_reward`).

    Example:
        >>> from ledom_reason.integrations.langchain import LedomVerifier  # doctest: +SKIP
        >>> v = LedomVerifier(scorer=scorer)  # doctest: +SKIP
        >>> v.invoke({"question": "2+2?", "candidates": ["4", "5"]})[0].text  # doctest: +SKIP
    """

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return VerifierRequest

    @property
    def OutputType(self) -> Any:  # noqa: N802 (LangChain's name)
        return list[ScoredCandidate]

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> list[ScoredCandidate]:
        return self.batch([input], config, **kwargs)[0]

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> list[ScoredCandidate]:
        return (await self.abatch([input], config, **kwargs))[0]

    def batch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        # no model is called here: the sync flavour is the async one run to completion
        return traced_batch(self, lambda xs, _: run_sync(self._verify(xs, return_exceptions)), inputs, config,
                            return_exceptions=return_exceptions)

    async def abatch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
                     return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        async def run(xs: list[Any], configs: list[RunnableConfig]) -> list[Any]:
            return await self._verify(xs, return_exceptions)
        return await atraced_batch(self, run, inputs, config, return_exceptions=return_exceptions)

    async def _verify(self, xs: list[Any], keep_errors: bool) -> list[Any]:
        parsed, ok, labels = self._prepare(xs, keep_errors)
        try:
            results = await aselect_best_of_n_batch([q for q, _ in ok], [c for _, c in ok], self.scorer,
                                                    self._bon_config()) if ok else []
        except Exception as e:
            raise scoring_error(e, [c for _, cs in ok for c in cs], labels) from e
        return self._split(parsed, results)

    # All inputs go to the core in ONE scorer call: parse each, keep the good ones, split the results back.
    @staticmethod
    def _prepare(xs: list[Any], keep_errors: bool) -> tuple[list[Any], list[tuple[str, list[str]]], list[str]]:
        parsed: list[Any] = []
        for x in xs:
            try:
                parsed.append(parse_verifier_input(x))
            except (TypeError, ValueError) as e:
                if not keep_errors:
                    raise
                parsed.append(e)
        ok = [p for p in parsed if not isinstance(p, Exception)]
        labels = [f"input {j}, candidate {k}" if len(xs) > 1 else f"candidate {k}"
                  for j, p in enumerate(parsed) if not isinstance(p, Exception) for k in range(len(p[1]))]
        return parsed, ok, labels

    @staticmethod
    def _split(parsed: list[Any], results: list[BestOfNResult]) -> list[Any]:
        it = iter(results)
        return [p if isinstance(p, Exception) else scored_candidates(next(it)) for p in parsed]


# ---------------------------------------------------------------------------------------- best-of-N
class BestOfNOutput(BaseModel):
    """Full result of :class:`LedomBestOfN` (``return_details=True``)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    output: Any
    """The chosen output, as the wrapped runnable produced it (message, str, …)."""
    text: str
    """Its full text (what was scored)."""
    answer: str | None
    """The final answer extracted from that text (``####``, ``\\boxed{}``, last number), if any."""
    index: int
    """Its position among the sampled candidates."""
    reward: float | None
    """Its reward."""
    p_correct: float | None = None
    """Calibrated P(correct) of the chosen candidate, when the scorer has a calibration."""
    candidates: list[ScoredCandidate]
    """Every candidate with its reward, in sampling order."""
    stats: dict[str, Any]
    """Compute accounting (``SearchStats`` keys): generator calls and tokens, scorer calls, pairs and tokens
    scored, and the wall time of the whole call with its generation and scoring parts."""


@dataclass
class _Drawn:
    """The N outputs sampled for one input, with what sampling them cost."""

    question: str
    outs: list[Any]
    texts: list[str]
    calls: int
    tokens: int | None
    seconds: float

    @classmethod
    def of(cls, question: str, outs: list[Any], calls: int, counter: TokenCounter, seconds: float) -> _Drawn:
        return cls(question, outs, [text_of(o, f"candidate {i}") for i, o in enumerate(outs)], calls,
                   counter.generated_tokens, seconds)


class LedomBestOfN(_ScorerFields):
    """Sample N answers from any runnable (LLM, chat model, LCEL chain) and return the best one.

    Sampling: one call with ``n=N`` when the chain's language model has an ``n`` field (e.g.
    ``ChatOpenAI``), otherwise N concurrent calls, each with its own ``seed`` (base ``seed`` + i) and
    ``temperature`` when the model has those fields; ``max_concurrency`` in the config bounds them.
    Selection: the core Best-of-N (:func:`ledom_reason.search.aselect_best_of_n`) scores all N
    candidates against the question in one scorer call.

    Output: by default the chosen output itself (so ``prompt | LedomBestOfN(...) | parser`` works), with
    the details in ``response_metadata["ledom"]`` for messages and in a ``ledom_best_of_n`` custom
    event; with ``return_details=True`` a :class:`BestOfNOutput`.

    Key init args:
        runnable: what produces an answer.
        scorer: a :class:`~ledom_reason.types.Scorer`.
        n: number of samples N (configurable, e.g. ``.configurable_fields(n=ConfigurableField(id="n"))``).
        lam / normalize / aggregator: reward and selection settings.
        question_key: input key holding the question when the input is a dict.

    Example:
        >>> chain = prompt | chat_model  # doctest: +SKIP
        >>> best = LedomBestOfN(runnable=chain, scorer=scorer, n=8)  # doctest: +SKIP
        >>> msg = best.invoke({"question": "What is 2+3?"}); msg.response_metadata["ledom"]  # doctest: +SKIP
    """

    runnable: Runnable
    """The runnable that produces one answer per call."""
    n: int = 4
    """Number of samples N (>= 1)."""
    question_key: str = "question"
    """Key of the question in dict inputs (str, prompt-value and message inputs need none)."""
    use_n: bool = True
    """Use the model's ``n`` parameter when it has one (one call for N samples)."""
    temperature: float | None = 1.0
    """Temperature for the N concurrent calls (models with a ``temperature`` field); ``None``: leave it."""
    seed: int | None = 0
    """Base seed for the N concurrent calls (models with a ``seed`` field); ``None``: leave it."""
    return_details: bool = False
    """Return a :class:`BestOfNOutput` instead of the chosen output."""

    @field_validator("n")
    @classmethod
    def _check_n(cls, v: int) -> int:
        return check_n(v, "n")

    # The wrapped runnable's schemas: LangServe, `as_tool` and `get_graph` see its real fields.
    @property
    def InputType(self) -> Any:  # noqa: N802 (LangChain's name)
        return self.runnable.InputType

    @property
    def OutputType(self) -> Any:  # noqa: N802 (LangChain's name)
        return BestOfNOutput if self.return_details else self.runnable.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return cast("type[BaseModel]", self.runnable.get_input_schema(config))

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return BestOfNOutput if self.return_details else cast("type[BaseModel]", self.runnable.get_output_schema(config))

    def _sampler(self) -> Sampler:
        return Sampler(runnable=self.runnable, use_n=self.use_n, temperature=self.temperature, seed=self.seed)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.batch([input], config)[0]

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return (await self.abatch([input], config))[0]

    def batch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """Sample every input (concurrently), then score ALL candidates of all inputs in one scorer call."""
        def run(xs: list[Any], config: list[RunnableConfig]) -> list[Any]:
            t0 = time.perf_counter()

            def draw(x: Any, c: RunnableConfig) -> Any:
                try:
                    q = question_of(x, self.question_key)  # before sampling: fail fast
                    counter, t = TokenCounter(), time.perf_counter()
                    outs, calls = self._sampler().sample(x, self.n, merge_configs(c, {"callbacks": [counter]}))
                    return _Drawn.of(q, outs, calls, counter, time.perf_counter() - t)
                except Exception as e:
                    if not return_exceptions:
                        raise
                    return e
            with get_executor_for_config(config[0]) as ex:
                drawn = list(ex.map(draw, xs, config))
            ok = [d for d in drawn if not isinstance(d, Exception)]
            try:
                results = select_best_of_n_batch([d.question for d in ok], [d.texts for d in ok], self.scorer,
                                                 self._bon_config()) if ok else []
            except Exception as e:
                raise self._scoring_error(e, ok) from e
            outs = self._outputs(drawn, results, t0)
            for (_, details), c in zip(outs, config, strict=True):
                if details is not None:
                    emit("ledom_best_of_n", details, c)
            return [o for o, _ in outs]
        return traced_batch(self, run, inputs, config, return_exceptions=return_exceptions)

    async def abatch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
                     return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """Async :meth:`batch`; cancelling it cancels every pending model call."""
        async def run(xs: list[Any], config: list[RunnableConfig]) -> list[Any]:
            t0 = time.perf_counter()

            async def draw(x: Any, c: RunnableConfig) -> Any:
                try:
                    q = question_of(x, self.question_key)
                    counter, t = TokenCounter(), time.perf_counter()
                    outs, calls = await self._sampler().asample(x, self.n, merge_configs(c, {"callbacks": [counter]}))
                    return _Drawn.of(q, outs, calls, counter, time.perf_counter() - t)
                except Exception as e:
                    if not return_exceptions:
                        raise
                    return e
            drawn = await gather_all([functools.partial(draw, x, c) for x, c in zip(xs, config, strict=True)],
                                     config[0].get("max_concurrency"))
            ok = [d for d in drawn if not isinstance(d, Exception)]
            try:
                results = await aselect_best_of_n_batch([d.question for d in ok], [d.texts for d in ok],
                                                        self.scorer, self._bon_config()) if ok else []
            except Exception as e:
                raise self._scoring_error(e, ok) from e
            outs = self._outputs(drawn, results, t0)
            for (_, details), c in zip(outs, config, strict=True):
                if details is not None:
                    await aemit("ledom_best_of_n", details, c)
            return [o for o, _ in outs]
        return await atraced_batch(self, run, inputs, config, return_exceptions=return_exceptions)

    @staticmethod
    def _scoring_error(e: Exception, ok: list[_Drawn]) -> Exception:
        if isinstance(e, CandidateScoringError):
            return e
        labels = [f"input {j}, candidate {k}" if len(ok) > 1 else f"candidate {k}"
                  for j, d in enumerate(ok) for k in range(len(d.texts))]
        return scoring_error(e, [t for d in ok for t in d.texts], labels)

    def _outputs(self, drawn: list[Any], results: list[BestOfNResult],
                 t0: float) -> list[tuple[Any, dict[str, Any] | None]]:
        it = iter(results)
        wall = time.perf_counter() - t0  # the whole batch call: sampling, scoring, selection
        return [(d, None) if isinstance(d, Exception) else self._output(d, next(it), wall) for d in drawn]

    def _output(self, drawn: _Drawn, result: BestOfNResult, wall: float) -> tuple[Any, dict[str, Any]]:
        cands = sorted(scored_candidates(result), key=lambda c: c.index)
        result.stats.add_generation(drawn.calls, drawn.tokens, drawn.seconds)
        result.stats.wall_time_s = wall
        stats = result.stats.to_dict()
        chosen_c = cands[result.index]
        details: dict[str, Any] = {"index": result.index, "answer": result.answer, "reward": chosen_c.reward,
                   "p_correct": chosen_c.p_correct, "aggregator": result.aggregator,
                   "rewards": [c.reward for c in cands], "stats": stats}
        chosen = drawn.outs[result.index]
        if self.return_details:
            return BestOfNOutput(output=chosen, text=result.text, answer=result.answer, index=result.index,
                                 reward=chosen_c.reward, p_correct=chosen_c.p_correct, candidates=cands,
                                 stats=stats), details
        if isinstance(chosen, BaseMessage):
            chosen = chosen.model_copy(update={"response_metadata": {**chosen.response_metadata, "ledom": details}})
        return chosen, details


# ---------------------------------------------------------------------------------------- step pruning
DEFAULT_STEP_PROMPT = (
    "Solve the problem step by step. Reply with ONLY the next step of the solution (one short paragraph). "
    "When the solution is complete, give the final answer on a line starting with '####'."
)


class StepSearchOutput(BaseModel):
    """Result of :class:`LedomStepPruner`."""

    model_config = ConfigDict(extra="forbid")

    text: str
    """The chosen reasoning chain (steps joined by the delimiter)."""
    steps: list[str]
    """Its steps."""
    answer: str | None
    """Its final answer (``None`` when no chain reached one within ``max_depth``)."""
    reward: float | None
    """Its reward."""
    finished: bool
    """Whether the chosen chain contains a final answer."""
    chains: list[dict[str, Any]]
    """The final pool the choice was made from: ``{"text", "answer", "reward", "finished"}``, best first."""
    stats: dict[str, Any]
    """Compute accounting (core ``SearchStats`` plus ``model_calls``, the chat-model calls made)."""
    trace: list[dict[str, Any]] = Field(default_factory=list)
    """Every node of the search tree (core ``TraceNode.to_dict()``)."""


class LedomStepPruner(_ScorerFields):
    """Step-wise chain-of-thought pruning for agents: the core beam search / DVTS with a chat model as
    the step generator, progress streamed as LangChain custom events.

    At each depth the model proposes ``expansions`` next steps for every kept partial chain (one ``n=``
    call when the model supports it, else concurrent calls with distinct seeds); the core search scores
    all partial chains against the question in ONE scorer call and keeps the best ``beam_width``.
    Each search event is dispatched as a ``ledom_search`` custom event (see ``astream_events``).

    Key init args:
        model: a chat model (or any runnable taking messages and returning a message/str).
        scorer: a :class:`~ledom_reason.types.Scorer`.
        method: ``"beam"`` (step-level beam search) or ``"dvts"`` (independent subtrees).
        beam_width / expansions / max_depth: search shape (configurable fields).

    Example:
        >>> pruner = LedomStepPruner(model=chat_model, scorer=scorer, beam_width=4)  # doctest: +SKIP
        >>> out = pruner.invoke("What is 2+3?"); out.answer, out.stats  # doctest: +SKIP
    """

    model: Runnable
    """The step generator."""
    method: Literal["beam", "dvts"] = "beam"
    """Search method."""
    beam_width: int = 2
    """Partial chains kept per depth (beam) / number of subtrees (DVTS)."""
    expansions: int = 2
    """Next-step samples per kept chain."""
    max_depth: int = 6
    """Maximum number of steps."""
    delimiter: str = "\n\n"
    """Step separator inside a chain."""
    question_key: str = "question"
    """Key of the question in dict inputs."""
    system_prompt: str = DEFAULT_STEP_PROMPT
    """System message asking the model for one next step."""
    use_n: bool = True
    """Use the model's ``n`` parameter when it has one."""
    temperature: float | None = 1.0
    """Temperature of the concurrent step samples (models with a ``temperature`` field)."""
    seed: int | None = 0
    """Base seed of the concurrent step samples (models with a ``seed`` field)."""

    @field_validator("beam_width", "expansions", "max_depth")
    @classmethod
    def _positive(cls, v: int, info: Any) -> int:
        return check_n(v, info.field_name)

    @property
    def InputType(self) -> Any:  # noqa: N802 (LangChain's name)
        return str | dict[str, Any] | list[BaseMessage]

    @property
    def OutputType(self) -> Any:  # noqa: N802 (LangChain's name)
        return StepSearchOutput

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        """``{question_key: str}`` (a str or a list of messages is accepted too); ``as_tool`` takes its args."""
        fields: dict[str, Any] = {self.question_key: (str, Field(description="the problem to solve step by step"))}
        return create_model(self.get_name("Input"), **fields)

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return StepSearchOutput

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> StepSearchOutput:
        out: StepSearchOutput = traced_invoke(self, self._invoke, input, config)
        return out

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> StepSearchOutput:
        out: StepSearchOutput = await atraced_invoke(self, self._search, input, config)
        return out

    def _invoke(self, input_: Any, config: RunnableConfig) -> StepSearchOutput:
        return run_sync(self._search(input_, config))

    @model_validator(mode="after")
    def _check_config(self) -> Any:
        self._search_config()
        return self

    def _search_config(self) -> BeamSearchConfig | DVTSConfig:
        common: dict[str, Any] = {"expansions": self.expansions, "max_depth": self.max_depth,
                                  "delimiter": self.delimiter, "lam": self._reward_settings().lam,
                                  "normalize": self._reward_settings().normalize,
                                  "aggregator": self.aggregator}
        if self.method == "beam":
            return BeamSearchConfig(beam_width=self.beam_width, **common)
        return DVTSConfig(budget=self.beam_width * self.expansions, **common)  # beam_width subtrees

    async def _search(self, input_: Any, config: RunnableConfig) -> StepSearchOutput:
        question = question_of(input_, self.question_key)
        sampler = Sampler(runnable=self.model, use_n=self.use_n, temperature=self.temperature, seed=self.seed)
        model_calls = 0

        async def generate(q: str, partial_chain: str, n: int) -> list[str]:
            nonlocal model_calls
            counter = TokenCounter()
            outs, calls = await sampler.asample(step_messages(self.system_prompt, q, partial_chain), n,
                                                merge_configs(config, {"callbacks": [counter]}))
            model_calls += calls
            return GeneratedSteps([text_of(o, f"step candidate {i}") for i, o in enumerate(outs)],
                                  counter.generated_tokens)

        async def on_event(ev: SearchEvent) -> None:
            await aemit("ledom_search", event_data(ev), config)

        cfg = self._search_config()
        if isinstance(cfg, BeamSearchConfig):
            result = await abeam_search(question, generate, self.scorer, cfg, on_event=on_event)
        else:
            result = await advts(question, generate, self.scorer, cfg, on_event=on_event)
        return StepSearchOutput(text=result.text, steps=result.steps, answer=result.answer, reward=result.reward,
                                finished=result.finished, chains=pool_chains(result, self.delimiter),
                                stats={**result.stats.to_dict(), "model_calls": model_calls},
                                trace=[n.to_dict() for n in result.trace])
