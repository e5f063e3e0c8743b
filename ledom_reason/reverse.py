"""Token-level reversal: the one place in ledom-reason where sequences are reversed.

Convention (used by scoring *and* training, so that a model scores exactly what it was trained on):

1. ``question`` and ``candidate`` are tokenized **separately** with the scorer's own tokenizer and
   **without** special tokens.
2. The reverse-model input is::

       [BOS] + reverse(ids(candidate)) + reverse(ids(question))

   with the BOS token only when the tokenizer defines one — the default layout, ``bos="auto"``.
   The first token is a setting (:class:`BosLayout`, ``ScorerConfig.bos`` and the training
   configs' ``bos``), so a checkpoint trained on another layout scores what it saw:

   * ``"auto"``: the tokenizer's BOS when it has one, else nothing (the default);
   * ``"none"``: nothing — ``reverse(ids(candidate)) + reverse(ids(question))``;
   * ``"<token>"``: that token, e.g. ``"<s>"`` or ``"<|endoftext|>"`` (it must be in the vocabulary);
   * ``"tokenizer"``: each text tokenized *with* the tokenizer's own special tokens, reversed, and
     the BOS that then ends up last dropped; nothing put first (the layout of a third-party
     loader of the public LEDOM checkpoints; identical to ``"none"`` for a tokenizer that adds
     only a BOS, different when it also adds an EOS). See docs/checkpoints.md.
3. Only the question positions are scored. Logits at position ``i`` predict token ``i + 1`` *of the
   reversed sequence*, so the question token at position ``j`` is scored by the logits at ``j - 1``.
   The candidate is never empty, so every question token has a predecessor.

Truncation when the input exceeds ``max_length``: ``"candidate_left"`` (default) drops the
candidate's *earliest* tokens and keeps the question whole; ``"error"`` raises. A question that alone
does not fit (with BOS and one candidate token) always raises ``ValueError``.

Example:
    >>> from ledom_reason.reverse import reverse_ids, build_reverse_ids
    >>> reverse_ids([1, 2, 3])
    [3, 2, 1]
    >>> r = build_reverse_ids([7, 8], [4, 5, 6], bos_token_id=0)
    >>> r.input_ids, r.score_start, r.num_scored
    ([0, 6, 5, 4, 8, 7], 4, 2)
    >>> r.question_ids_forward(), r.candidate_ids_forward()
    ([7, 8], [4, 5, 6])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

TruncatePolicy = Literal["candidate_left", "error"]
TRUNCATE_POLICIES: tuple[str, ...] = ("candidate_left", "error")
BOS_LAYOUTS: tuple[str, ...] = ("auto", "none", "tokenizer")
"""The named values of the ``bos`` setting; any other non-empty string names a token."""


def check_bos_setting(bos: object, name: str = "bos") -> str:
    """Validate a ``bos`` setting (a named layout or a token string) without a tokenizer.

    Raises:
        TypeError: not a string. ValueError: an empty string.
    """
    if not isinstance(bos, str):
        raise TypeError(f"`{name}` must be a string ({', '.join(map(repr, BOS_LAYOUTS))} or a token), "
                        f"got {type(bos).__name__}")
    if not bos:
        raise ValueError(f"`{name}` must be {', '.join(map(repr, BOS_LAYOUTS))} or a token string, got ''")
    return bos


@dataclass(frozen=True, slots=True)
class ReverseInput:
    """A reversed model input and where its scored (question) tokens are.

    Attributes:
        input_ids: ``[BOS] + reverse(candidate ids) + reverse(question ids)``.
        score_start: Index of the first question token in ``input_ids``; positions
            ``score_start .. len(input_ids) - 1`` are scored, by logits at ``score_start - 1 ..``.
        has_bos: Whether ``input_ids[0]`` is the BOS token.
        truncated_tokens: Candidate tokens dropped by the truncation policy.
    """

    input_ids: list[int]
    score_start: int
    has_bos: bool
    truncated_tokens: int = 0

    @property
    def num_scored(self) -> int:
        """Number of scored (question) tokens."""
        return len(self.input_ids) - self.score_start

    @property
    def target_positions(self) -> range:
        """Positions of the scored tokens in ``input_ids``."""
        return range(self.score_start, len(self.input_ids))

    @property
    def logit_positions(self) -> range:
        """Positions whose logits predict the scored tokens (``target_positions - 1``)."""
        return range(self.score_start - 1, len(self.input_ids) - 1)

    def question_ids_forward(self) -> list[int]:
        """The question's token ids in reading (forward) order."""
        return reverse_ids(self.input_ids[self.score_start :])

    def candidate_ids_forward(self) -> list[int]:
        """The (possibly truncated) candidate's token ids in reading order."""
        start = 1 if self.has_bos else 0
        return reverse_ids(self.input_ids[start : self.score_start])


