"""A persistent score cache keyed by (question, candidate): each pair is scored once per output folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledom_reason.io import append_jsonl, read_resumable
from ledom_reason.types import PairScore


def pair_key(question: str, candidate: str) -> str:
    """Stable key of a pair (SHA-1 of ``question + NUL + candidate``)."""
    return hashlib.sha1(f"{question}\x00{candidate}".encode()).hexdigest()


class ScoreCache:
    """Append-only JSONL of ``{"key", "score"}``; survives interruption (torn last line dropped).

    Example:
        >>> import tempfile, os
        >>> c = ScoreCache(os.path.join(tempfile.mkdtemp(), "scores.jsonl"))
        >>> c.missing([("q", "a")])
        [('q', 'a')]
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._scores: dict[str, PairScore] = {
            r["key"]: PairScore.from_dict(r["score"]) for r in read_resumable(self.path)
        }

    def __len__(self) -> int:
        return len(self._scores)

    def missing(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Pairs not in the cache (deduplicated, in first-seen order)."""
        out, seen = [], set()
        for q, c in pairs:
            k = pair_key(q, c)
            if k not in self._scores and k not in seen:
                seen.add(k)
                out.append((q, c))
        return out

    def add(self, pairs: Sequence[tuple[str, str]], scores: Sequence[PairScore]) -> None:
        """Store and append scores (one complete line per pair)."""
        with open(self.path, "a", encoding="utf-8") as f:
            for (q, c), s in zip(pairs, scores, strict=True):
                k = pair_key(q, c)
                self._scores[k] = s
                append_jsonl(f, {"key": k, "score": s.to_dict()})

    def get(self, question: str, candidate: str) -> PairScore:
        """The cached score (``KeyError`` if absent)."""
        return self._scores[pair_key(question, candidate)]

    def ensure(self, scorer: Any, pairs: Sequence[tuple[str, str]],
               score_fn: Callable[[Any, list[tuple[str, str]]], list[PairScore]] | None = None,
               *, chunk: int | None = None) -> int:
        """Score the missing pairs (``score_fn(scorer, pairs)`` or ``scorer.score``): in one call, or in calls
        of ``chunk`` pairs, each stored as soon as it is done (an interrupted run keeps what it scored).

        Returns the number of pairs scored now.
        """
        todo = self.missing(pairs)
        step = chunk or len(todo) or 1
        for a in range(0, len(todo), step):
            part = todo[a : a + step]
            scores = score_fn(scorer, part) if score_fn is not None else scorer.score(part)
            if len(scores) != len(part):
                raise ValueError(f"scorer returned {len(scores)} scores for {len(part)} pairs")
            self.add(part, scores)
        return len(todo)
