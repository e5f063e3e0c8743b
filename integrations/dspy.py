"""DSPy reward functions, metrics and a concurrent Best-of-N module scored by a reverse model.

Thin adapters over :mod:`ledom_reason` core: a candidate is the prediction's ``answer_fields`` joined
(``reasoning`` then ``answer`` by default), scored against the input question by one scorer call;
selection runs in :mod:`ledom_reason.search`.

Setup:
    ``pip install 'ledom-reason[dspy]'``

Example:
    >>> import dspy  # doctest: +SKIP
    >>> from ledom_reason.integrations.dspy import LedomBestOfN, ledom_reward  # doctest: +SKIP
    >>> qa = dspy.ChainOfThought("question -> answer")  # doctest: +SKIP
    >>> best = LedomBestOfN(qa, N=8, scorer=scorer)  # doctest: +SKIP
    >>> best(question="What is 2+3?").answer  # doctest: +SKIP
    >>> dspy.BestOfN(qa, N=4, reward_fn=ledom_reward(scorer), threshold=-0.5)  # doctest: +SKIP
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from ledom_reason._optional import require

require("dspy", "dspy")

import dspy  # noqa: E402

from ledom_reason.integrations._common import (  # noqa: E402
    ScorerNotAttachedError,
    Shared,
    check_n,
    gather_all,
    join_fields,
    scoring_error,
    verifier_value,
)
from ledom_reason.integrations.dspy_stepwise import LedomStepwiseCoT  # noqa: E402
from ledom_reason.reward import Normalize, RewardSettings, reward_settings_for, validate_reward_args  # noqa: E402
from ledom_reason.search import BestOfNConfig, BestOfNResult, aselect_best_of_n, select_best_of_n  # noqa: E402
from ledom_reason.types import PairScore, Scorer  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = [
    "LedomBestOfN",
    "LedomFeedbackMetric",
    "LedomMetric",
    "LedomReward",
    "LedomStepwiseCoT",
    "ScorerNotAttachedError",
    "attach_scorer",
    "ledom_feedback_metric",
    "ledom_metric",
    "ledom_reward",
]

DEFAULT_ANSWER_FIELDS: tuple[str, ...] = ("reasoning", "answer")
Value = Literal["auto", "p_correct", "reward"]
"""What a metric returns: ``"auto"`` (P(correct) when calibrated, else the reward), or either one."""


def _get(obj: Any, key: str, what: str) -> str:
    try:
        v = obj[key] if isinstance(obj, Mapping) else obj.get(key) if hasattr(obj, "get") else getattr(obj, key)
    except (KeyError, AttributeError):
        v = None
    if v is None:
        raise ValueError(f"{what} has no `{key}` field: set `question_field=` to your signature's input field")
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"`{key}` must be a non-empty str, got {v!r}")
    return v


class LedomReward:
    """``reward_fn(args, pred) -> float`` for :class:`dspy.BestOfN` / :class:`dspy.Refine`.

    Scores ``(args[question_field], pred's answer_fields)``. With a calibrated scorer (its model folder has a
    ``calibration.json``, e.g. ``ReverseScorer.default(forward=True)``) the value is the calibrated
    **P(correct)** in [0, 1], so ``threshold=0.5`` keeps candidates more likely right than wrong; otherwise
    (or with ``value="reward"``, or an explicit ``lam``/``normalize``) it is the raw reward
    ``(1-λ)·log P_fwd + λ·log P_rev``, per-token by default (≤ 0, no scale to guess a threshold from).
    λ and the normalisation default to the scorer's validated setting (``scorer.recommended_reward``), else
    λ = 1, ``"mean"``. Build it with :func:`ledom_reward`.
    """

    def __init__(self, scorer: Scorer, question_field: str = "question",
                 answer_fields: Sequence[str] = DEFAULT_ANSWER_FIELDS, lam: float | None = None,
                 normalize: Normalize | None = None, value: Value = "auto") -> None:
        settings = reward_settings_for(scorer, lam, normalize)
        validate_reward_args(settings.lam, settings.normalize)
        if value not in ("auto", "p_correct", "reward"):
            raise ValueError(f"`value` must be 'auto', 'p_correct' or 'reward', got {value!r}")
        if isinstance(answer_fields, str) or not answer_fields:
            raise ValueError("`answer_fields` must be a non-empty list of field names")
        self._scorer = Shared(scorer)  # shared, not duplicated, when DSPy deep-copies a program
        self.question_field = question_field
        self.answer_fields = tuple(answer_fields)
        self.lam = settings.lam
        self.normalize = settings.normalize
        self.value = value
        self._explicit = lam is not None or normalize is not None

    @property
    def scorer(self) -> Scorer:
        """The scorer (shared by copies, never saved with a program)."""
        scorer: Scorer = self._scorer.get()
        return scorer

    @scorer.setter
    def scorer(self, scorer: Scorer) -> None:
        self._scorer.attach(scorer)

    def pair(self, inputs: Any, pred: Any) -> tuple[str, str]:
        """``(question, candidate)`` of one call (raises ``ValueError`` for missing fields)."""
        return _get(inputs, self.question_field, "input"), join_fields(pred, self.answer_fields)

    def pair_score(self, args: Any, pred: Any) -> PairScore:
        """The scorer's :class:`~ledom_reason.types.PairScore` of one call (one scorer call)."""
        q, c = self.pair(args, pred)
        try:
            return self.scorer.score([(q, c)])[0]
        except Exception as e:
            raise scoring_error(e, [c]) from e

    def __call__(self, args: Mapping[str, Any], pred: Any) -> float:
        return verifier_value(self.pair_score(args, pred), RewardSettings(self.lam, self.normalize), self.value,
                              explicit=self._explicit)


