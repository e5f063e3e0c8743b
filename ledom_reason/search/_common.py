"""Pieces shared by every search: accounting, progress events, traces, results and scorer calls.

Nothing here imports a framework or a model library: a search runs over any
:class:`~ledom_reason.types.Scorer` (``score(pairs)`` / ``ascore(pairs)``). Searches are written once, async;
their sync twins run them through :func:`ledom_reason.concurrency.run_sync`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ledom_reason.types import Pair, PairScore, Scorer

logger = logging.getLogger(__name__)

AnswerExtractor = Callable[[str], "str | None"]
"""``text -> final answer`` (``None`` when the text has no final answer yet)."""

StepGenerator = Callable[[str, str, int], Awaitable[list[str]]]
"""``async (question, partial_chain, n) -> n next steps`` (any LLM client fits behind it).

``partial_chain`` is ``""`` at the root. A generator may return a :class:`GeneratedSteps` (a
``list[str]`` that also carries ``generated_tokens``) so that searches can account for tokens.
"""

EventKind = Literal["depth_start", "scored", "depth_end", "finished"]
EventHook = Callable[["SearchEvent"], Any]


class GeneratedSteps(list[str]):
    """A ``list[str]`` of steps that also reports how many tokens generating them cost.

    Example:
        >>> steps = GeneratedSteps(["a", "b"], generated_tokens=7)
        >>> list(steps), steps.generated_tokens
        (['a', 'b'], 7)
    """

    def __init__(self, steps: Sequence[str] = (), generated_tokens: int | None = None) -> None:
        super().__init__(steps)
        self.generated_tokens = generated_tokens


@dataclass
class SearchStats:
    """Compute accounting of one search call (so that "N=16 beats N=64" claims are honest).

    Times are wall-clock seconds measured with ``time.perf_counter``. Concurrent generator calls overlap,
    so :attr:`generation_time_s` is the time the search *waited* for the generator, not a sum over calls;
    ``generation_time_s + scoring_time_s <= wall_time_s`` up to the search's own bookkeeping.

    Attributes:
        generator_calls: Calls made to the generator (0 for Best-of-N over given candidates; the LangChain
            and DSPy adapters fill in the calls they made to sample the candidates).
        generated_tokens: Tokens generated, when every generator call reported them (a
            :class:`GeneratedSteps` count, LangChain ``usage_metadata["output_tokens"]``, DSPy LM usage
            ``completion_tokens``); ``None`` when none was reported or any call did not report.
        scorer_calls: Calls made to ``scorer.score``/``ascore`` (each scores a whole batch).
        scored_pairs: ``(question, candidate)`` pairs scored.
        scored_tokens: Sum of :attr:`PairScore.input_tokens` over the scored pairs.
        wall_time_s: Wall-clock time of the whole call (generation, scoring and selection).
        generation_time_s: Part of it spent waiting for the generator.
        scoring_time_s: Part of it spent waiting for the scorer.
    """

    generator_calls: int = 0
    generated_tokens: int | None = None
    scorer_calls: int = 0
    scored_pairs: int = 0
    scored_tokens: int = 0
    wall_time_s: float = 0.0
    generation_time_s: float = 0.0
    scoring_time_s: float = 0.0
    _unreported: int = field(default=0, repr=False, compare=False)  # generator calls without a token count

    def add_generation(self, calls: int = 1, tokens: int | None = None, seconds: float = 0.0) -> None:
        """Count ``calls`` generator calls that produced ``tokens`` tokens (``None``: not reported)."""
        self.generator_calls += calls
        self.generation_time_s += seconds
        if tokens is None:
            self._unreported += calls
            self.generated_tokens = None
        elif self._unreported == 0:
            self.generated_tokens = (self.generated_tokens or 0) + int(tokens)

    def add_generated(self, steps: Sequence[str]) -> None:
        """Count one generator call (and its tokens when the result is a :class:`GeneratedSteps`)."""
        self.add_generation(1, getattr(steps, "generated_tokens", None))

    def add_scored(self, scores: Sequence[PairScore], seconds: float = 0.0) -> None:
        """Count one scorer call over ``scores`` that took ``seconds``."""
        self.scorer_calls += 1
        self.scored_pairs += len(scores)
        self.scored_tokens += sum(int(s.input_tokens) for s in scores)
        self.scoring_time_s += seconds

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view (the same keys in LangChain metadata, DSPy predictions, eval tables)."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


STATS_FIELDS: tuple[str, ...] = tuple(k for k in SearchStats.__dataclass_fields__ if not k.startswith("_"))
"""The accounting keys, in order (what every result's ``stats`` dict carries)."""


@dataclass(frozen=True)
class SearchEvent:
    """A progress event.

    Attributes:
        kind: ``"depth_start"`` (before expanding a depth), ``"scored"`` (after each scorer batch),
            ``"depth_end"`` (after pruning), ``"finished"`` (once, with the result).
        depth: Search depth (0-based; 0 for Best-of-N).
        data: Event details, e.g. ``{"active": 4}``, ``{"pairs": 12, "best_reward": -3.2}``.
    """

    kind: EventKind
    depth: int
    data: dict[str, Any] = field(default_factory=dict)


async def aemit(hook: EventHook | None, kind: EventKind, depth: int, **data: Any) -> None:
    """Call ``hook`` with an event; await it when it returns an awaitable."""
    if hook is None:
        return
    out = hook(SearchEvent(kind, depth, data))
    if inspect.isawaitable(out):
        await out


def check_scorer(scorer: object) -> None:
    """Raise ``TypeError`` unless ``scorer`` has a ``score`` or ``ascore`` method."""
    if not (callable(getattr(scorer, "score", None)) or callable(getattr(scorer, "ascore", None))):
        raise TypeError(f"`scorer` must implement score()/ascore(), got {type(scorer).__name__}")


def _check_scores(scores: Any, n: int) -> list[PairScore]:
    scores = list(scores)
    if len(scores) != n:
        raise ValueError(f"scorer returned {len(scores)} scores for {n} pairs")
    return scores


async def score_async(scorer: Scorer, pairs: Sequence[Pair], stats: SearchStats | None = None) -> list[PairScore]:
    """One ``scorer.ascore`` call (``score`` in a worker thread for a scorer without one), counted in ``stats``."""
    t0 = time.perf_counter()
    if callable(getattr(scorer, "ascore", None)):
        scores = _check_scores(await scorer.ascore(list(pairs)), len(pairs))
    else:
        scores = _check_scores(await asyncio.to_thread(scorer.score, list(pairs)), len(pairs))
    if stats is not None:
        stats.add_scored(scores, time.perf_counter() - t0)
    return scores


NodeStatus = Literal["root", "kept", "pruned", "finished", "empty"]


@dataclass
class TraceNode:
    """One node of a step-level search tree.

    Attributes:
        id: Node id (index into :attr:`SearchResult.trace`).
        parent: Parent id (``None`` for the root).
        depth: Depth of the step (the first step is depth 0; the root is depth -1).
        step: The step text this node added.
        reward: Reward of the partial chain ending at this node (``None`` when not scored).
        status: ``"kept"`` (survived pruning), ``"pruned"``, ``"finished"`` (contains a final answer
            and was kept), ``"empty"`` (blank step, never scored) or ``"root"``.
        answer: Final answer found in the step, if any.
        subtree: DVTS subtree index (``None`` for beam search).
        score: The raw :class:`PairScore` (``None`` when not scored).
    """

    id: int
    parent: int | None
    depth: int
    step: str
    reward: float | None = None
    status: NodeStatus = "pruned"
    answer: str | None = None
    subtree: int | None = None
    score: PairScore | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view."""
        d = {k: getattr(self, k) for k in ("id", "parent", "depth", "step", "reward", "status", "answer", "subtree")}
        d["score"] = None if self.score is None else self.score.to_dict()
        return d


@dataclass
class SearchResult:
    """Result of a step-level search (beam search or DVTS).

    Attributes:
        answer: Final answer of the chosen chain (``None`` when no chain reached one).
        text: The chosen chain (steps joined with the delimiter).
        steps: The chosen chain's steps.
        reward: Reward of the chosen chain.
        finished: Whether the chosen chain contains a final answer.
        candidates: Node ids of the final pool the aggregator chose from.
        votes: Per-answer ``{"count", "weight"}`` over the final pool.
        trace: Every node of the search tree (see :class:`TraceNode`).
        stats: Compute accounting.
    """

    answer: str | None
    text: str
    steps: list[str]
    reward: float | None
    finished: bool
    candidates: list[int]
    votes: dict[str, dict[str, float]]
    trace: list[TraceNode]
    stats: SearchStats

    def chain_of(self, node_id: int) -> list[str]:
        """Steps from the root to node ``node_id``."""
        return chain_steps(self.trace, node_id)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view."""
        return {
            "answer": self.answer, "text": self.text, "steps": self.steps, "reward": self.reward,
            "finished": self.finished, "candidates": self.candidates, "votes": self.votes,
            "trace": [n.to_dict() for n in self.trace], "stats": self.stats.to_dict(),
        }


def chain_steps(trace: Sequence[TraceNode], node_id: int) -> list[str]:
    """Steps from the root to ``node_id`` (the root's empty step excluded)."""
    out: list[str] = []
    cur: int | None = node_id
    while cur is not None:
        node = trace[cur]
        if node.status != "root":
            out.append(node.step)
        cur = node.parent
    return out[::-1]
