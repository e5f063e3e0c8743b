"""The scoring contract shared by every backend: pairs in, :class:`PairScore` out.

A *pair* is ``(question, candidate)``: the question a model was asked and one candidate
response (a full solution or a partial chain of reasoning). Every scorer — local, vLLM,
remote — takes a list of pairs and returns one :class:`PairScore` per pair, in input order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

Pair = tuple[str, str]
"""``(question, candidate)``."""

PairLike = tuple[str, str] | Sequence[str] | Mapping[str, str]


class PairError(Exception):
    """An error about one pair of a batch; callers read :attr:`index` instead of parsing the message.

    Raised as one of its concrete subclasses, which are also the builtin exception a caller would expect
    (:class:`InvalidPairError` is a ``ValueError``, :class:`PairTypeError` a ``TypeError``,
    :class:`NonFiniteScoreError` a ``FloatingPointError``).

    Attributes:
        index: Position of the pair in the list given to the scorer (``None`` when unknown).
        reason: What is wrong with it, without the ``pair <index>:`` prefix of the message.
    """

    def __init__(self, reason: str, index: int | None = None) -> None:
        self.reason = reason
        self.index = index
        super().__init__(reason if index is None else f"pair {index}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (across processes) with its attributes
        return (type(self), (self.reason, self.index))

    def at(self, index: int | None) -> PairError:
        """The same error for the pair at ``index`` of an enclosing list (e.g. a request's offset added)."""
        return type(self)(self.reason, index)


class InvalidPairError(PairError, ValueError):
    """A pair's value is unusable: empty text, a missing key, too long for the context, …"""


class PairTypeError(PairError, TypeError):
    """A pair or one of its fields has the wrong type."""


class NonFiniteScoreError(PairError, FloatingPointError):
    """The model produced NaN or infinity for a pair."""


@dataclass(frozen=True, slots=True)
class PairScore:
    """Scores of one ``(question, candidate)`` pair.

    Attributes:
        reverse_logprob: ``log P_rev(question | candidate)``, summed over the question tokens (nats).
        question_tokens: Number of question tokens scored by the reverse model.
        reverse_mean: ``reverse_logprob / question_tokens``.
        forward_logprob: ``log P_fwd(candidate | question)`` (nats), when a forward model is configured.
        candidate_tokens: Number of candidate tokens scored by the forward model.
        forward_mean: ``forward_logprob / candidate_tokens``.
        truncated_tokens: Candidate tokens dropped to fit the context (``truncate="candidate_left"``).
        input_tokens: Tokens fed through the model(s) for this pair (compute accounting).
        p_correct: Calibrated probability that the candidate is correct, when the scorer carries a
            calibration (:mod:`ledom_reason.calibration`; the map states its own λ and normalisation), else
            ``None``. A number in [0, 1] that a threshold such as ``0.5`` means something for.
    """

    reverse_logprob: float
    question_tokens: int
    reverse_mean: float
    forward_logprob: float | None = None
    candidate_tokens: int | None = None
    forward_mean: float | None = None
    truncated_tokens: int = 0
    input_tokens: int = 0
    p_correct: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def build(
        cls,
        reverse_logprob: float,
        question_tokens: int,
        *,
        forward_logprob: float | None = None,
        candidate_tokens: int | None = None,
        truncated_tokens: int = 0,
        input_tokens: int = 0,
    ) -> PairScore:
        """Build a score and derive the per-token means; rejects non-finite values."""
        if question_tokens <= 0:
            raise ValueError("`question_tokens` must be positive")
        if not math.isfinite(reverse_logprob):
            raise FloatingPointError(f"reverse log-prob is not finite ({reverse_logprob})")
        forward_mean = None
        if forward_logprob is not None:
            if not math.isfinite(forward_logprob):
                raise FloatingPointError(f"forward log-prob is not finite ({forward_logprob})")
            if not candidate_tokens:
                raise ValueError("`candidate_tokens` must be positive when `forward_logprob` is set")
            forward_mean = forward_logprob / candidate_tokens
        return cls(
            reverse_logprob=float(reverse_logprob),
            question_tokens=int(question_tokens),
            reverse_mean=float(reverse_logprob) / question_tokens,
            forward_logprob=None if forward_logprob is None else float(forward_logprob),
            candidate_tokens=candidate_tokens,
            forward_mean=forward_mean,
            truncated_tokens=truncated_tokens,
            input_tokens=input_tokens,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view (drops ``extra`` when empty and ``p_correct`` when there is no calibration, so that
        uncalibrated scores serialise exactly as they did before ``p_correct`` existed)."""
        d = asdict(self)
        if not d["extra"]:
            d.pop("extra")
        if d["p_correct"] is None:
            d.pop("p_correct")
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PairScore:
        """Inverse of :meth:`to_dict` (unknown keys go to ``extra``)."""
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: v for k, v in d.items() if k in known}
        extra = {k: v for k, v in d.items() if k not in known and k != "extra"}
        extra.update(d.get("extra") or {})
        return cls(**kwargs, extra=extra)


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores many pairs in one call.

    Implementations: :class:`ledom_reason.ReverseScorer` (local transformers),
    :class:`ledom_reason.RemoteScorer` (HTTP), the vLLM backend. Search and the framework
    integrations only rely on this protocol. An empty list of pairs is not an error: every backend
    returns ``[]`` for it (the server answers ``{"pairs": []}`` with ``200`` and ``"scores": []``).
    """

    def score(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Score ``pairs`` and return one :class:`PairScore` per pair, in input order."""
        ...

    async def ascore(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Async twin of :meth:`score`; must not block the event loop."""
        ...


class Encoded(Protocol):
    """What a :class:`BatchScorer` encodes one pair into (opaque to its callers but for its size)."""

    @property
    def num_tokens(self) -> int:
        """Tokens this pair puts through the model (what a batch's token budget counts)."""
        ...


EncodedT = TypeVar("EncodedT", bound=Encoded)


@runtime_checkable
class BatchScorer(Scorer, Protocol[EncodedT]):
    """A :class:`Scorer` that splits scoring into a per-request and a per-batch step.

    The server's dynamic batcher relies on it: :meth:`encode` validates and tokenizes one request (so a
    bad request fails alone, with a :class:`PairError` naming the pair), and :meth:`score_encoded` runs one
    model pass over the encoded pairs of many requests. ``score(pairs)`` must equal
    ``score_encoded(encode(pairs))``. Implemented by :class:`ledom_reason.ReverseScorer`.
    """

    def encode(self, pairs: Sequence[PairLike]) -> list[EncodedT]:
        """Validate and tokenize ``pairs`` (raises :class:`PairError` naming the bad pair)."""
        ...

    def score_encoded(self, encoded: Sequence[EncodedT]) -> list[PairScore]:
        """Score pre-encoded pairs in one model pass; one :class:`PairScore` per pair, in input order."""
        ...


def normalize_pairs(pairs: Sequence[PairLike] | Any) -> list[Pair]:
    """Validate and normalise pair-like inputs to ``list[(question, candidate)]``.

    Accepts tuples/lists of two strings or mappings with ``question`` and ``candidate`` keys.

    Raises:
        TypeError: ``pairs`` is not a sequence.
        PairTypeError: an element or field has the wrong type (a ``TypeError``; ``.index`` names it).
        InvalidPairError: an element has the wrong arity, a missing key, or an empty/blank string (a
            ``ValueError``; ``.index`` names it).
    """
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
        raise TypeError(f"`pairs` must be a list of (question, candidate) pairs, got {type(pairs).__name__}")
    out: list[Pair] = []
    for i, p in enumerate(pairs):
        if isinstance(p, Mapping):
            missing = [k for k in ("question", "candidate") if k not in p]
            if missing:
                raise InvalidPairError(f"missing key(s) {missing}", i)
            q, c = p["question"], p["candidate"]
        elif isinstance(p, Sequence) and not isinstance(p, str | bytes):
            if len(p) != 2:
                raise InvalidPairError(f"expected (question, candidate), got {len(p)} items", i)
            q, c = p[0], p[1]
        else:
            raise PairTypeError(f"expected a (question, candidate) tuple or a mapping, got {type(p).__name__}", i)
        for name, v in (("question", q), ("candidate", c)):
            if not isinstance(v, str):
                raise PairTypeError(f"`{name}` must be str, got {type(v).__name__}", i)
            if not v.strip():
                raise InvalidPairError(f"`{name}` is empty", i)
        out.append((q, c))
    return out
