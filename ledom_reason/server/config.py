"""Configuration of the scoring server (``ledom-reason serve``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class ServerConfig:
    """Settings of the HTTP scoring server.

    > Network
        host: Interface to bind. ``127.0.0.1`` (default) is reachable from this machine only; bind
            ``0.0.0.0`` only behind a firewall and with ``api_key`` set.
        port: TCP port (``0`` = any free port).
        api_key: Bearer token required on ``/v1/*`` (``None`` = no auth). Compared in constant time.
        graceful_timeout_s: On SIGTERM, how long in-flight requests may take to finish.

    > Dynamic batching
        max_batch_tokens: Token budget of one merged model pass (sum of the reverse-input lengths of
            the merged requests). A single request bigger than the budget runs alone.
        max_wait_ms: How long the first queued request may wait for others to join its pass.
        max_queue: Requests waiting for the model at most; more get ``503`` + ``Retry-After``.
        retry_after_s: Value of the ``Retry-After`` header on ``503``.

    > Request limits
        max_pairs_per_request: More pairs → ``413``. Clients split big lists (``RemoteScorer`` does).
        max_field_chars: Longest ``question``/``candidate`` in characters; longer → ``422``.
        max_body_bytes: Largest request body (declared ``Content-Length`` and streamed bytes) → ``413``.

    > Reporting
        model_name: Name reported in responses (default: the scorer's ``name``).
    """

    # network
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = field(default=None, repr=False)
    graceful_timeout_s: float = 30.0
    # dynamic batching
    max_batch_tokens: int = 16384
    max_wait_ms: float = 5.0
    max_queue: int = 256
    retry_after_s: int = 1
    # request limits
    max_pairs_per_request: int = 1024
    max_field_chars: int = 64_000
    max_body_bytes: int = 8 * 2**20
    # reporting
    model_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"`port` must be in [0, 65535], got {self.port!r}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.strip()):
            raise ValueError("`api_key` must be a non-empty string or None")
        for name in ("max_batch_tokens", "max_queue", "max_pairs_per_request", "max_field_chars",
                     "max_body_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        for name in ("max_wait_ms", "graceful_timeout_s"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"`{name}` must be a finite number >= 0, got {v!r}")
        if isinstance(self.retry_after_s, bool) or not isinstance(self.retry_after_s, int) or self.retry_after_s < 0:
            raise ValueError(f"`retry_after_s` must be an int >= 0, got {self.retry_after_s!r}")
