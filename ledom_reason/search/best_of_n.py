"""Best-of-N selection: score N candidates in one scorer call and pick one by an aggregator.

Example:
    >>> from ledom_reason.types import PairScore
    >>> class LengthScorer:  # any object with score()/ascore() works
    ...     def score(self, pairs):
    ...         return [PairScore.build(-float(len(c)), 1) for _, c in pairs]
    ...     async def ascore(self, pairs):
    ...         return self.score(pairs)
    >>> res = select_best_of_n("1+1?", ["1+1 = 2.\\n#### 2", "#### 3"], LengthScorer())
    >>> res.index, res.answer, res.stats.scorer_calls
    (1, '3', 1)
    >>> select_best_of_n("1+1?", ["#### 2", "so #### 2", "#### 3"], LengthScorer(),
    ...                  BestOfNConfig(aggregator="majority")).answer
    '2'
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledom_reason.answers import extract_answer as default_extract_answer
from ledom_reason.concurrency import run_sync
from ledom_reason.reward import Normalize, reverse_reward, validate_reward_args
from ledom_reason.search._common import (
    AnswerExtractor,
    EventHook,
    SearchStats,
    aemit,
    check_scorer,
    score_async,
)
from ledom_reason.search.aggregate import AGGREGATORS, SCORE_FREE_AGGREGATORS, Aggregator, aggregate
from ledom_reason.types import PairScore, Scorer, normalize_pairs

logger = logging.getLogger(__name__)


@dataclass
class BestOfNConfig:
    """How Best-of-N picks a candidate.

    > Selection
        aggregator: ``"reward"`` (argmax reward), ``"majority"`` (vote on answers), ``"weighted"``
            (softmax(reward / temperature) summed per answer), ``"random"`` (seeded baseline),
            ``"forward"`` (forward log-likelihood only, i.e. λ = 0; needs a forward model).
        temperature: Softmax temperature of ``weighted``.
        seed: Seed of ``random`` (combined with the question, so results do not depend on order).
        score_votes: Also score candidates for ``majority``/``random`` (gives rewards in the ranking
            and breaks vote ties by reward). Default ``False``: those aggregators make no scorer call.

    > Reward
        lam: λ, weight of the reverse term in ``(1-λ)·log P_fwd + λ·log P_rev`` (ignored by ``forward``).
        normalize: ``"sum"`` or ``"mean"`` (per-token) log-probs.

    > Answers
        extract_answer: ``text -> answer | None``; default: GSM8K ``####``, then ``\\boxed{}``, then
            the last number (normalised).
    """

    aggregator: Aggregator = "reward"
    lam: float = 1.0
    normalize: Normalize = "sum"
    temperature: float = 1.0
    seed: int = 0
    score_votes: bool = False
    extract_answer: AnswerExtractor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"`aggregator` must be one of {AGGREGATORS}, got {self.aggregator!r}")
        validate_reward_args(self.lam, self.normalize)
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {self.temperature}")
        if self.extract_answer is not None and not callable(self.extract_answer):
            raise TypeError("`extract_answer` must be callable")

    @property
    def extractor(self) -> Callable[[str], str | None]:
        """The answer extractor in use."""
        return self.extract_answer or default_extract_answer

    @property
    def needs_scores(self) -> bool:
        """Whether this configuration calls the scorer."""
        return self.aggregator not in SCORE_FREE_AGGREGATORS or self.score_votes

    @property
    def effective_lam(self) -> float:
        """λ actually used (0 for ``forward``)."""
        return 0.0 if self.aggregator == "forward" else self.lam


@dataclass
class CandidateRecord:
    """One candidate in a Best-of-N ranking.

    Attributes:
        index: Position in the input list.
        text: The candidate.
        answer: Extracted final answer (``None`` if none).
        reward: Reward under the config's λ/normalisation (``None`` when not scored).
        score: Raw :class:`PairScore` (``None`` when not scored).
        rank: 0 = chosen.
    """

    index: int
    text: str
    answer: str | None
    reward: float | None
    score: PairScore | None
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view."""
        return {"index": self.index, "text": self.text, "answer": self.answer, "reward": self.reward,
                "rank": self.rank, "score": None if self.score is None else self.score.to_dict()}


