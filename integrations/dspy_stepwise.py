"""Step-wise ChainOfThought for DSPy: grow the rationale one step at a time, prune partial rationales
with the reverse scorer.

A DSPy predictor proposes the next reasoning step given the inputs and the rationale so far; the core
step-level search (:func:`ledom_reason.search.abeam_search`, or :func:`~ledom_reason.search.advts`)
scores every partial rationale against the question in ONE scorer call per depth and keeps the best;
a second predictor then fills the signature's output fields from the chosen rationale. This module only
adapts DSPy predictors to the core's step-generator protocol ``async (question, partial_chain, n) ->
list[str]``; expansion, scoring, pruning and the final pick are the core's.

Setup:
    ``pip install 'ledom-reason[dspy]'``

Example:
    >>> import dspy  # doctest: +SKIP
    >>> from ledom_reason.integrations.dspy_stepwise import LedomStepwiseCoT  # doctest: +SKIP
    >>> cot = LedomStepwiseCoT("question -> answer", scorer=scorer, beam_width=4, expansions=2)  # doctest: +SKIP
    >>> pred = cot(question="What is 2+3?"); pred.reasoning, pred.answer, pred.ledom["stats"]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from ledom_reason._optional import require
from ledom_reason.concurrency import run_sync

require("dspy", "dspy")

import dspy  # noqa: E402

from ledom_reason.integrations._common import Shared, check_n, gather_all, pool_chains, scoring_error  # noqa: E402
from ledom_reason.reward import Normalize  # noqa: E402
from ledom_reason.search import (  # noqa: E402
    AnswerExtractor,
    BeamSearchConfig,
    DVTSConfig,
    EventHook,
    GeneratedSteps,
    SearchResult,
    abeam_search,
    advts,
)
from ledom_reason.types import PairLike, PairScore, Scorer  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["STEP_INSTRUCTIONS", "LedomStepwiseCoT"]

STEP_INSTRUCTIONS = (
    "Solve the task step by step, but write ONLY the next step of the reasoning (one short paragraph) that "
    "continues `reasoning_so_far` (empty at the start). When the reasoning reaches the final answer, end the "
    "step with a line '#### <final answer>'."
)
"""Appended to the signature's own instructions for the step predictor."""

Sample = tuple[str, list[Any], int | None] | BaseException
"""``(step text, DSPy trace of that call, completion tokens it reported or None)`` of one step sample, or what
it raised."""


def completion_tokens(pred: Any) -> int | None:
    """Completion tokens DSPy's usage tracker recorded for the call that made ``pred`` (``None``: unknown)."""
    usage = pred.get_lm_usage() if callable(getattr(pred, "get_lm_usage", None)) else None
    if not usage:
        return None
    total = 0
    for entry in usage.values():
        n = entry.get("completion_tokens", entry.get("output_tokens")) if isinstance(entry, Mapping) else None
        if not isinstance(n, int):
            return None
        total += n
    return total


def _base_signature(signature: Any, reasoning_field: str) -> Any:
    """The task signature (inputs → outputs, without a rationale) of a signature, Predict or ChainOfThought."""
    if isinstance(signature, dspy.ChainOfThought):
        signature = signature.predict.signature
    elif isinstance(signature, dspy.Predict):
        signature = signature.signature
    elif not (isinstance(signature, str) or (isinstance(signature, type) and issubclass(signature, dspy.Signature))):
        raise TypeError("`signature` must be a str ('question -> answer'), a dspy.Signature, a dspy.Predict or "
                        f"a dspy.ChainOfThought, got {type(signature).__name__}")
    sig = dspy.ensure_signature(signature)
    if reasoning_field in sig.output_fields:  # a ChainOfThought signature: the search writes the rationale
        sig = sig.delete(reasoning_field)
    return sig


