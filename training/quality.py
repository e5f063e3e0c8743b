"""Data-quality score of paper 2: ``S = mean forward CE − mean reverse CE`` per document.

A document whose reversed reading is easier for the reverse model than its forward reading is
for the forward model gets a high ``S``. Both models read the *same* tokens in the layouts used for
training: forward ``[BOS] + ids``, reverse ``reverse_document(ids)`` = ``[BOS] + reverse(ids)``
(a (question, solution) row is ``ids(q) + ids(s)``, whose reverse is exactly the scorer's
``build_reverse_ids`` input). Every token after the first position is scored; documents longer
than ``max_length`` keep their first ``max_length - 1`` tokens (plus BOS) in both directions.

Example:
    >>> from ledom_reason.training.quality import select_top
    >>> select_top([0.1, 0.9, 0.5, -1.0], 0.5)
    [1, 2]
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledom_reason.reverse import reverse_document
from ledom_reason.training.data import Doc, encode_many

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityScore:
    """Per-document result: cross-entropies in nats per token and ``quality = forward_ce − reverse_ce``."""

    forward_ce: float
    reverse_ce: float
    quality: float
    tokens: int


def _plain_ids(tokenizer: Any, docs: Sequence[Doc]) -> list[list[int]]:
    flat: list[str] = []
    for d in docs:
        flat += list(d) if isinstance(d, tuple) else [d]
    it = iter(encode_many(tokenizer, flat))
    return [next(it) + next(it) if isinstance(d, tuple) else next(it) for d in docs]


def _layouts(ids: list[int], bos: int | None, max_length: int | None) -> tuple[list[int], list[int]]:
    prefix = [bos] if bos is not None else []
    if max_length is not None:
        ids = ids[: max_length - len(prefix)]
    return prefix + ids, reverse_document(ids, bos_token_id=bos)


def score_documents(
    forward_model: Any,
    reverse_model: Any,
    tokenizer: Any,
    docs: Sequence[Doc],
    *,
    batch_tokens: int = 16384,
    head_chunk_bytes: int = 64 * 2**20,
    max_length: int | None = None,
) -> list[QualityScore]:
    """Score documents with loaded models sharing ``tokenizer`` (twins trained together).

    Raises:
        ValueError: a document has fewer than 2 tokens in its layout (nothing to score).
    """
    import torch

    from ledom_reason.scorers.engine import ScoringSeq, fast_logprobs

    device = next(reverse_model.parameters()).device
    if max_length is None:
        lens = [getattr(m.config, "max_position_embeddings", None) for m in (forward_model, reverse_model)]
        max_length = min((x for x in lens if x), default=None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    fwd, rev, counts = [], [], []
    for i, ids in enumerate(_plain_ids(tokenizer, docs)):
        f, r = _layouts(ids, tokenizer.bos_token_id, max_length)
        if len(f) < 2:
            raise ValueError(f"document {i} is too short to score (needs 2 tokens with BOS)")
        fwd.append(ScoringSeq(f, 1))
        rev.append(ScoringSeq(r, 1))
        counts.append(len(f) - 1)
    with torch.inference_mode():
        lf = fast_logprobs(forward_model, fwd, device, batch_tokens=batch_tokens,
                           head_chunk_bytes=head_chunk_bytes, pad_id=int(pad))
        lr = fast_logprobs(reverse_model, rev, device, batch_tokens=batch_tokens,
                           head_chunk_bytes=head_chunk_bytes, pad_id=int(pad))
    out = []
    for a, b, n in zip(lf, lr, counts, strict=True):
        fce, rce = -a / n, -b / n
        out.append(QualityScore(forward_ce=fce, reverse_ce=rce, quality=fce - rce, tokens=n))
    return out


def load_pair(forward_dir: str | os.PathLike[str], reverse_dir: str | os.PathLike[str], *,
              device: str | None = None, dtype: str | None = None) -> tuple[Any, Any, Any]:
    """Load ``(forward_model, reverse_model, tokenizer)``; the two tokenizers must have the same vocabulary."""
    from ledom_reason.scorers.local import load_causal_lm, resolve_device, resolve_dtype
    from ledom_reason.training.data import tokenizer_fingerprint

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    rev, tok = load_causal_lm(reverse_dir, None, dev, dt)
    fwd, ftok = load_causal_lm(forward_dir, None, dev, dt)
    if tokenizer_fingerprint(tok) != tokenizer_fingerprint(ftok):
        raise ValueError("`forward` and `reverse` models use different tokenizers (train the twin with the same one)")
    return fwd, rev, tok


def select_top(scores: Sequence[float], fraction: float) -> list[int]:
    """Indices (in input order) of the ``ceil(fraction · n)`` highest scores; ties keep earlier documents."""
    if not 0 < fraction <= 1:
        raise ValueError(f"`keep_top` must be in (0, 1], got {fraction}")
    k = math.ceil(fraction * len(scores))
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return sorted(order)
