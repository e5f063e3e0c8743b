"""Is this checkpoint a reverse model? Mean NLL of built-in text read backwards vs forwards.

A reverse (LEDOM) model has learned ``P(x_t | x_{t+1}, …)``: reversed text is easy for it and text in
reading order is hard — the other way round for a forward model, and neither for random weights.
:func:`direction_check` reads the built-in paragraphs of :data:`~ledom_reason.scorers.checkpoint.PROBE_TEXTS`
(plain English and grade-school math) both ways, under each candidate first-token layout
(``bos="auto"`` / ``"none"`` / the EOS token: the ``ScorerConfig.bos`` values a checkpoint may have
been trained with), and compares the best mean NLL per token of each reading.

Verdict (thresholds chosen from measurements, ``benchmarks/direction_check.py``,
docs/checkpoints.md): ``margin = forward NLL − reverse NLL`` (nats/token, best layout each);
``reverse`` when ``margin ≥ MIN_MARGIN`` and it is at least ``MIN_RELATIVE`` of the reverse NLL and
every paragraph agrees, ``forward`` for the mirror case, else ``unclear``.

Every token after the first of a paragraph is scored, in every layout and reading, so the numbers
compare like with like. The scoring runs through the batched fast path (:func:`~ledom_reason.scorers.engine.fast_logprobs`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ledom_reason.reverse import BosLayout, reverse_ids
from ledom_reason.scorers.checkpoint import PROBE_TEXTS
from ledom_reason.scorers.encoding import embedding_rows, safe_pad_id

logger = logging.getLogger(__name__)

__all__ = ["MIN_AGREEMENT", "MIN_MARGIN", "MIN_RELATIVE", "QUICK_TOKENS", "DirectionCheck", "LayoutReading",
           "candidate_layouts", "direction_check", "quick_direction_check"]

Direction = Literal["reverse", "forward", "unclear"]

# Measured (benchmarks/direction_check.py): trained 4.7M models +6.1 (ledom-tiny) / −5.4 (its forward
# twin) nats/token with every paragraph agreeing; five random-weight models |margin| ≤ 0.28 with 50–83 %
# of paragraphs agreeing. The thresholds sit several times away from both.
MIN_MARGIN = 1.0
"""Smallest |forward NLL − reverse NLL| (nats/token) that counts as a direction."""
MIN_RELATIVE = 0.1
"""… and as a fraction of the lower of the two NLLs."""
MIN_AGREEMENT = 1.0
"""Fraction of paragraphs whose own difference must have the sign of the overall margin."""
QUICK_TOKENS = 32
"""Tokens per paragraph of the cheap load-time check (:func:`quick_direction_check`)."""


@dataclass
class LayoutReading:
    """Mean NLL per token of the probe paragraphs in one layout, read reversed and in reading order."""

    layout: str
    first_token: str | None
    reverse_nll: float
    forward_nll: float
    tokens: int
    per_text_reverse: list[float] = field(default_factory=list)
    per_text_forward: list[float] = field(default_factory=list)


@dataclass
class DirectionCheck:
    """Result of :func:`direction_check` (``asdict``-able for ``--json``).

    Attributes:
        direction: ``"reverse"``, ``"forward"`` or ``"unclear"``.
        margin: Best forward NLL − best reverse NLL (nats/token; > 0 reads reversed text better).
        best_layout: The ``bos`` setting with the lowest reverse NLL (what to score this model with).
        best_forward_layout: The layout with the lowest forward NLL.
        reverse_nll / forward_nll: Those two NLLs.
        agreement: Fraction of paragraphs whose own difference has the sign of ``margin``.
        layouts: Every layout's readings.
    """

    direction: Direction
    margin: float
    best_layout: str
    best_forward_layout: str
    reverse_nll: float
    forward_nll: float
    agreement: float
    texts: int
    layouts: list[LayoutReading]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line with the numbers."""
        return (f"direction: {self.direction} (mean NLL/token: reversed {self.reverse_nll:.3f} with bos="
                f"{self.best_layout!r}, reading order {self.forward_nll:.3f} with bos={self.best_forward_layout!r}; "
                f"margin {self.margin:+.3f}, {self.agreement:.0%} of {self.texts} paragraphs agree)")

    def warning(self, expected: Direction = "reverse") -> str | None:
        """A plain-words warning when the verdict contradicts ``expected`` (``None`` otherwise)."""
        if self.direction == expected:
            return None
        if expected == "reverse" and self.direction == "forward":
            return ("this looks like a FORWARD model: it reads text in normal order much better than reversed "
                    f"(NLL {self.forward_nll:.2f} vs {self.reverse_nll:.2f} nats/token). The reverse score "
                    "log P_rev(question | candidate) needs a reverse (LEDOM) model; with this one the scores "
                    "are meaningless. Pass it as forward_model / --forward-model instead.")
        if expected == "forward" and self.direction == "reverse":
            return ("this looks like a REVERSE model: it reads reversed text much better than text in normal "
                    f"order (NLL {self.reverse_nll:.2f} vs {self.forward_nll:.2f} nats/token), but it was given "
                    "as the forward model. Swap the two models.")
        if self.direction == "unclear":
            return (f"could not tell which way this model reads (margin {self.margin:+.3f} nats/token): "
                    "random or undertrained weights, or text far from its training data")
        return None