class LedomMetric(LedomReward):
    """``metric(example, pred, trace=None)`` for DSPy evaluation and optimizers.

    Returns the value of :class:`LedomReward` (with a calibrated scorer P(correct), so ``dspy.Evaluate``'s
    average reads as a percentage). When ``trace`` is given (optimizers bootstrapping demos) and a
    ``threshold`` is set, returns ``value >= threshold`` (bool), DSPy's convention for accepting a
    trace. Build it with :func:`ledom_metric`.
    """

    def __init__(self, scorer: Scorer, question_field: str = "question",
                 answer_fields: Sequence[str] = DEFAULT_ANSWER_FIELDS, lam: float | None = None,
                 normalize: Normalize | None = None, threshold: float | None = None, value: Value = "auto") -> None:
        super().__init__(scorer, question_field, answer_fields, lam, normalize, value)
        self.threshold = threshold

    def __call__(self, example: Any, pred: Any, trace: Any = None) -> float | bool:
        r = super().__call__(example, pred)
        if trace is not None and self.threshold is not None:
            return r >= self.threshold
        return r


def ledom_reward(scorer: Scorer, *, question_field: str = "question",
                 answer_fields: Sequence[str] = DEFAULT_ANSWER_FIELDS, lam: float | None = None,
                 normalize: Normalize | None = None, value: Value = "auto") -> LedomReward:
    """A reward function with DSPy's ``reward_fn(args, pred)`` shape (see :class:`LedomReward`).

    Example:
        >>> scorer = ReverseScorer.default(forward=True)  # calibrated: the value is P(correct)  # doctest: +SKIP
        >>> dspy.BestOfN(qa, N=4, reward_fn=ledom_reward(scorer), threshold=0.5)  # doctest: +SKIP
    """
    return LedomReward(scorer, question_field, answer_fields, lam, normalize, value)


