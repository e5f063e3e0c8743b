"""Training reverse models (installed as ``ledom_reason.training``; extra ``train``).

Tokenizer → pretrain (reverse or forward twin) → fine-tune into a verifier → data-quality score.
Importing this package is light (no torch); the names below load their module on first use.

Example:
    >>> from ledom_reason.training import PretrainConfig  # doctest: +SKIP
    >>> from ledom_reason.training import run_pretrain  # doctest: +SKIP
    >>> run_pretrain(PretrainConfig(inputs=["corpus.txt"], tokenizer="tok/", out_dir="runs/rev"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PretrainConfig": "config",
    "FinetuneConfig": "config",
    "TokenizerConfig": "config",
    "load_config": "parser",
    "train_bpe_tokenizer": "tokenizer",
    "train_tokenizer": "tokenizer",
    "run_pretrain": "pretrain",
    "run_finetune": "finetune",
    "score_documents": "quality",
    "QualityScore": "quality",
    "chunked_linear_cross_entropy": "loss",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'ledom_reason.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ledom_reason.training.{mod}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