def candidate_layouts(tokenizer: Any) -> list[str]:
    """The ``bos`` settings worth trying: ``"auto"`` (if the tokenizer has a BOS), ``"none"``, and its EOS."""
    out = ["auto"] if getattr(tokenizer, "bos_token_id", None) is not None else []
    out.append("none")
    eos, bos = getattr(tokenizer, "eos_token", None), getattr(tokenizer, "bos_token", None)
    if eos and eos != bos and eos in tokenizer.get_vocab():
        out.append(str(eos))
    return out


def direction_check(
    model: Any,
    tokenizer: Any,
    *,
    texts: Sequence[str] | None = None,
    layouts: Sequence[str] | None = None,
    max_tokens: int | None = None,
    batch_tokens: int = 8192,
) -> DirectionCheck:
    """Read the probe paragraphs reversed and in order under each layout; give the verdict.

    Args:
        model: A causal LM (``ReverseScorer.model``).
        tokenizer: Its tokenizer.
        texts: Paragraphs to read (default: all of :data:`PROBE_TEXTS`).
        layouts: ``bos`` settings to try (default: :func:`candidate_layouts`).
        max_tokens: Read only each paragraph's first ``max_tokens`` tokens (default: all).
        batch_tokens: Token budget of one model pass.

    Raises:
        ValueError: no paragraph has two tokens; an unknown layout.
    """
    from ledom_reason.scorers.engine import ScoringSeq, fast_logprobs

    texts = list(texts) if texts is not None else [t for _, t in PROBE_TEXTS]
    layouts = list(layouts) if layouts is not None else candidate_layouts(tokenizer)
    rows = embedding_rows(model)
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 10**9
    seqs: list[ScoringSeq] = []
    meta: list[tuple[int, int, bool]] = []  # (layout index, text index, reversed)
    for li, name in enumerate(layouts):
        layout = BosLayout.resolve(tokenizer, name)
        for ti, ids in enumerate(layout.text_ids(tokenizer, texts)):
            ids = ids[: min(limit - len(layout.prefix), max_tokens or limit)]
            if len(ids) < 2:
                continue
            for rev in (True, False):
                body = reverse_ids(ids) if rev else list(ids)
                seqs.append(ScoringSeq(layout.prefix + body, len(layout.prefix) + 1))
                meta.append((li, ti, rev))
    if not seqs:
        raise ValueError("the probe texts tokenize to fewer than 2 tokens each")
    device = next(model.parameters()).device
    vals = fast_logprobs(model, seqs, device, batch_tokens=batch_tokens, head_chunk_bytes=64 * 2**20,
                         pad_id=safe_pad_id(tokenizer, rows))
    readings = []
    for li, name in enumerate(layouts):
        per: dict[bool, list[tuple[float, int]]] = {True: [], False: []}
        for (l2, _ti, rev), s, v in zip(meta, seqs, vals, strict=True):
            if l2 == li:
                per[rev].append((-v, len(s.input_ids) - s.score_start))
        n = sum(k for _, k in per[True])
        layout = BosLayout.resolve(tokenizer, name)
        first = None if layout.prefix_id is None else str(tokenizer.convert_ids_to_tokens(layout.prefix_id))
        readings.append(LayoutReading(
            layout=name, first_token=first,
            reverse_nll=sum(v for v, _ in per[True]) / n, forward_nll=sum(v for v, _ in per[False]) / n, tokens=n,
            per_text_reverse=[v / k for v, k in per[True]], per_text_forward=[v / k for v, k in per[False]],
        ))
    return _verdict(readings)