def ledom_metric(scorer: Scorer, *, question_field: str = "question",
                 answer_fields: Sequence[str] = DEFAULT_ANSWER_FIELDS, lam: float | None = None,
                 normalize: Normalize | None = None, threshold: float | None = None,
                 value: Value = "auto") -> LedomMetric:
    """A DSPy metric ``metric(example, pred, trace=None)`` (see :class:`LedomMetric`).

    Example:
        >>> dspy.BootstrapFewShot(metric=ledom_metric(scorer, threshold=0.5))  # P(correct) >= 0.5  # doctest: +SKIP
    """
    return LedomMetric(scorer, question_field, answer_fields, lam, normalize, threshold, value)


# ---------------------------------------------------------------------------------------- best-of-N
def lm_completion_tokens(modules: Sequence[Any]) -> int | None:
    """Completion tokens the LMs of ``modules`` report in their history (DSPy's own usage records).

    ``None`` when a module has no LM history or an entry carries no usage (e.g. a cache hit, whose usage DSPy
    clears): an honest "unknown" rather than an undercount.
    """
    total = 0
    lms = {id(p.lm): p.lm for mod in modules for p in mod.predictors() if getattr(p, "lm", None) is not None}
    if not lms:
        return None
    for lm in lms.values():
        history = getattr(lm, "history", None)
        if not history:
            return None
        for entry in history:
            usage = entry.get("usage") or {}
            n = usage.get("completion_tokens", usage.get("output_tokens"))
            if not isinstance(n, int):
                return None
            total += n
    return total


Attempt = tuple[Any, list[Any]] | BaseException
"""``(prediction, trace)`` of one attempt, or what it raised."""