class LedomStepwiseCoT(dspy.Module):
    """ChainOfThought whose rationale is searched step by step and pruned by the reverse scorer.

    At each depth the step predictor (``self.step``: the signature's inputs + ``reasoning_so_far`` →
    ``next_step``) is called ``expansions`` times for every kept partial rationale, concurrently and each
    with its own ``rollout_id`` (as :class:`dspy.BestOfN` does); the core search scores all new partial
    rationales against ``question_field`` in ONE scorer call and keeps the best ``beam_width``. A step whose
    text has a final answer (``extract_answer``; default ``#### …`` or ``\\boxed{…}``) ends its chain. The
    answer predictor (``self.answer``: the signature's inputs + ``reasoning`` → its outputs) then fills the
    output fields from the chosen rationale — one more LM call.

    The returned :class:`dspy.Prediction` has ``reasoning`` (the chosen rationale), the signature's output
    fields, and ``ledom = {"reward", "answer", "finished", "steps", "chains", "stats", "trace"}``: the
    chosen chain's reward and searched answer (``None`` when no chain reached one), the final pool as
    ``{"text", "answer", "reward", "finished"}`` best first, the core :class:`SearchStats` plus
    ``predictor_calls`` (step samples + the answer call; adapter retries not counted) and
    ``failed_steps``, and every node of the search tree. Under an optimizer only the chosen chain's step
    calls and the answer call enter ``dspy.settings.trace``. A ``config=`` passed to the call goes to
    every predictor call (the step samples' ``rollout_id`` and ``temperature`` are set on top).

    Key init args:
        signature: ``"question -> answer"``, a :class:`dspy.Signature`, or a ``dspy.Predict`` /
            ``dspy.ChainOfThought`` (only its signature is used; a ``reasoning`` output is dropped).
        scorer: a :class:`~ledom_reason.types.Scorer`.
        method: ``"beam"`` (core beam search) or ``"dvts"`` (``beam_width`` independent greedy subtrees).
        beam_width / expansions / max_depth / delimiter: search shape (see ``BeamSearchConfig``).
        question_field: the input field scored as the question.
        lam / normalize / aggregator / extract_answer: reward, final pick and stop rule.
        temperature: temperature of the step samples.
        fail_count: step samples allowed to fail (default: any, as long as one chain is scored); a failed
            sample becomes an empty step, which the search never scores.
        max_workers: threads for ``forward``'s step calls (default ``beam_width * expansions``).
        on_event: optional hook receiving the core :class:`~ledom_reason.search.SearchEvent` s.

    Example:
        >>> cot = LedomStepwiseCoT("question -> answer", scorer=scorer, beam_width=2)  # doctest: +SKIP
        >>> pred = cot(question="What is 2+3?")  # doctest: +SKIP
        >>> pred.answer, pred.reasoning, pred.ledom["reward"]  # doctest: +SKIP
    """

    def __init__(self, signature: Any, scorer: Scorer, *, method: Literal["beam", "dvts"] = "beam",
                 beam_width: int = 2, expansions: int = 2, max_depth: int = 6, delimiter: str = "\n\n",
                 question_field: str = "question", reasoning_field: str = "reasoning", lam: float = 1.0,
                 normalize: Normalize = "mean", aggregator: str = "reward",
                 extract_answer: AnswerExtractor | None = None, temperature: float = 1.0,
                 fail_count: int | None = None, max_workers: int | None = None,
                 on_event: EventHook | None = None) -> None:
        super().__init__()
        if not (callable(getattr(scorer, "score", None)) or callable(getattr(scorer, "ascore", None))):
            raise TypeError(f"`scorer` must implement score()/ascore(), got {type(scorer).__name__}")
        if method not in ("beam", "dvts"):
            raise ValueError(f"`method` must be 'beam' or 'dvts', got {method!r}")
        if fail_count is not None and (isinstance(fail_count, bool) or not isinstance(fail_count, int) or fail_count < 0):
            raise ValueError(f"`fail_count` must be an int >= 0, got {fail_count!r}")
        sig = _base_signature(signature, reasoning_field)
        if question_field not in sig.input_fields:
            raise ValueError(f"`question_field` {question_field!r} is not an input of the signature "
                             f"(inputs: {list(sig.input_fields)})")
        if not sig.output_fields:
            raise ValueError("`signature` needs at least one output field besides the rationale")
        if reasoning_field in sig.input_fields:
            raise ValueError(f"`reasoning_field` {reasoning_field!r} is already an input of the signature")
        step_sig = sig
        for name in list(sig.output_fields):
            step_sig = step_sig.delete(name)
        step_sig = (step_sig
                    .append("reasoning_so_far", dspy.InputField(desc="the reasoning steps written so far"), type_=str)
                    .append("next_step", dspy.OutputField(desc="only the next reasoning step"), type_=str)
                    .with_instructions(f"{sig.instructions}\n\n{STEP_INSTRUCTIONS}"))
        self.step = dspy.Predict(step_sig)
        self.answer = dspy.Predict(sig.append(reasoning_field, dspy.InputField(
            desc="step-by-step reasoning that leads to the outputs"), type_=str))
        self._scorer = Shared(scorer)  # shared, not duplicated, when DSPy deep-copies a program
        self.method = method
        self.beam_width = check_n(beam_width, "beam_width")
        self.expansions = check_n(expansions, "expansions")
        self.max_depth = max_depth
        self.delimiter = delimiter
        self.question_field = question_field
        self.reasoning_field = reasoning_field
        self.lam = lam
        self.normalize = normalize
        self.aggregator = aggregator
        self.extract_answer = extract_answer
        self.temperature = temperature
        self.fail_count = fail_count
        self.max_workers = max_workers
        self.on_event = on_event
        self._config()  # validate the search settings now, not after the first LM calls

    @property
    def scorer(self) -> Scorer:
        """The scorer (shared by copies, never saved with a program: see ``attach_scorer``)."""
        scorer: Scorer = self._scorer.get()
        return scorer

    @scorer.setter
    def scorer(self, scorer: Scorer) -> None:
        self._scorer.attach(scorer)

    def _config(self) -> BeamSearchConfig | DVTSConfig:
        common: dict[str, Any] = {"expansions": self.expansions, "max_depth": self.max_depth,
                                  "delimiter": self.delimiter, "lam": self.lam, "normalize": self.normalize,
                                  "aggregator": self.aggregator, "extract_answer": self.extract_answer}
        if self.method == "beam":
            return BeamSearchConfig(beam_width=self.beam_width, **common)
        return DVTSConfig(budget=self.beam_width * self.expansions, **common)  # beam_width subtrees

    def _inputs(self, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """``(question, inputs, config)`` of a call; ``ValueError`` for a missing or empty input."""
        config = kwargs.pop("config", None) or {}
        missing = [f for f in self.answer.signature.input_fields if f != self.reasoning_field and f not in kwargs]
        if self.question_field in missing:
            raise ValueError(f"input has no `{self.question_field}` field: set `question_field=` to your "
                             "signature's question input")
        if missing:
            raise ValueError(f"missing input field(s) {missing} of the signature")
        question = kwargs[self.question_field]
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"`{self.question_field}` must be a non-empty str, got {question!r}")
        return question, kwargs, dict(config)

    # ------------------------------------------------------------------------------------ step calls
    def _first_rollout(self) -> int:
        lm = getattr(self.step, "lm", None) or dspy.settings.lm
        if lm is None:
            raise ValueError("no LM: configure one with dspy.configure(lm=...) or module.set_lm(...)")
        return int(lm.kwargs.get("rollout_id") or 0)

    def _sample(self, inputs: dict[str, Any], config: dict[str, Any], chain: str, rollout: int) -> Sample:
        try:
            with dspy.context(trace=[], track_usage=True):  # usage per call, for the accounting
                cfg = {**config, "rollout_id": rollout, "temperature": self.temperature}
                pred = self.step(**inputs, reasoning_so_far=chain, config=cfg)
                return str(pred.next_step), list(dspy.settings.trace), completion_tokens(pred)
        except Exception as e:  # counted against `fail_count` in _Run.steps
            return e

    async def _asample(self, inputs: dict[str, Any], config: dict[str, Any], chain: str, rollout: int) -> Sample:
        try:
            with dspy.context(trace=[], track_usage=True):
                cfg = {**config, "rollout_id": rollout, "temperature": self.temperature}
                pred = await self.step.acall(**inputs, reasoning_so_far=chain, config=cfg)
                return str(pred.next_step), list(dspy.settings.trace), completion_tokens(pred)
        except Exception as e:  # counted against `fail_count` in _Run.steps
            return e

    # ------------------------------------------------------------------------------------ forward
    def forward(self, **kwargs: Any) -> Any:
        """Search the rationale (step calls in a thread pool) and answer from the best one."""
        question, inputs, config = self._inputs(kwargs)  # fail before any LM call
        first = self._first_rollout()
        with ThreadPoolExecutor(max_workers=self.max_workers or self.beam_width * self.expansions) as ex:
            def call(chain: str, rollout: int) -> asyncio.Future[Sample]:
                fn = functools.partial(self._sample, inputs, config, chain, rollout)
                return asyncio.get_running_loop().run_in_executor(ex, contextvars.copy_context().run, fn)

            run = _Run(self, question, call, first)
            result = run_sync(run.search())
        run.add_trace(result)
        pred = self.answer(**inputs, **{self.reasoning_field: result.text}, config=config)
        return run.finish(result, pred)

    async def aforward(self, **kwargs: Any) -> Any:
        """Search the rationale (step calls concurrent with asyncio) and answer from the best one."""
        question, inputs, config = self._inputs(kwargs)
        first = self._first_rollout()

        def call(chain: str, rollout: int) -> Any:
            return self._asample(inputs, config, chain, rollout)

        run = _Run(self, question, call, first)
        result = await run.search()
        run.add_trace(result)
        pred = await self.answer.acall(**inputs, **{self.reasoning_field: result.text}, config=config)
        return run.finish(result, pred)


