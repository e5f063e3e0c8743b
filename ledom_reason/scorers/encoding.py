"""Pairs → model inputs: the one encoding every scoring backend shares.

:class:`PairEncoder` turns ``(question, candidate)`` pairs into the reverse-model input (and the
forward-model input when it has a forward tokenizer), in the layout of ``ScorerConfig.bos`` /
``forward_bos`` (:class:`~ledom_reason.reverse.BosLayout`), truncated to the context, and checked
against the model's embedding table. The local scorer, the vLLM backend and any client that builds
token ids itself (e.g. a scorer talking to a vLLM server) use it, so they send the same ids.

It also owns the two checks that keep a tokenizer/model mismatch from crashing or mis-scoring:

* **padding** uses an id *inside* the embedding table (:func:`safe_pad_id`): padded positions are
  never scored nor attended to, so any in-table id is exact, while a pad id at or past the table
  (transformers 5 reloads some tokenizers with an added ``<|endoftext|>`` pad) would crash the lookup;
* **real token ids** past the table are a clear error: at load when the tokenizer's base vocabulary
  is larger than the table (:func:`check_vocabulary`), and per pair (:class:`InvalidPairError`) when
  a text contains an added token the model never had.

Example:
    >>> from ledom_reason.scorers.config import ScorerConfig
    >>> from ledom_reason.scorers.encoding import PairEncoder
    >>> class Tok:  # a tokenizer stand-in: one id per character, BOS 1
    ...     bos_token_id, eos_token_id, pad_token_id = 1, 2, None
    ...     def __len__(self): return 128
    ...     def __call__(self, text, add_special_tokens=True): return {"input_ids": [ord(c) for c in text]}
    >>> enc = PairEncoder(Tok(), ScorerConfig(bos="auto"), vocab_rows=128)
    >>> e = enc.encode([("ab", "cd")])[0]
    >>> e.reverse.input_ids, e.reverse.score_start, enc.pad_id
    ([1, 100, 99, 98, 97], 3, 2)
    >>> enc.encode([("ab", "c\\u00e9")])
    Traceback (most recent call last):
    ...
    ledom_reason.types.InvalidPairError: pair 0: candidate contains token id 233 ('?'), outside the model's embedding table (128 rows; len(tokenizer) = 128) — the tokenizer has tokens the model was never trained on
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledom_reason.reverse import BosLayout, ReverseInput
from ledom_reason.scorers.config import ScorerConfig
from ledom_reason.scorers.forward import build_forward_seq
from ledom_reason.scorers.sequence import ScoringSeq
from ledom_reason.types import InvalidPairError, PairLike, normalize_pairs

logger = logging.getLogger(__name__)

__all__ = ["EncodedPair", "PairEncoder", "check_vocabulary", "embedding_rows", "model_context", "safe_pad_id"]


@dataclass(frozen=True, slots=True)
class EncodedPair:
    """A pair tokenized for the reverse (and optional forward) model — the unit the batcher merges."""

    reverse: ReverseInput
    forward: ScoringSeq | None = None

    @property
    def num_tokens(self) -> int:
        """Tokens of the reverse input (what the batcher's token budget counts)."""
        return len(self.reverse.input_ids)


def embedding_rows(model: Any) -> int | None:
    """Rows of the model's input embedding table (the ids it can look up), ``None`` when unknown."""
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    if emb is not None:
        n = getattr(emb, "num_embeddings", None)
        if n is None and getattr(emb, "weight", None) is not None:
            n = emb.weight.shape[0]
        if n is not None:
            return int(n)
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    return int(vocab) if vocab else None


def model_context(model: Any) -> int | None:
    """The model's context length (``config.max_position_embeddings``), ``None`` when unknown."""
    n = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(n) if n else None


def safe_pad_id(tokenizer: Any, rows: int | None) -> int:
    """A padding id inside the embedding table: the pad token, else EOS, else BOS, else 0.

    Padded positions are never scored and (right padding, causal attention) never attended to, so
    any id the embedding can look up gives exact scores; an id at or past ``rows`` would crash it.
    """
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        tid = getattr(tokenizer, name, None)
        if isinstance(tid, int) and tid >= 0 and (rows is None or tid < rows):
            return tid
    return 0


def _token_name(tokenizer: Any, tid: int) -> str:
    conv = getattr(tokenizer, "convert_ids_to_tokens", None)
    name = conv(tid) if callable(conv) else None
    return repr(name) if isinstance(name, str) else "'?'"


def check_vocabulary(tokenizer: Any, rows: int | None, *, what: str = "model") -> list[int]:
    """Compare the tokenizer with the model's embedding table, once, at load.

    Returns:
        The token ids at or past the table (added tokens the model never had), logged once — as a
        warning when one of them is not a special token (pairs whose text contains one are
        rejected; padding avoids them).

    Raises:
        ValueError: the tokenizer's *base* vocabulary is larger than the table — ordinary text
            would produce ids the model cannot look up (the wrong tokenizer for this model).
    """
    if rows is None:
        return []
    n = len(tokenizer)
    if n <= rows:
        return []
    base = getattr(tokenizer, "vocab_size", None)
    if isinstance(base, int) and base > rows:
        raise ValueError(
            f"tokenizer and {what} do not match: len(tokenizer) = {n} (base vocabulary {base}) but the "
            f"{what}'s embedding table has {rows} rows, so ordinary text can produce ids it cannot look up "
            "(load the tokenizer this model was trained with)"
        )
    outside = list(range(rows, n))
    shown = ", ".join(f"{i} {_token_name(tokenizer, i)}" for i in outside[:5]) + (" …" if len(outside) > 5 else "")
    # Special tokens (pad, unk…) added on reload never come out of ordinary text: info. A plain added
    # token outside the table will, in some pairs: warning.
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    level = logging.INFO if all(i in special for i in outside) else logging.WARNING
    logger.log(
        level, "len(tokenizer) = %d but the %s's embedding table has %d rows: token ids %s are outside it. "
        "Padding uses id %d instead (padding is never scored); a pair whose text contains one of these tokens "
        "is rejected with an error", n, what, rows, shown, safe_pad_id(tokenizer, rows),
    )
    return outside


class PairEncoder:
    """Encode ``(question, candidate)`` pairs exactly as the local scorer does (see module docstring).

    Key init args:
        tokenizer: The reverse model's tokenizer.
        config: :class:`ScorerConfig` — uses ``bos``, ``forward_bos``, ``truncate``,
            ``forward_chat_template`` and ``max_length`` (which overrides ``max_length`` here).
        max_length: The reverse model's context (``None`` = no limit).
        vocab_rows: The reverse model's embedding rows (``None`` = no id check, pad as the tokenizer says).
        forward_tokenizer / forward_max_length / forward_vocab_rows: the same for the forward model;
            without a forward tokenizer only reverse inputs are built.

    Use :meth:`for_models` to read the context and table sizes from loaded models.
    """

    def __init__(
        self,
        tokenizer: Any,
        config: ScorerConfig | None = None,
        *,
        max_length: int | None = None,
        vocab_rows: int | None = None,
        forward_tokenizer: Any | None = None,
        forward_max_length: int | None = None,
        forward_vocab_rows: int | None = None,
    ) -> None:
        self.config = config or ScorerConfig()
        self.tokenizer = tokenizer
        self.layout = BosLayout.resolve(tokenizer, self.config.bos)
        self.max_length = self.config.max_length or max_length
        self.vocab_rows = vocab_rows
        self.pad_id = safe_pad_id(tokenizer, vocab_rows)
        self.forward_tokenizer = forward_tokenizer
        self.forward_layout = (BosLayout.resolve(forward_tokenizer, self.config.forward_bos)
                               if forward_tokenizer is not None else None)
        self.forward_max_length = (self.config.max_length or forward_max_length) if forward_tokenizer is not None else None
        self.forward_vocab_rows = forward_vocab_rows
        self.forward_pad_id = safe_pad_id(forward_tokenizer, forward_vocab_rows) if forward_tokenizer is not None else 0
        for layout, rows, name in ((self.layout, vocab_rows, "bos"), (self.forward_layout, forward_vocab_rows, "forward_bos")):
            if layout is not None and rows is not None and layout.prefix_id is not None and layout.prefix_id >= rows:
                raise ValueError(f"`{name}`={layout.setting!r} puts token id {layout.prefix_id} first, outside the "
                                 f"model's embedding table ({rows} rows); choose another layout (e.g. 'none')")

    @classmethod
    def for_models(
        cls,
        model: Any,
        tokenizer: Any,
        config: ScorerConfig | None = None,
        *,
        forward_model: Any | None = None,
        forward_tokenizer: Any | None = None,
        check: bool = True,
    ) -> PairEncoder:
        """An encoder sized from loaded models (context from their configs, ids checked against their tables).

        Args:
            check: Run :func:`check_vocabulary` now (raises on a base-vocabulary mismatch, warns once
                on added tokens outside the table).
        """
        rows = embedding_rows(model)
        frows = embedding_rows(forward_model) if forward_model is not None else None
        if check:
            check_vocabulary(tokenizer, rows, what="reverse model")
            if forward_model is not None and forward_tokenizer is not None:
                check_vocabulary(forward_tokenizer, frows, what="forward model")
        return cls(
            tokenizer, config, max_length=model_context(model), vocab_rows=rows,
            forward_tokenizer=forward_tokenizer if forward_model is not None else None,
            forward_max_length=model_context(forward_model) if forward_model is not None else None,
            forward_vocab_rows=frows,
        )

    # ------------------------------------------------------------------ encoding
    def encode_pair(self, question: str, candidate: str) -> EncodedPair:
        """Encode one pair (already type-checked strings).

        Raises:
            ValueError: empty text, too long for the context, or a token id outside the table.
        """
        rev = self.layout.build(self.tokenizer, question, candidate, max_length=self.max_length,
                                truncate=self.config.truncate)
        self._check_ids(rev.input_ids, rev.score_start, self.vocab_rows, self.tokenizer, "")
        fwd = None
        if self.forward_tokenizer is not None and self.forward_layout is not None:
            fwd = build_forward_seq(
                self.forward_tokenizer, question, candidate, chat_template=self.config.forward_chat_template,
                max_length=self.forward_max_length, truncate=self.config.truncate, bos=self.forward_layout,
            )
            self._check_ids(fwd.input_ids, fwd.score_start, self.forward_vocab_rows, self.forward_tokenizer,
                            "forward ", scored="candidate", context="question")
        return EncodedPair(rev, fwd)

    def encode(self, pairs: Sequence[PairLike]) -> list[EncodedPair]:
        """Validate and encode pairs, in order.

        Raises:
            InvalidPairError / PairTypeError: a bad pair (``ValueError`` / ``TypeError``; ``.index`` names it).
        """
        out = []
        for i, (q, c) in enumerate(normalize_pairs(pairs)):
            try:
                out.append(self.encode_pair(q, c))
            except ValueError as e:
                raise InvalidPairError(str(e), i) from None
        return out

    @staticmethod
    def _check_ids(ids: list[int], split: int, rows: int | None, tokenizer: Any, model: str, *,
                   scored: str = "question", context: str = "candidate") -> None:
        if rows is None or not ids or (max(ids) < rows and min(ids) >= 0):
            return
        pos = next(p for p, t in enumerate(ids) if not 0 <= t < rows)
        where = scored if pos >= split else context  # a first token outside the table fails at init
        tid = ids[pos]
        raise ValueError(
            f"{where} contains token id {tid} ({_token_name(tokenizer, tid)}), outside the {model}model's "
            f"embedding table ({rows} rows; len(tokenizer) = {len(tokenizer)}) — the tokenizer has tokens "
            "the model was never trained on"
        )
