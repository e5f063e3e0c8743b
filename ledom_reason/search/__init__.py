"""Search over candidate reasoning with the reverse reward: Best-of-N, voting, beam search, DVTS.

Pure Python over any object with ``score(pairs)`` / ``ascore(pairs)`` (the
:class:`~ledom_reason.types.Scorer` protocol); no framework or model imports.

* :func:`select_best_of_n` / :func:`aselect_best_of_n` / :func:`select_best_of_n_batch` — pick one of N
  given candidates (aggregators ``reward``, ``majority``, ``weighted``, ``random``, ``forward``).
* :func:`beam_search` / :func:`abeam_search` — step-level beam search over an async step generator.
* :func:`dvts` / :func:`advts` — independent greedy subtrees, then a final pick.

Every result carries compute accounting (:class:`SearchStats`); progress arrives as
:class:`SearchEvent` s through ``on_event``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledom_reason.search._common import (
    STATS_FIELDS,
    AnswerExtractor,
    EventHook,
    GeneratedSteps,
    SearchEvent,
    SearchResult,
    SearchStats,
    StepGenerator,
    TraceNode,
)
from ledom_reason.search.aggregate import AGGREGATORS, Choice, aggregate, softmax
from ledom_reason.search.beam import BeamSearchConfig, abeam_search, beam_search
from ledom_reason.search.best_of_n import (
    BestOfNConfig,
    BestOfNResult,
    CandidateRecord,
    aselect_best_of_n,
    aselect_best_of_n_batch,
    select_best_of_n,
    select_best_of_n_batch,
    select_from_scores,
)
from ledom_reason.search.dvts import DVTSConfig, advts, dvts

SEARCHES: dict[str, Callable[..., Any]] = {
    "best_of_n": select_best_of_n,
    "beam": beam_search,
    "dvts": dvts,
}
"""Name → sync search function (for the CLI)."""

ASYNC_SEARCHES: dict[str, Callable[..., Any]] = {
    "best_of_n": aselect_best_of_n,
    "beam": abeam_search,
    "dvts": advts,
}
"""Name → async search function."""

SEARCH_CONFIGS: dict[str, type] = {
    "best_of_n": BestOfNConfig,
    "beam": BeamSearchConfig,
    "dvts": DVTSConfig,
}
"""Name → config dataclass."""

__all__ = [
    "AGGREGATORS",
    "ASYNC_SEARCHES",
    "SEARCHES",
    "SEARCH_CONFIGS",
    "STATS_FIELDS",
    "AnswerExtractor",
    "BeamSearchConfig",
    "BestOfNConfig",
    "BestOfNResult",
    "CandidateRecord",
    "Choice",
    "DVTSConfig",
    "EventHook",
    "GeneratedSteps",
    "SearchEvent",
    "SearchResult",
    "SearchStats",
    "StepGenerator",
    "TraceNode",
    "abeam_search",
    "advts",
    "aggregate",
    "aselect_best_of_n",
    "aselect_best_of_n_batch",
    "beam_search",
    "dvts",
    "select_best_of_n",
    "select_best_of_n_batch",
    "select_from_scores",
    "softmax",
]