def quick_direction_check(model: Any, tokenizer: Any, *, bos: str = "auto") -> DirectionCheck:
    """The cheap check ``from_pretrained`` runs: one English and one math paragraph, their first
    :data:`QUICK_TOKENS` tokens, in the layout the scorer will use — four sequences, one model pass."""
    english = next(t for k, t in PROBE_TEXTS if k == "english")
    math = next(t for k, t in PROBE_TEXTS if k == "math")
    return direction_check(model, tokenizer, texts=[english, math], layouts=[bos], max_tokens=QUICK_TOKENS)


def _verdict(readings: list[LayoutReading]) -> DirectionCheck:
    best_rev = min(readings, key=lambda r: r.reverse_nll)
    best_fwd = min(readings, key=lambda r: r.forward_nll)
    margin = best_fwd.forward_nll - best_rev.reverse_nll
    diffs = [f - r for f, r in zip(best_fwd.per_text_forward, best_rev.per_text_reverse, strict=True)]
    agree = sum(1 for d in diffs if (d > 0) == (margin > 0) and d != 0) / max(1, len(diffs))
    low = min(best_rev.reverse_nll, best_fwd.forward_nll)
    clear = abs(margin) >= MIN_MARGIN and abs(margin) >= MIN_RELATIVE * low and agree >= MIN_AGREEMENT
    direction: Direction = ("reverse" if margin > 0 else "forward") if clear else "unclear"
    return DirectionCheck(
        direction=direction, margin=margin, best_layout=best_rev.layout, best_forward_layout=best_fwd.layout,
        reverse_nll=best_rev.reverse_nll, forward_nll=best_fwd.forward_nll, agreement=agree, texts=len(diffs),
        layouts=readings,
    )


def load_time_check(model: Any, tokenizer: Any, *, bos: str = "auto", expected: Direction = "reverse",
                    name: str = "model") -> DirectionCheck | None:
    """Run :func:`quick_direction_check` and log a warning when ``model`` reads the wrong way.

    Used by ``ReverseScorer.from_pretrained`` (turn it off with ``check_direction=False`` or the
    environment variable ``LEDOM_CHECK_DIRECTION=0``). Only a clear contradiction warns; ``unclear``
    (random or undertrained weights) is logged at debug level. A model the check cannot run on
    (e.g. a learned logit scale) is skipped with a debug message.
    """
    try:
        check = quick_direction_check(model, tokenizer, bos=bos)
    except (ValueError, NotImplementedError, RuntimeError, TypeError) as e:  # the check is advisory
        logger.debug("direction check skipped for %s: %s", name, e)
        return None
    msg = check.warning(expected)
    if msg and check.direction != "unclear":
        logger.warning("%s: %s [%s]", name, msg, check.summary())
    else:
        logger.debug("%s: %s", name, check.summary())
    return check
