"""Step-level beam search guided by the reverse reward.

Each depth: every active beam asks the generator for ``expansions`` next steps; ALL
``beam_width · expansions`` partial chains are scored in ONE scorer call; the best ``beam_width``
survive. A step that contains a final answer (``config.extract_answer``; default: ``####`` or
``\\boxed{}``) finishes its chain.

Example:
    >>> from ledom_reason.types import PairScore
    >>> class LengthScorer:
    ...     async def ascore(self, pairs):
    ...         return [PairScore.build(-float(len(c)), 1) for _, c in pairs]
    >>> async def gen(question, chain, n):
    ...     return ["#### 4"] if chain else [f"step {i}" for i in range(n)]
    >>> res = beam_search("2+2?", gen, LengthScorer(), BeamSearchConfig(beam_width=2, expansions=2))
    >>> res.answer, res.steps, res.stats.scorer_calls
    ('4', ['step 0', '#### 4'], 2)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ledom_reason.concurrency import run_sync
from ledom_reason.search._common import EventHook, SearchResult, StepGenerator
from ledom_reason.search._tree import Parent, StepSearchConfig, Tree, run_steps
from ledom_reason.types import Scorer

logger = logging.getLogger(__name__)


@dataclass
class BeamSearchConfig(StepSearchConfig):
    """Step-level beam search settings.

    > Tree shape
        beam_width: k, chains kept after each depth.
        expansions: n, next steps asked from the generator per kept chain (k·n chains scored per depth).
        max_depth: Maximum number of steps per chain.
        delimiter: Joins steps into a chain (default a blank line, ``"\\n\\n"``).

    > Pruning
        min_depth_before_prune: Depths ``< this`` keep chains without looking at rewards (round-robin
            over parents: the first new step of each beam, then the second…), guarding against early
            pruning. Rewards are still computed and traced.
        keep_finished: ``True``: a finished chain keeps competing for a slot in the beam (and
            leaves when better chains push it out). ``False``: every finished chain leaves the beam
            for the final pool at once, the beam refills with unfinished chains, and the search
            stops when the pool holds ``beam_width`` finished chains.

    > Reward and final pick
        lam, normalize: Reward ``(1-λ)·log P_fwd + λ·log P_rev`` with ``"sum"``/``"mean"`` log-probs.
        aggregator: Final pick among finished chains: ``"reward"``, ``"majority"`` or ``"weighted"``.
        temperature: Softmax temperature for ``"weighted"``.
        extract_answer: Stop rule and answer extractor (default: explicit ``####``/``\\boxed{}``).
    """

    beam_width: int = 4
    keep_finished: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.beam_width, bool) or not isinstance(self.beam_width, int) or self.beam_width < 1:
            raise ValueError(f"`beam_width` must be an int >= 1, got {self.beam_width!r}")


def _round_robin(children: list[list[int]]) -> list[int]:
    out: list[int] = []
    for j in range(max((len(c) for c in children), default=0)):
        out += [c[j] for c in children if j < len(c)]
    return out


class _Beam:
    """Beam selection: the best ``beam_width`` chains of each depth survive (see :func:`abeam_search`)."""

    def __init__(self, cfg: BeamSearchConfig) -> None:
        self.cfg = cfg
        self.active: list[int] = [0] * cfg.beam_width  # k copies of the root: k generator calls at depth 0
        self.carried: list[int] = []  # finished chains still holding a beam slot (keep_finished=True)
        self.pool: list[int] = []  # finished chains that left the beam (keep_finished=False)

    def frontier(self) -> list[Parent]:
        return [(p, None) for p in self.active]

    def select(self, tree: Tree, depth: int, parents: list[Parent], children: list[list[int]]) -> dict[str, Any]:
        cfg, k = self.cfg, self.cfg.beam_width
        guarded = depth < cfg.min_depth_before_prune  # early depths: round-robin, rewards ignored
        new = tree.scored(_round_robin(children) if guarded else [i for c in children for i in c])
        candidates = self.carried + new  # `carried` is always empty when keep_finished=False
        ordered = candidates if guarded else tree.ranked(candidates)
        if not cfg.keep_finished:
            newly_finished = [i for i in ordered if tree.is_finished(i)]
            for i in newly_finished:
                tree.keep(i)
            self.pool += newly_finished
            ordered = [i for i in ordered if not tree.is_finished(i)]
        kept, dropped = ordered[:k], ordered[k:]
        for i in dropped:
            tree.trace[i].status = "pruned"
        for i in kept:
            tree.keep(i)
        self.carried = [i for i in kept if tree.is_finished(i)]
        self.active = [i for i in kept if not tree.is_finished(i)]
        return {"kept": len(kept), "active": len(self.active), "finished": len(self.carried) + len(self.pool),
                "pruned": len(dropped), "best_reward": None if not kept else tree.trace[kept[0]].reward}

    def stopped(self) -> bool:
        return not self.active or (not self.cfg.keep_finished and len(self.pool) >= self.cfg.beam_width)

    def final_pool(self) -> list[int]:
        return (self.carried + self.pool) or self.active


async def abeam_search(
    question: str,
    generator: StepGenerator,
    scorer: Scorer,
    config: BeamSearchConfig | None = None,
    *,
    on_event: EventHook | None = None,
) -> SearchResult:
    """Step-level beam search (async).

    Args:
        question: The question.
        generator: ``async (question, partial_chain, n) -> list[str]`` of next steps.
        scorer: Any :class:`~ledom_reason.types.Scorer` (``ascore`` is used; ``score`` in a thread otherwise).
        config: :class:`BeamSearchConfig`.
        on_event: Optional hook, sync or async, receiving ``depth_start``/``scored``/``depth_end``/``finished``.

    Returns:
        A :class:`~ledom_reason.search.SearchResult` with the chosen chain, the full trace and accounting.
    """
    cfg = config or BeamSearchConfig()
    return await run_steps(Tree(question, generator, scorer, cfg, on_event), _Beam(cfg))


def beam_search(
    question: str,
    generator: StepGenerator,
    scorer: Scorer,
    config: BeamSearchConfig | None = None,
    *,
    on_event: EventHook | None = None,
) -> SearchResult:
    """Sync :func:`abeam_search` (runs ``asyncio.run``; raises ``RuntimeError`` inside a running loop)."""
    return run_sync(abeam_search(question, generator, scorer, config, on_event=on_event))