def reverse_ids(ids: Sequence[int]) -> list[int]:
    """Reverse a token-id sequence (the only reversal primitive in the package)."""
    return list(ids)[::-1]


def build_reverse_ids(
    question_ids: Sequence[int],
    candidate_ids: Sequence[int],
    *,
    bos_token_id: int | None,
    max_length: int | None = None,
    truncate: TruncatePolicy = "candidate_left",
) -> ReverseInput:
    """Build the reverse-model input from already tokenized question and candidate ids.

    Args:
        question_ids: Question token ids in reading order (no special tokens).
        candidate_ids: Candidate token ids in reading order (no special tokens).
        bos_token_id: The tokenizer's BOS id, or ``None`` when it has none.
        max_length: Maximum total input length (the model context), or ``None`` for no limit.
        truncate: ``"candidate_left"`` drops the candidate's earliest tokens; ``"error"`` raises.

    Raises:
        ValueError: empty question/candidate, unknown policy, or an input that cannot fit.
    """
    if truncate not in TRUNCATE_POLICIES:
        raise ValueError(f"`truncate` must be one of {TRUNCATE_POLICIES}, got {truncate!r}")
    if len(question_ids) == 0:
        raise ValueError("question tokenizes to zero tokens")
    if len(candidate_ids) == 0:
        raise ValueError("candidate tokenizes to zero tokens")
    prefix = [bos_token_id] if bos_token_id is not None else []
    cand = list(candidate_ids)
    dropped = 0
    if max_length is not None:
        total = len(prefix) + len(cand) + len(question_ids)
        overflow = total - max_length
        if overflow > 0:
            if len(prefix) + 1 + len(question_ids) > max_length:
                raise ValueError(
                    f"question alone ({len(question_ids)} tokens) does not fit the context "
                    f"({max_length} tokens, needs BOS and at least one candidate token)"
                )
            if truncate == "error":
                raise ValueError(
                    f"pair is {total} tokens, over the context of {max_length} "
                    f"(use truncate='candidate_left' to drop the candidate's earliest tokens)"
                )
            cand = cand[overflow:]  # drop the candidate's earliest tokens
            dropped = overflow
    input_ids = prefix + reverse_ids(cand) + reverse_ids(question_ids)
    return ReverseInput(
        input_ids=input_ids,
        score_start=len(prefix) + len(cand),
        has_bos=bool(prefix),
        truncated_tokens=dropped,
    )


