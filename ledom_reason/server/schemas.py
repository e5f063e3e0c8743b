"""Request and response bodies of the scoring server (pydantic; they also make the OpenAPI schema).

Limits that depend on the :class:`~ledom_reason.server.config.ServerConfig` (pairs per request,
characters per field) are checked by the endpoint, so that the error can say which limit and which
pair; these models only fix the shape and types.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class PairIn(BaseModel):
    """One ``(question, candidate)`` pair."""

    model_config = ConfigDict(extra="forbid", strict=True)

    question: StrictStr = Field(min_length=1, description="The question the candidate answers.")
    candidate: StrictStr = Field(min_length=1, description="A full or partial candidate response.")


class ScoreRequest(BaseModel):
    """Body of ``POST /v1/score``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    pairs: list[PairIn] = Field(description="Pairs to score, at most `max_pairs_per_request`. An empty list is "
                                "answered with an empty `scores` list, as `ReverseScorer.score([])` returns `[]`.")
    lam: float | None = Field(
        default=None, ge=0.0, le=1.0, allow_inf_nan=False,
        description="λ of the reward (1 − λ)·log P_fwd + λ·log P_rev; adds `reward` to each score. "
                    "λ < 1 needs a server started with a forward model.",
    )
    normalize: Literal["sum", "mean"] | None = Field(
        default=None, description="`sum` (total log-probs) or `mean` (per-token) for `reward`; default `sum`.",
    )


class ScoreOut(BaseModel):
    """Scores of one pair (the fields of :class:`ledom_reason.PairScore`, plus ``reward`` on request)."""

    reverse_logprob: float
    question_tokens: int
    reverse_mean: float
    forward_logprob: float | None = None
    candidate_tokens: int | None = None
    forward_mean: float | None = None
    truncated_tokens: int = 0
    input_tokens: int = 0
    p_correct: float | None = Field(default=None, description="Calibrated P(correct), when the server's model "
                                    "has a calibration (docs/calibration.md).")
    reward: float | None = Field(default=None, description="Present when `lam` or `normalize` was given.")


class RequestStats(BaseModel):
    """Compute accounting of one request, with the names :class:`ledom_reason.search.SearchStats` uses."""

    scored_pairs: int = Field(description="Pairs scored for this request.")
    scored_tokens: int = Field(description="Tokens run through the model(s) for this request.")
    scoring_time_s: float = Field(description="Seconds the request waited for its scores (queue + model pass).")
    wall_time_s: float = Field(description="Seconds the server spent on the request, scoring included.")


class ScoreResponse(BaseModel):
    """Body of a successful ``POST /v1/score``: one score per pair, in input order."""

    scores: list[ScoreOut]
    model: str
    stats: RequestStats


class ErrorDetail(BaseModel):
    """What went wrong (never a traceback)."""

    type: str = Field(description="Machine-readable kind, e.g. `validation_error`, `payload_too_large`.")
    message: str
    details: list[dict[str, Any]] | None = None
    pair_index: int | None = Field(default=None, description="Index of the offending pair in the request, when the "
                                   "error is about one pair (the client raises `PairError` with it).")


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx response."""

    error: ErrorDetail


class Health(BaseModel):
    """Body of ``GET /healthz``."""

    status: Literal["ok", "loading", "error", "stopping"]
    model: str | None = None
    queue_depth: int = 0
    detail: str | None = None
