"""ledom-reason: reverse-language-model (LEDOM) verification of chain-of-thought.

``import ledom_reason`` is light: torch, transformers, httpx, fastapi, langchain and dspy are only
imported when the object that needs them is first used (``ledom_reason.ReverseScorer`` imports torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ledom_reason._version import __version__
from ledom_reason.reward import reverse_reward, rewards
from ledom_reason.types import Pair, PairScore, Scorer, normalize_pairs

if TYPE_CHECKING:
    from ledom_reason.scorers.config import ScorerConfig
    from ledom_reason.scorers.local import ReverseScorer
    from ledom_reason.scorers.remote import RemoteScorer

_LAZY = {
    "ReverseScorer": "ledom_reason.scorers.local",
    "ScorerConfig": "ledom_reason.scorers.config",
    "RemoteScorer": "ledom_reason.scorers.remote",
}

__all__ = [
    "Pair",
    "PairScore",
    "RemoteScorer",
    "ReverseScorer",
    "Scorer",
    "ScorerConfig",
    "__version__",
    "normalize_pairs",
    "reverse_reward",
    "rewards",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ledom_reason' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