def encode_plain(tokenizer: Any, text: str) -> list[int]:
    """Tokenize ``text`` with no special tokens (the convention's step 1)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True, slots=True)
class BosLayout:
    """One value of the ``bos`` setting, resolved against a tokenizer.

    Build it with :meth:`resolve`; it tells what goes first in a model input and how each text
    becomes ids. Used for reverse inputs (scoring and training) and, with the forward twin's own
    setting, for forward inputs.

    Attributes:
        setting: The setting as given (``"auto"``, ``"none"``, ``"tokenizer"`` or a token).
        prefix_id: The id put first (``[BOS]``), or ``None`` for nothing.
        own_special_tokens: ``"tokenizer"``: texts are tokenized with the tokenizer's own special
            tokens; a leading BOS is dropped from reverse segments (it would end up last).
        bos_token_id: The tokenizer's BOS id (what ``own_special_tokens`` drops), or ``None``.

    Example:
        >>> class Tok:  # a tokenizer stand-in: one id per character, BOS 0, adds BOS itself
        ...     bos_token_id, eos_token_id = 0, 1
        ...     def get_vocab(self): return {"<s>": 0, "</s>": 1}
        ...     def convert_tokens_to_ids(self, t): return self.get_vocab()[t]
        ...     def __call__(self, text, add_special_tokens=True):
        ...         return {"input_ids": ([0] if add_special_tokens else []) + [ord(ch) for ch in text]}
        >>> [BosLayout.resolve(Tok(), b).build(Tok(), "ab", "c").input_ids for b in ("auto", "none", "</s>")]
        [[0, 99, 98, 97], [99, 98, 97], [1, 99, 98, 97]]
    """

    setting: str
    prefix_id: int | None
    own_special_tokens: bool = False
    bos_token_id: int | None = None

    @classmethod
    def resolve(cls, tokenizer: Any, bos: str = "auto") -> BosLayout:
        """Resolve a ``bos`` setting against ``tokenizer``.

        Raises:
            TypeError / ValueError: not a setting, or a token the vocabulary does not have.
        """
        check_bos_setting(bos)
        tok_bos = getattr(tokenizer, "bos_token_id", None)
        tok_bos = None if tok_bos is None else int(tok_bos)
        if bos == "auto":
            return cls(bos, tok_bos, bos_token_id=tok_bos)
        if bos == "none":
            return cls(bos, None, bos_token_id=tok_bos)
        if bos == "tokenizer":
            return cls(bos, None, own_special_tokens=True, bos_token_id=tok_bos)
        vocab = tokenizer.get_vocab()
        if bos not in vocab:
            specials = [t for t in (getattr(tokenizer, n, None) for n in ("bos_token", "eos_token", "pad_token"))
                        if t]
            raise ValueError(f"`bos`: token {bos!r} is not in the tokenizer's vocabulary (use 'auto', 'none', "
                             f"'tokenizer' or a token it has, e.g. {specials})")
        return cls(bos, int(tokenizer.convert_tokens_to_ids(bos)), bos_token_id=tok_bos)

    @property
    def prefix(self) -> list[int]:
        """``[prefix_id]`` or ``[]``."""
        return [] if self.prefix_id is None else [self.prefix_id]

    def describe(self) -> str:
        """The reverse layout in words, e.g. ``[BOS 1] + reverse(candidate) + reverse(question)``."""
        if self.own_special_tokens:
            return "reverse(tok(candidate) w/ specials, BOS dropped) + reverse(tok(question) w/ specials, BOS dropped)"
        head = "" if self.prefix_id is None else f"[{self.prefix_id}] + "
        return f"{head}reverse(candidate) + reverse(question)"

    def text_ids(self, tokenizer: Any, texts: Sequence[str], *, drop_bos: bool = True) -> list[list[int]]:
        """Token ids of each text in reading order, as this layout tokenizes them (one batched call).

        Plain layouts: no special tokens (:func:`encode_plain`). ``"tokenizer"``: the tokenizer's own
        special tokens, with a leading BOS dropped when ``drop_bos`` (reverse segments).
        """
        if not texts:
            return []
        ids = [list(x) for x in tokenizer(list(texts), add_special_tokens=self.own_special_tokens)["input_ids"]]
        return [self._strip(x, drop_bos) for x in ids]

    def encode(self, tokenizer: Any, text: str, *, drop_bos: bool = True) -> list[int]:
        """One text's ids in reading order, as this layout tokenizes it (see :meth:`text_ids`)."""
        ids = list(tokenizer(text, add_special_tokens=self.own_special_tokens)["input_ids"])
        return self._strip(ids, drop_bos)

    def _strip(self, ids: list[int], drop_bos: bool) -> list[int]:
        if self.own_special_tokens and drop_bos and self.bos_token_id is not None and ids[:1] == [self.bos_token_id]:
            return ids[1:]
        return ids

    def build(self, tokenizer: Any, question: str, candidate: str, *, max_length: int | None = None,
              truncate: TruncatePolicy = "candidate_left") -> ReverseInput:
        """Tokenize a pair and build its reverse-model input in this layout (see :func:`build_reverse_ids`)."""
        q, c = self.encode(tokenizer, question), self.encode(tokenizer, candidate)
        return build_reverse_ids(q, c, bos_token_id=self.prefix_id, max_length=max_length, truncate=truncate)

    def document(self, ids: Sequence[int]) -> list[int]:
        """A whole document (ids from :meth:`text_ids`) for reverse pretraining: ``prefix + reverse(ids)``."""
        return reverse_document(ids, bos_token_id=self.prefix_id)


def build_reverse_input(
    tokenizer: Any,
    question: str,
    candidate: str,
    *,
    max_length: int | None = None,
    truncate: TruncatePolicy = "candidate_left",
    bos: str = "auto",
) -> ReverseInput:
    """Tokenize a ``(question, candidate)`` pair and build its reverse-model input.

    Args:
        tokenizer: A Hugging Face tokenizer (the scorer's own).
        question: The question text.
        candidate: The candidate response (full or partial chain).
        max_length: Context limit; see :func:`build_reverse_ids`.
        truncate: Truncation policy; see module docstring.
        bos: The layout setting (:class:`BosLayout`); ``"auto"`` = the tokenizer's BOS if any.
    """
    return BosLayout.resolve(tokenizer, bos).build(tokenizer, question, candidate, max_length=max_length,
                                                   truncate=truncate)


def unreverse(tokenizer: Any, rev: ReverseInput) -> tuple[str, str]:
    """Decode a reverse input back to ``(question, candidate)`` text — for debugging."""
    return (
        tokenizer.decode(rev.question_ids_forward()),
        tokenizer.decode(rev.candidate_ids_forward()),
    )


def reverse_document(ids: Sequence[int], *, bos_token_id: int | None) -> list[int]:
    """Reverse a whole document for reverse-model *pretraining*: ``[BOS] + reverse(ids)``.

    A (question, solution) document used for fine-tuning is built with :func:`build_reverse_ids`
    (solution as candidate), so training and scoring inputs are identical by construction.
    """
    prefix = [bos_token_id] if bos_token_id is not None else []
    return prefix + reverse_ids(ids)
