"""Evaluation: datasets, answer grading (extraction is core: :mod:`ledom_reason.answers`), the experiment runner, plots, and the
verifier-discrimination set.

Submodules are imported on first use so that ``import ledom_reason.eval`` stays light:
:mod:`~ledom_reason.eval.grading`, :mod:`~ledom_reason.eval.datasets`,
:mod:`~ledom_reason.eval.stats`, :mod:`~ledom_reason.eval.candidates`, :mod:`~ledom_reason.eval.runner`,
:mod:`~ledom_reason.eval.plots`, :mod:`~ledom_reason.eval.discrimination`, :mod:`~ledom_reason.eval.generation`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "is_equiv": "grading",
    "Problem": "datasets",
    "load_dataset": "datasets",
    "DATASETS": "datasets",
    "wilson_ci": "stats",
    "bootstrap_ci": "stats",
    "pairwise_auc": "stats",
    "read_candidates": "candidates",
    "EvalConfig": "runner",
    "run_eval": "runner",
    "summarize": "runner",
    "corrupt_solution": "discrimination",
    "build_discrimination_set": "discrimination",
    "evaluate_discrimination": "discrimination",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"ledom_reason.eval.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'ledom_reason.eval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