class LedomBestOfN(dspy.Module):
    """Run N attempts of ``module`` concurrently and keep the one the reverse scorer likes best.

    Mirrors :class:`dspy.BestOfN` (``module, N, …``; each attempt gets ``lm.copy(rollout_id=…,
    temperature=…)``), but attempts run at the same time — ``forward`` in a thread pool, ``aforward``
    with asyncio — and are scored together in ONE scorer call: each prediction's ``answer_fields``
    (``reasoning`` then ``answer``) against the input ``question_field``. Selection is the core's
    Best-of-N (:mod:`ledom_reason.search`). The returned prediction is a copy of the chosen one with a
    ``ledom`` field: ``{"index", "answer", "reward", "p_correct", "rewards", "stats"}`` (``index`` and
    ``rewards`` over the attempts that succeeded, in attempt order; ``answer`` is the final answer extracted
    from the chosen candidate; ``stats`` are ``SearchStats`` keys, with ``generator_calls`` = N, the LMs'
    reported completion tokens and the wall time of the whole call).

    Key init args:
        module: the DSPy program to sample.
        N: number of attempts (≥ 1).
        scorer: a :class:`~ledom_reason.types.Scorer`.
        question_field / answer_fields: which input is the question, which outputs form the candidate.
        lam / normalize / aggregator: reward and selection settings (see ``BestOfNConfig``); λ and the
            normalisation default to ``scorer.recommended_reward`` (the model's validated setting), else 1, mean.
        fail_count: attempts allowed to fail (default ``N - 1``); failures are logged and skipped.
        max_workers: threads for ``forward`` (default ``N``).

    Example:
        >>> qa = dspy.ChainOfThought("question -> answer")  # doctest: +SKIP
        >>> best = LedomBestOfN(qa, N=4, scorer=scorer)  # doctest: +SKIP
        >>> pred = best(question="What is 2+3?"); pred.answer, pred.ledom["reward"]  # doctest: +SKIP
    """

    def __init__(self, module: Any, N: int, scorer: Scorer, *, question_field: str = "question",  # noqa: N803
                 answer_fields: Sequence[str] = DEFAULT_ANSWER_FIELDS, lam: float | None = None,
                 normalize: Normalize | None = None, aggregator: str = "reward", temperature: float = 1.0,
                 fail_count: int | None = None, max_workers: int | None = None) -> None:
        super().__init__()
        check_n(N, "N")
        if fail_count is not None and (not isinstance(fail_count, int) or fail_count < 0):
            raise ValueError(f"`fail_count` must be an int >= 0, got {fail_count!r}")
        self.module = module
        self.N = N
        self.reward = LedomReward(scorer, question_field, answer_fields, lam, normalize)
        self.aggregator = aggregator
        self.temperature = temperature
        self.fail_count = N - 1 if fail_count is None else fail_count
        self.max_workers = max_workers
        self._config()  # validate the aggregator now, not after N LM calls

    def _config(self) -> BestOfNConfig:
        return BestOfNConfig(aggregator=self.aggregator, lam=self.reward.lam,  # type: ignore[arg-type]
                             normalize=self.reward.normalize, score_votes=True)

    def _attempt_modules(self) -> list[Any]:
        lm = self.module.get_lm() or dspy.settings.lm
        if lm is None:
            raise ValueError("no LM: configure one with dspy.configure(lm=...) or module.set_lm(...)")
        start = lm.kwargs.get("rollout_id") or 0
        mods = []
        for i in range(self.N):
            mod = self.module.deepcopy()
            mod.set_lm(lm.copy(rollout_id=start + i, temperature=self.temperature))
            mods.append(mod)
        return mods

    @property
    def scorer(self) -> Scorer:
        """The scorer (shared by copies, never saved with a program: see :func:`attach_scorer`)."""
        return self.reward.scorer

    @scorer.setter
    def scorer(self, scorer: Scorer) -> None:
        self.reward.scorer = scorer

    def _scorer_attached(self) -> None:
        """Raise :class:`ScorerNotAttachedError` now (before N LM calls) for a loaded, scorer-less program."""
        self.reward._scorer.get()

    def _own_trace(self, mod: Any, trace: list[Any]) -> list[Any]:
        """An attempt's trace with each step's predictor mapped back to ``self.module``'s own predictor.

        Attempts run deep copies; optimizers (``BootstrapFewShot``) only recognise the program's own
        predictors and silently drop steps of any other object — which is how ``dspy.BestOfN`` loses its demos.
        """
        own = dict(self.module.named_predictors())
        by_copy = {id(p): own[name] for name, p in mod.named_predictors() if name in own}
        return [(by_copy.get(id(step[0]), step[0]), *step[1:]) for step in trace]

    def _run(self, mod: Any, kwargs: dict[str, Any]) -> Attempt:
        try:
            with dspy.context(trace=[]):
                return mod(**kwargs), self._own_trace(mod, list(dspy.settings.trace))
        except Exception as e:  # counted against `fail_count` in _candidates
            return e

    async def _arun(self, mod: Any, kwargs: dict[str, Any]) -> Attempt:
        try:
            with dspy.context(trace=[]):
                return await mod.acall(**kwargs), self._own_trace(mod, list(dspy.settings.trace))
        except Exception as e:  # counted against `fail_count` in _candidates
            return e

    def forward(self, **kwargs: Any) -> Any:
        """Run the N attempts in a thread pool and return the best prediction."""
        t0 = time.perf_counter()
        question = _get(kwargs, self.reward.question_field, "input")  # fail before any LM call
        self._scorer_attached()
        mods = self._attempt_modules()
        with ThreadPoolExecutor(max_workers=self.max_workers or self.N) as ex:
            futs = [ex.submit(contextvars.copy_context().run, self._run, m, kwargs) for m in mods]
            attempts = [f.result() for f in futs]
        gen_s = time.perf_counter() - t0
        ok, cands = self._candidates(attempts)
        try:
            result = select_best_of_n(question, cands, self.reward.scorer, self._config())
        except Exception as e:
            raise scoring_error(e, cands) from e
        return self._finish(ok, result, mods, gen_s, t0)

    async def aforward(self, **kwargs: Any) -> Any:
        """Run the N attempts concurrently with asyncio and return the best prediction."""
        t0 = time.perf_counter()
        question = _get(kwargs, self.reward.question_field, "input")
        self._scorer_attached()
        mods = self._attempt_modules()
        attempts = await gather_all([functools.partial(self._arun, m, kwargs) for m in mods])
        gen_s = time.perf_counter() - t0
        ok, cands = self._candidates(attempts)
        try:
            result = await aselect_best_of_n(question, cands, self.reward.scorer, self._config())
        except Exception as e:
            raise scoring_error(e, cands) from e
        return self._finish(ok, result, mods, gen_s, t0)

    def _candidates(self, attempts: list[Attempt]) -> tuple[list[tuple[Any, list[Any]]], list[str]]:
        ok, cands, errors = [], [], []
        for i, a in enumerate(attempts):
            if not isinstance(a, BaseException):
                try:
                    cands.append(join_fields(a[0], self.reward.answer_fields, f"attempt {i}'s prediction"))
                    ok.append(a)
                    continue
                except ValueError as e:
                    a = e
            logger.warning("LedomBestOfN: attempt %d of %d failed: %s: %s", i + 1, self.N, type(a).__name__, a)
            errors.append(a)
        if not ok or len(errors) > self.fail_count:
            raise RuntimeError(f"LedomBestOfN: {len(errors)} of {self.N} attempts failed "
                               f"(fail_count={self.fail_count}); first error: {errors[0]}") from errors[0]
        return ok, cands

    def _finish(self, ok: list[tuple[Any, list[Any]]], result: BestOfNResult, mods: list[Any], gen_s: float,
                t0: float) -> Any:
        pred, trace = ok[result.index]
        by_index = sorted(result.ranking, key=lambda r: r.index)
        chosen = by_index[result.index]
        result.stats.add_generation(self.N, lm_completion_tokens(mods), gen_s)  # failed attempts cost too
        result.stats.wall_time_s = time.perf_counter() - t0
        details = {"index": result.index, "answer": result.answer, "reward": chosen.reward,
                   "p_correct": None if chosen.score is None else chosen.score.p_correct,
                   "rewards": [r.reward for r in by_index], "stats": result.stats.to_dict()}
        if dspy.settings.trace is not None:
            dspy.settings.trace.extend(trace)  # only the chosen attempt's trace, as dspy.BestOfN does
        return pred.copy(ledom=details)  # a copy: the traced prediction stays as the program returned it