@dataclass
class BestOfNResult:
    """Result of Best-of-N selection.

    Attributes:
        index: Index of the chosen candidate.
        text: The chosen candidate.
        answer: Its extracted answer.
        aggregator: Aggregator used.
        ranking: All candidates, most preferred first (``ranking[0]`` is the chosen one).
        votes: Per answer ``{"count", "weight"}``.
        stats: Compute accounting. In a batch call, each result counts its own pairs and tokens, and
            ``scorer_calls = 1``, ``scoring_time_s`` and ``wall_time_s`` are those of the call it shared
            with the other questions.
    """

    index: int
    text: str
    answer: str | None
    aggregator: str
    ranking: list[CandidateRecord]
    votes: dict[str | None, dict[str, float]]
    stats: SearchStats

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view (the ``None`` vote key is written as ``"null"``)."""
        return {"index": self.index, "text": self.text, "answer": self.answer, "aggregator": self.aggregator,
                "ranking": [r.to_dict() for r in self.ranking],
                "votes": {("null" if k is None else k): v for k, v in self.votes.items()},
                "stats": self.stats.to_dict()}


def _check_inputs(question: str, candidates: Sequence[str]) -> list[str]:
    if not isinstance(question, str):
        raise TypeError(f"`question` must be str, got {type(question).__name__}")
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise TypeError("`candidates` must be a list of str")
    if not candidates:
        raise ValueError("`candidates` is empty")
    normalize_pairs([(question, c) for c in candidates])  # type and blank checks, naming the index
    return list(candidates)


def select_from_scores(
    question: str,
    candidates: Sequence[str],
    scores: Sequence[PairScore] | None,
    config: BestOfNConfig | None = None,
    *,
    answers: Sequence[str | None] | None = None,
    stats: SearchStats | None = None,
) -> BestOfNResult:
    """Best-of-N over precomputed scores (no scorer call): what the eval runner uses for λ/N sweeps.

    Args:
        question: The question (seeds ``random``).
        candidates: Candidate texts.
        scores: One :class:`PairScore` per candidate, or ``None`` for ``majority``/``random``.
        config: Selection config (default :class:`BestOfNConfig`).
        answers: Pre-extracted answers (skips extraction).
        stats: Accounting to attach (default: empty).
    """
    cfg = config or BestOfNConfig()
    if scores is not None and len(scores) != len(candidates):
        raise ValueError(f"`scores` has {len(scores)} entries for {len(candidates)} candidates")
    if answers is None:
        answers = [cfg.extractor(c) for c in candidates]
    rewards = None
    if scores is not None:
        rewards = [reverse_reward(s, lam=cfg.effective_lam, normalize=cfg.normalize) for s in scores]
    rng = random.Random(f"{cfg.seed}\x00{question}")
    choice = aggregate(answers, rewards, cfg.aggregator, temperature=cfg.temperature, rng=rng)
    ranking = [
        CandidateRecord(i, candidates[i], answers[i], None if rewards is None else rewards[i],
                        None if scores is None else scores[i], rank)
        for rank, i in enumerate(choice.order)
    ]
    return BestOfNResult(choice.index, candidates[choice.index], answers[choice.index], cfg.aggregator,
                         ranking, choice.votes, stats or SearchStats())


def _split(flat: list[PairScore], sizes: list[int]) -> list[list[PairScore]]:
    out, k = [], 0
    for n in sizes:
        out.append(flat[k : k + n])
        k += n
    return out


def _batch_results(
    questions: Sequence[str], cands: list[list[str]], flat: list[PairScore] | None,
    cfg: BestOfNConfig, scoring_s: float,
) -> list[BestOfNResult]:
    per_q = _split(flat, [len(c) for c in cands]) if flat is not None else [None] * len(cands)
    results = []
    for q, cs, sc in zip(questions, cands, per_q, strict=True):
        stats = SearchStats()
        if sc is not None:
            stats.add_scored(sc, scoring_s)  # the call all questions shared
        results.append(select_from_scores(q, cs, sc, cfg, stats=stats))
    return results


def _prepare(questions: Sequence[str], candidates_per_question: Sequence[Sequence[str]],
             scorer: Scorer | None, cfg: BestOfNConfig) -> tuple[list[list[str]], list[tuple[str, str]]]:
    if isinstance(questions, str) or not isinstance(questions, Sequence):
        raise TypeError("`questions` must be a list of str")
    if len(questions) != len(candidates_per_question):
        raise ValueError(
            f"`questions` has {len(questions)} items but `candidates_per_question` has {len(candidates_per_question)}"
        )
    cands = [_check_inputs(q, c) for q, c in zip(questions, candidates_per_question, strict=True)]
    if cfg.needs_scores:
        check_scorer(scorer)
    pairs = [(q, c) for q, cs in zip(questions, cands, strict=True) for c in cs]
    return cands, pairs


def select_best_of_n_batch(
    questions: Sequence[str],
    candidates_per_question: Sequence[Sequence[str]],
    scorer: Scorer | None,
    config: BestOfNConfig | None = None,
    *,
    on_event: EventHook | None = None,
) -> list[BestOfNResult]:
    """Best-of-N for many questions; all candidates of all questions scored in ONE scorer call.

    Args:
        questions: The questions.
        candidates_per_question: Candidate lists, one per question.
        scorer: Any :class:`~ledom_reason.types.Scorer` (may be ``None`` for ``majority``/``random``).
        config: Selection config.
        on_event: Optional hook receiving :class:`~ledom_reason.search.SearchEvent` s (a plain function
            or one returning an awaitable).

    Raises:
        ValueError / TypeError: bad input (names the argument), or a missing forward score for λ < 1.
    """
    return run_sync(aselect_best_of_n_batch(questions, candidates_per_question, scorer, config, on_event=on_event))


async def aselect_best_of_n_batch(
    questions: Sequence[str],
    candidates_per_question: Sequence[Sequence[str]],
    scorer: Scorer | None,
    config: BestOfNConfig | None = None,
    *,
    on_event: EventHook | None = None,
) -> list[BestOfNResult]:
    """Async :func:`select_best_of_n_batch` (one ``scorer.ascore`` call); the one implementation of both."""
    cfg = config or BestOfNConfig()
    t0 = time.perf_counter()
    cands, pairs = _prepare(questions, candidates_per_question, scorer, cfg)
    flat, scoring_s = None, 0.0
    if cfg.needs_scores:
        assert scorer is not None  # _prepare checked it
        t1 = time.perf_counter()
        flat = await score_async(scorer, pairs)
        scoring_s = time.perf_counter() - t1
        await aemit(on_event, "scored", 0, pairs=len(pairs), scorer_calls=1)
    results = _batch_results(questions, cands, flat, cfg, scoring_s)
    wall = time.perf_counter() - t0
    for r in results:
        r.stats.wall_time_s = wall  # the whole (shared) call
    await aemit(on_event, "finished", 0, answers=[r.answer for r in results])
    return results


def select_best_of_n(
    question: str,
    candidates: Sequence[str],
    scorer: Scorer | None,
    config: BestOfNConfig | None = None,
    *,
    on_event: EventHook | None = None,
) -> BestOfNResult:
    """Score ``candidates`` in one scorer call and pick one (see :class:`BestOfNConfig`).

    Args:
        question: The question the candidates answer.
        candidates: N candidate solutions.
        scorer: Any :class:`~ledom_reason.types.Scorer` (may be ``None`` for ``majority``/``random``).
        config: Selection config (default: argmax reverse reward, λ = 1, summed log-probs).
        on_event: Optional progress hook (``"scored"`` then ``"finished"``).

    Returns:
        A :class:`BestOfNResult` with the chosen candidate, the ranking, the vote table and accounting.
    """
    return select_best_of_n_batch([question], [candidates], scorer, config, on_event=on_event)[0]


async def aselect_best_of_n(
    question: str,
    candidates: Sequence[str],
    scorer: Scorer | None,
    config: BestOfNConfig | None = None,
    *,
    on_event: EventHook | None = None,
) -> BestOfNResult:
    """Async :func:`select_best_of_n` (uses ``scorer.ascore``)."""
    return (await aselect_best_of_n_batch([question], [candidates], scorer, config, on_event=on_event))[0]
