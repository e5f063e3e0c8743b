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

import time
from dataclasses import dataclass
from typing import Any

from ledom_reason.search._common import EventHook, SearchResult, StepGenerator, aemit, run_sync
from ledom_reason.search._tree import StepSearchConfig, Tree


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


async def advts(
    question: str,
    generator: StepGenerator,
    scorer: Any,
    config: DVTSConfig | None = None,
    *,
    on_event: EventHook | None = None,
) -> SearchResult:
    """DVTS (async). Arguments and result as for :func:`~ledom_reason.search.abeam_search`.

    Trace nodes carry ``subtree`` (0 … ``subtrees - 1``).
    """
    cfg = config or DVTSConfig()
    t0 = time.perf_counter()
    tree = Tree(question, generator, scorer, cfg, on_event)
    active: dict[int, int] = dict.fromkeys(range(cfg.subtrees), 0)  # subtree -> current node
    done: dict[int, int] = {}
    for depth in range(cfg.max_depth):
        order = sorted(active)
        children = await tree.expand(depth, [(active[s], s) for s in order])
        for s, ids in zip(order, children, strict=True):
            scored = [i for i in ids if tree.trace[i].reward is not None]
            if not scored:  # only blank steps: the subtree stops where it is
                done[s] = active.pop(s)
                continue
            if depth < cfg.min_depth_before_prune:
                best = scored[0]
            else:
                best = min(scored, key=lambda i: (-tree.trace[i].reward, i))  # type: ignore[operator]
            tree.trace[best].status = "finished" if tree.is_finished(best) else "kept"
            if tree.is_finished(best):
                done[s] = best
                del active[s]
            else:
                active[s] = best
        await aemit(on_event, "depth_end", depth, active=len(active), finished=len(done))
        if not active:
            break
    tree.stats.wall_time_s = time.perf_counter() - t0
    final = [n for _, n in sorted({**active, **done}.items()) if n != 0]
    return await tree.result(final)


def dvts(
    question: str,
    generator: StepGenerator,
    scorer: Any,
    config: DVTSConfig | None = None,
    *,
    on_event: EventHook | None = None,
) -> SearchResult:
    """Sync :func:`advts` (runs ``asyncio.run``; raises ``RuntimeError`` inside a running loop)."""
    return run_sync(advts(question, generator, scorer, config, on_event=on_event), "dvts")
