"""The unit every model pass scores: token ids and where the scored span starts (no torch here).

Kept apart from :mod:`ledom_reason.scorers.engine` (which needs torch) so that encoding pairs — in the HTTP
clients, the vLLM-server client, the server's request threads — never imports a model library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScoringSeq:
    """One model input and the index of its first scored token."""

    input_ids: list[int]
    score_start: int

    def __post_init__(self) -> None:
        if not 1 <= self.score_start < len(self.input_ids):
            raise ValueError(
                f"score_start={self.score_start} must be in [1, {len(self.input_ids) - 1}] "
                "(the first token has no prediction)"
            )