def attach_scorer(program: Any, scorer: Scorer) -> Any:
    """Give every ledom-reason module and reward of ``program`` the scorer ``scorer``; returns ``program``.

    Scorers are never saved with a program (``save(path)`` state or ``save_program=True``): after
    ``dspy.load(path)`` (or ``load(path)`` into a program built without a live scorer) attach one again. It
    reaches :class:`LedomBestOfN`, :class:`LedomStepwiseCoT` and any :class:`LedomReward` /
    :class:`LedomMetric` held as a module attribute (a reward wrapped inside ``dspy.BestOfN``/``dspy.Refine``
    is theirs: rebuild those with a fresh ``ledom_reward(scorer)``).

    Example:
        >>> program = attach_scorer(dspy.load("saved_program/"), scorer)  # doctest: +SKIP
    """
    found = 0
    for _, mod in program.named_sub_modules():
        for value in [mod, *vars(mod).values()]:
            if isinstance(value, LedomBestOfN | LedomStepwiseCoT | LedomReward):
                value.scorer = scorer
                found += 1
    if not found:
        raise ValueError(f"{type(program).__name__} contains no LedomBestOfN, LedomStepwiseCoT or LedomReward")
    return program


# GEPA's feedback metric builds on LedomMetric above (its own module; exported here).
from ledom_reason.integrations.dspy_gepa import LedomFeedbackMetric, ledom_feedback_metric  # noqa: E402
