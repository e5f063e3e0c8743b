"""The step-level search engine shared by beam search and DVTS.

:func:`run_steps` is the one step loop: per depth, expand the frontier and score every new partial
chain in ONE scorer call (:meth:`Tree.expand`), let the search's :class:`StepPolicy` choose what
survives, emit ``depth_end``, stop when the policy says so, then pick the answer from the policy's
final pool (:meth:`Tree.result`). Beam search and DVTS differ only in their policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledom_reason.answers import extract_marked_answer
from ledom_reason.reward import Normalize, reverse_reward, validate_reward_args
from ledom_reason.search._common import (
    AnswerExtractor,
    EventHook,
    SearchResult,
    SearchStats,
    StepGenerator,
    TraceNode,
    aemit,
    chain_steps,
    check_scorer,
    score_async,
)
from ledom_reason.search.aggregate import aggregate
from ledom_reason.types import Scorer

logger = logging.getLogger(__name__)

STEP_AGGREGATORS: tuple[str, ...] = ("reward", "majority", "weighted")

Parent = tuple[int, int | None]
"""``(node_id, subtree)`` of a chain to expand (``subtree`` is ``None`` for beam search)."""


@dataclass
class StepSearchConfig:
    """Fields shared by :class:`BeamSearchConfig` and :class:`DVTSConfig` (see those)."""

    expansions: int = 3
    max_depth: int = 8
    delimiter: str = "\n\n"
    min_depth_before_prune: int = 0
    lam: float = 1.0
    normalize: Normalize = "sum"
    aggregator: str = "reward"
    temperature: float = 1.0
    extract_answer: AnswerExtractor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("expansions", "max_depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {v!r}")
        if not isinstance(self.min_depth_before_prune, int) or self.min_depth_before_prune < 0:
            raise ValueError(f"`min_depth_before_prune` must be an int >= 0, got {self.min_depth_before_prune!r}")
        if not isinstance(self.delimiter, str) or not self.delimiter:
            raise ValueError("`delimiter` must be a non-empty str")
        validate_reward_args(self.lam, self.normalize)
        if self.aggregator not in STEP_AGGREGATORS:
            raise ValueError(f"`aggregator` must be one of {STEP_AGGREGATORS}, got {self.aggregator!r}")
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {self.temperature}")
        if self.extract_answer is not None and not callable(self.extract_answer):
            raise TypeError("`extract_answer` must be callable")

    @property
    def extractor(self) -> Callable[[str], str | None]:
        """Stop rule / answer extractor (default: an explicit ``####`` or ``\\boxed{}`` answer)."""
        return self.extract_answer or extract_marked_answer


class Tree:
    """Mutable search state: the trace, the accounting and the scoring of one depth."""

    def __init__(self, question: str, generator: StepGenerator, scorer: Scorer, cfg: StepSearchConfig,
                 on_event: EventHook | None) -> None:
        self.started = time.perf_counter()
        if not isinstance(question, str) or not question.strip():
            raise ValueError("`question` must be a non-empty str")
        if not callable(generator):
            raise TypeError("`generator` must be an async callable (question, partial_chain, n) -> list[str]")
        check_scorer(scorer)
        self.question = question
        self.generator = generator
        self.scorer = scorer
        self.cfg = cfg
        self.on_event = on_event
        self.stats = SearchStats()
        self.trace: list[TraceNode] = [TraceNode(0, None, -1, "", status="root")]

    def chain_text(self, node_id: int) -> str:
        return self.cfg.delimiter.join(chain_steps(self.trace, node_id))

    async def _generate(self, parent: int) -> list[str]:
        out = await self.generator(self.question, self.chain_text(parent), self.cfg.expansions)
        if isinstance(out, str) or not isinstance(out, Sequence) or not all(isinstance(s, str) for s in out):
            raise TypeError(f"`generator` must return a list of str, got {type(out).__name__}")
        self.stats.add_generated(out)
        if len(out) != self.cfg.expansions:
            logger.debug("generator returned %d steps, asked for %d", len(out), self.cfg.expansions)
        return list(out)

    async def expand(self, depth: int, parents: Sequence[Parent]) -> list[list[int]]:
        """Expand each ``(parent_id, subtree)``; score all new chains in ONE scorer call.

        Returns the new node ids per parent (blank steps get status ``"empty"`` and no score).
        """
        await aemit(self.on_event, "depth_start", depth, active=len(parents))
        t0 = time.perf_counter()
        generated = await asyncio.gather(*(self._generate(p) for p, _ in parents))
        self.stats.generation_time_s += time.perf_counter() - t0  # the calls overlap: count their span once
        children: list[list[int]] = []
        to_score: list[int] = []
        for (pid, sub), steps in zip(parents, generated, strict=True):
            ids = []
            for step in steps:
                text = step.strip()
                node = TraceNode(len(self.trace), pid, depth, text, subtree=sub,
                                 status="pruned" if text else "empty")
                self.trace.append(node)
                ids.append(node.id)
                if text:
                    node.answer = self.cfg.extractor(text)
                    to_score.append(node.id)
            children.append(ids)
        if to_score:
            scores = await score_async(self.scorer, [(self.question, self.chain_text(i)) for i in to_score],
                                       self.stats)
            for i, s in zip(to_score, scores, strict=True):
                self.trace[i].score = s
                self.trace[i].reward = reverse_reward(s, lam=self.cfg.lam, normalize=self.cfg.normalize)
            best = max(self.trace[i].reward for i in to_score)  # type: ignore[type-var]
            await aemit(self.on_event, "scored", depth, pairs=len(to_score), best_reward=best,
                        scorer_calls=self.stats.scorer_calls)
        return children

    def is_finished(self, node_id: int) -> bool:
        return self.trace[node_id].answer is not None

    def scored(self, ids: Sequence[int]) -> list[int]:
        """The ids in ``ids`` that were scored (blank steps are not), in the same order."""
        return [i for i in ids if self.trace[i].reward is not None]

    def ranked(self, ids: Sequence[int]) -> list[int]:
        """Scored ``ids``, best reward first (ties: creation order)."""
        return sorted(ids, key=lambda i: (-self.trace[i].reward, i))  # type: ignore[operator]

    def keep(self, node_id: int) -> None:
        """Mark a surviving node ``"finished"`` (it holds a final answer) or ``"kept"``."""
        self.trace[node_id].status = "finished" if self.is_finished(node_id) else "kept"

    async def result(self, pool: Sequence[int]) -> SearchResult:
        """Pick from ``pool`` with the aggregator (finished chains preferred) and build the result."""
        finished = [i for i in pool if self.is_finished(i)]
        cands = finished or [i for i in pool if self.trace[i].reward is not None]
        if not cands:
            res = SearchResult(None, "", [], None, False, [], {}, self.trace, self.stats)
        else:
            answers = [self.trace[i].answer for i in cands]
            rewards = [float(self.trace[i].reward) for i in cands]  # type: ignore[arg-type]
            choice = aggregate(answers, rewards, self.cfg.aggregator, temperature=self.cfg.temperature)
            best = cands[choice.index]
            steps = chain_steps(self.trace, best)
            votes = {("null" if k is None else k): v for k, v in choice.votes.items()}
            res = SearchResult(self.trace[best].answer, self.cfg.delimiter.join(steps), steps,
                               self.trace[best].reward, self.is_finished(best), list(cands), votes,
                               self.trace, self.stats)
        self.stats.wall_time_s = time.perf_counter() - self.started  # the whole call, before the last event
        await aemit(self.on_event, "finished", max((n.depth for n in self.trace), default=0),
                    answer=res.answer, stats=self.stats.to_dict())
        return res


class StepPolicy(Protocol):
    """What differs between step-level searches; :func:`run_steps` does the rest."""

    def frontier(self) -> list[Parent]:  # the chains to expand at the next depth
        ...

    def select(self, tree: Tree, depth: int, parents: list[Parent], children: list[list[int]]) -> dict[str, Any]:
        """Choose survivors among ``children`` (new ids per parent); return the ``depth_end`` data."""
        ...

    def stopped(self) -> bool:  # whether the search ends after this depth
        ...

    def final_pool(self) -> list[int]:  # node ids the final answer is picked from
        ...


async def run_steps(tree: Tree, policy: StepPolicy) -> SearchResult:
    """The step loop: expand → score (one call) → ``policy.select`` → ``depth_end`` → stop? → result."""
    for depth in range(tree.cfg.max_depth):
        parents = policy.frontier()
        children = await tree.expand(depth, parents)
        summary = policy.select(tree, depth, parents, children)
        await aemit(tree.on_event, "depth_end", depth, **summary)
        if policy.stopped():
            break
    return await tree.result(policy.final_pool())