class _Run:
    """State of one forward call: the step generator handed to the core search, and the result."""

    def __init__(self, module: LedomStepwiseCoT, question: str, call: Any, first_rollout: int) -> None:
        self.m = module
        self.question = question
        self.call = call  # (partial_chain, rollout_id) -> awaitable Sample
        self.rollouts = itertools.count(first_rollout)  # a distinct rollout_id per step sample
        self.calls = 0  # step predictor calls
        self.errors: list[BaseException] = []
        self.traces: dict[tuple[str, str], list[Any]] = {}  # (partial chain, step) -> DSPy trace of its call

    async def steps(self, question: str, partial_chain: str, n: int) -> GeneratedSteps:
        """The core's step generator: ``n`` step samples of ``partial_chain``, failed ones as ``""``."""
        calls = [functools.partial(self.call, partial_chain, next(self.rollouts)) for _ in range(n)]
        self.calls += n
        out = []
        tokens: int | None = 0  # None once any sample's usage is unknown (a failed call's included)
        for s in await gather_all(calls):
            if isinstance(s, BaseException):
                self.errors.append(s)
                logger.warning("LedomStepwiseCoT: a step sample failed (%d so far): %s: %s",
                               len(self.errors), type(s).__name__, s)
                if self.m.fail_count is not None and len(self.errors) > self.m.fail_count:
                    raise RuntimeError(f"LedomStepwiseCoT: {len(self.errors)} step samples failed "
                                       f"(fail_count={self.m.fail_count}); first error: {self.errors[0]}") from s
                out.append("")  # an empty step: the search never scores it
                tokens = None
                continue
            text, trace, used = s
            self.traces.setdefault((partial_chain, text.strip()), trace)
            out.append(text)
            tokens = None if tokens is None or used is None else tokens + used
        return GeneratedSteps(out, tokens)

    async def search(self) -> SearchResult:
        """Run the core search with :meth:`steps` as its step generator."""
        m = self.m
        scorer, cfg = _NamingScorer(m.scorer), m._config()
        if isinstance(cfg, BeamSearchConfig):
            result = await abeam_search(self.question, self.steps, scorer, cfg, on_event=m.on_event)
        else:
            result = await advts(self.question, self.steps, scorer, cfg, on_event=m.on_event)
        if not result.steps:
            first = f"; first error: {self.errors[0]}" if self.errors else ""
            raise RuntimeError(f"LedomStepwiseCoT: no reasoning step could be generated "
                               f"({len(self.errors)} of {self.calls} step samples failed{first})")
        return result

    def add_trace(self, result: SearchResult) -> None:
        """Add the chosen chain's step calls (only those) to the caller's DSPy trace, in order."""
        if dspy.settings.trace is None:
            return
        d, steps = self.m.delimiter, result.steps
        for j, s in enumerate(steps):
            dspy.settings.trace.extend(self.traces.get((d.join(steps[:j]), s), []))

    def finish(self, result: SearchResult, pred: Any) -> Any:
        """The returned prediction: rationale, the answer predictor's outputs, and ``ledom`` details."""
        m = self.m
        details = {"reward": result.reward, "answer": result.answer, "finished": result.finished,
                   "steps": result.steps, "chains": pool_chains(result, m.delimiter),
                   "stats": {**result.stats.to_dict(), "predictor_calls": self.calls + 1,
                             "failed_steps": len(self.errors)},
                   "trace": [n.to_dict() for n in result.trace]}
        outputs = {k: pred[k] for k in m.answer.signature.output_fields}
        return dspy.Prediction(**{m.reasoning_field: result.text}, **outputs, ledom=details)


class _NamingScorer:
    """Passes batches to the scorer; a failure is re-raised naming the failing partial rationale."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    def _error(self, e: Exception, pairs: Sequence[PairLike]) -> Exception:
        texts = [p["candidate"] if isinstance(p, Mapping) else p[1] for p in pairs]
        return scoring_error(e, texts, [f"partial rationale {i}" for i in range(len(texts))])

    def score(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        try:
            out: list[PairScore] = self.scorer.score(pairs)
            return out
        except Exception as e:
            raise self._error(e, pairs) from e

    async def ascore(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        try:
            if callable(getattr(self.scorer, "ascore", None)):
                out: list[PairScore] = await self.scorer.ascore(pairs)
                return out
            return await asyncio.to_thread(self.scorer.score, pairs)
        except Exception as e:
            raise self._error(e, pairs) from e
