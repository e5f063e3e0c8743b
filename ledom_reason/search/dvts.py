"""DVTS (diverse verifier tree search): independent greedy subtrees, then a final pick.

The budget of ``budget`` chains per depth is split into ``budget // expansions`` independent
subtrees. Each depth, every unfinished subtree asks for ``expansions`` next steps and keeps only its
best one (greedy); all subtrees' new chains are scored together in ONE scorer call. A subtree ends
when its kept step has a final answer or at ``max_depth``; the final pick across subtrees uses
``aggregator`` (reward or vote).

Example:
    >>> from ledom_reason.types import PairScore
    >>> class LengthScorer:
    ...     async def ascore(self, pairs):
    ...         return [PairScore.build(-float(len(c)), 1) for _, c in pairs]
    >>> async def gen(question, chain, n):
    ...     return [f"#### {len(chain) + i}" for i in range(n)]
    >>> res = dvts("q?", gen, LengthScorer(), DVTSConfig(budget=4, expansions=2))
    >>> res.stats.generator_calls, res.stats.scorer_calls, len(res.candidates)
    (2, 1, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledom_reason.concurrency import run_sync
from ledom_reason.search._common import EventHook, SearchResult, StepGenerator
from ledom_reason.search._tree import Parent, StepSearchConfig, Tree, run_steps
from ledom_reason.types import Scorer


@dataclass
class DVTSConfig(StepSearchConfig):
    """DVTS settings.

    > Budget
        budget: Chains generated and scored per depth, split into ``budget // expansions`` subtrees
            (must be a multiple of ``expansions``).
        expansions: Next steps asked per subtree and depth (the greedy choice is among these).
        max_depth: Maximum number of steps per chain.
        delimiter: Joins steps into a chain (default ``"\\n\\n"``).

    > Choice
        min_depth_before_prune: Depths ``< this`` keep the first generated step of each subtree
            instead of the best-scored one.
        lam, normalize: Reward settings.
        aggregator: Final pick across subtrees: ``"reward"``, ``"majority"`` or ``"weighted"``.
        temperature: Softmax temperature for ``"weighted"``.
        extract_answer: Stop rule and answer extractor (default: explicit ``####``/``\\boxed{}``).
    """

    budget: int = 16
    expansions: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise ValueError(f"`budget` must be an int >= 1, got {self.budget!r}")
        if self.budget % self.expansions:
            raise ValueError(f"`budget` ({self.budget}) must be a multiple of `expansions` ({self.expansions})")

    @property
    def subtrees(self) -> int:
        """Number of independent subtrees, ``budget // expansions``."""
        return self.budget // self.expansions


class _Subtrees:
    """DVTS selection: each subtree keeps its single best new step (see :func:`advts`)."""

    def __init__(self, cfg: DVTSConfig) -> None:
        self.cfg = cfg
        self.active: dict[int, int] = dict.fromkeys(range(cfg.subtrees), 0)  # subtree -> current node
        self.done: dict[int, int] = {}  # subtree -> last node (finished, or stuck on blank steps)

    def frontier(self) -> list[Parent]:
        return [(self.active[s], s) for s in sorted(self.active)]

    def select(self, tree: Tree, depth: int, parents: list[Parent], children: list[list[int]]) -> dict[str, Any]:
        for (_, sub), ids in zip(parents, children, strict=True):
            assert sub is not None  # DVTS parents always name their subtree
            s = sub
            scored = tree.scored(ids)
            if not scored:  # only blank steps: the subtree stops where it is
                self.done[s] = self.active.pop(s)
                continue
            best = scored[0] if depth < self.cfg.min_depth_before_prune else tree.ranked(scored)[0]
            tree.keep(best)
            if tree.is_finished(best):
                del self.active[s]
                self.done[s] = best
            else:
                self.active[s] = best
        return {"active": len(self.active), "finished": len(self.done)}

    def stopped(self) -> bool:
        return not self.active

    def final_pool(self) -> list[int]:
        return [n for _, n in sorted({**self.active, **self.done}.items()) if n != 0]


async def advts(
    question: str,
    generator: StepGenerator,
    scorer: Scorer,
    config: DVTSConfig | None = None,
    *,
    on_event: EventHook | None = None,
) -> SearchResult:
    """DVTS (async). Arguments and result as for :func:`~ledom_reason.search.abeam_search`.

    Trace nodes carry ``subtree`` (0 … ``subtrees - 1``).
    """
    cfg = config or DVTSConfig()
    return await run_steps(Tree(question, generator, scorer, cfg, on_event), _Subtrees(cfg))


def dvts(
    question: str,
    generator: StepGenerator,
    scorer: Scorer,
    config: DVTSConfig | None = None,
    *,
    on_event: EventHook | None = None,
) -> SearchResult:
    """Sync :func:`advts` (runs ``asyncio.run``; raises ``RuntimeError`` inside a running loop)."""
    return run_sync(advts(question, generator, scorer, config, on_event=on_event))
