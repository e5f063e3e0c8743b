"""HTTP client for ``ledom-reason serve``: a drop-in :class:`~ledom_reason.Scorer`.

Big pair lists are split into requests of at most ``max_pairs_per_request`` pairs (and
``max_request_bytes``), sent to one or more server replicas round-robin. Connect errors,
timeouts, ``429`` and ``5xx`` are retried with exponential backoff and full jitter (``tenacity``),
moving to the next replica first and honouring ``Retry-After``; ``4xx`` validation errors are not
retried and raise ``ValueError`` with the server's message. Results come back in input order.
Replicas, retries and fan-out are :mod:`ledom_reason.scorers._http`, shared with
:class:`~ledom_reason.scorers.vllm_server.VLLMServerScorer`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ledom_reason.scorers._http import (
    MAX_RETRY_AFTER_S,
    RETRY_STATUS,
    RemoteScorerError,
    RetryableError,
    Transport,
    check_positive_ints,
    retry_after,
)
from ledom_reason.types import (
    InvalidPairError,
    NonFiniteScoreError,
    Pair,
    PairLike,
    PairScore,
    normalize_pairs,
)

__all__ = ["API_KEY_ENV", "MAX_RETRY_AFTER_S", "SCORE_PATH", "RemoteScorer", "RemoteScorerError"]

API_KEY_ENV = "LEDOM_API_KEY"
SCORE_PATH = "/v1/score"


def _server_message(response: Any) -> tuple[str, str, int | None]:
    """``(type, message, pair_index)`` from a JSON error body, or the status text."""
    try:
        err = response.json().get("error") or {}
        index = err.get("pair_index")
        return (str(err.get("type", "error")), str(err.get("message", response.text[:500])),
                index if isinstance(index, int) else None)
    except (ValueError, AttributeError):
        return "error", (response.text[:500] or response.reason_phrase), None


def _strip_pair_prefix(message: str, index: int) -> str:
    prefix = f"pair {index}: "
    return message[len(prefix):] if message.startswith(prefix) else message


class RemoteScorer:
    """Score pairs on one or more ``ledom-reason serve`` replicas over HTTP.

    Setup:
        ``pip install 'ledom-reason[remote]'`` (httpx + tenacity). Start a server with
        ``ledom-reason serve --model DIR``.

    Key init args:
        urls: One base URL or a list of replicas (``http://host:8000``); requests go round-robin
            and fail over to the next replica.
        api_key: Bearer token; default: the ``LEDOM_API_KEY`` environment variable.
        max_pairs_per_request / max_request_bytes: How big lists are split (keep under the
            server's ``max_pairs_per_request`` / ``max_body_bytes``).
        timeout / connect_timeout: Seconds per request / per connection attempt.
        max_attempts / retry_deadline_s: Stop retrying after this many attempts or seconds.
        backoff_initial_s / backoff_max_s: Exponential backoff (full jitter) between rounds of
            attempts; a full round tries every replica once without waiting. A ``Retry-After``
            header lengthens the wait (up to ``MAX_RETRY_AFTER_S``).
        max_concurrency: Requests in flight at once when a list is split.

    Instantiate:
        >>> from ledom_reason import RemoteScorer
        >>> scorer = RemoteScorer(["http://127.0.0.1:8000", "http://127.0.0.1:8001"], api_key="secret")
        >>> scorer.urls
        ['http://127.0.0.1:8000', 'http://127.0.0.1:8001']

    Score:
        >>> scores = scorer.score([("What is 2+3?", "2+3 = 5. #### 5")])  # doctest: +SKIP
        >>> scores[0].reverse_logprob  # doctest: +SKIP

    Async:
        >>> scores = await scorer.ascore(pairs)  # doctest: +SKIP
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_pairs_per_request: int = 256,
        max_request_bytes: int = 4 * 2**20,
        max_attempts: int = 8,
        retry_deadline_s: float = 120.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        max_concurrency: int = 8,
    ) -> None:
        check_positive_ints(max_pairs_per_request=max_pairs_per_request, max_request_bytes=max_request_bytes)
        self.transport = Transport(
            urls, api_key if api_key is not None else os.environ.get(API_KEY_ENV),
            user_agent="ledom-reason-remote", timeout=timeout, connect_timeout=connect_timeout,
            max_attempts=max_attempts, retry_deadline_s=retry_deadline_s, backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s, max_concurrency=max_concurrency,
        )
        self.urls = self.transport.urls
        self.max_pairs_per_request = max_pairs_per_request
        self.max_request_bytes = max_request_bytes
        self.model_name: str | None = None
        """The ``model`` the server reported in its last answer."""

    # ------------------------------------------------------------------ public API
    @property
    def name(self) -> str:
        return self.model_name or f"remote:{self.urls[0]}"

    @property
    def stats(self) -> dict[str, int]:
        """Counters: HTTP attempts, retried attempts, requests that failed for good."""
        return self.transport.stats

    def score(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Score pairs on the server(s); one :class:`PairScore` per pair, in input order.

        Raises:
            TypeError / ValueError: bad pairs (checked locally), or the server refused the input.
            PermissionError: missing or wrong API key.
            FloatingPointError: the server's model produced NaN/inf.
            RemoteScorerError: unreachable or failing after all retries (names endpoint and cause).
        """
        parts = self.transport.map(lambda oc: self._score_chunk(*oc), self._chunks(normalize_pairs(pairs)))
        return [s for part in parts for s in part]

    async def ascore(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Async :meth:`score`: chunks go out concurrently (at most ``max_concurrency``)."""
        parts = await self.transport.amap(lambda oc: self._ascore_chunk(*oc), self._chunks(normalize_pairs(pairs)))
        return [s for part in parts for s in part]

    def health(self) -> dict[str, bool]:
        """``{url: ready}`` from each replica's ``GET /healthz``."""
        return self.transport.health("/healthz")

    def close(self) -> None:
        """Close the sync HTTP client (the async one: :meth:`aclose`)."""
        self.transport.close()

    async def aclose(self) -> None:
        """Close the async HTTP client."""
        await self.transport.aclose()

    def __enter__(self) -> RemoteScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RemoteScorer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        auth = ", api_key=***" if self.transport.has_auth else ""
        return f"RemoteScorer(urls={self.urls!r}{auth})"

    # ------------------------------------------------------------------ chunking
    def _chunks(self, pairs: list[Pair]) -> list[tuple[int, list[Pair]]]:
        """Split into ``(offset, pairs)`` requests under the pair and byte budgets."""
        out: list[tuple[int, list[Pair]]] = []
        cur: list[Pair] = []
        start, size = 0, 0
        for i, (q, c) in enumerate(pairs):
            n = len(q.encode()) + len(c.encode()) + 64
            if cur and (len(cur) >= self.max_pairs_per_request or size + n > self.max_request_bytes):
                out.append((start, cur))
                cur, start, size = [], i, 0
            cur.append((q, c))
            size += n
        if cur:
            out.append((start, cur))
        return out

    # ------------------------------------------------------------------ one request
    @staticmethod
    def _body(chunk: list[Pair]) -> dict[str, Any]:
        return {"pairs": [{"question": q, "candidate": c} for q, c in chunk]}

    def _handle(self, endpoint: str, offset: int, n: int, response: Any) -> list[PairScore]:
        """Turn one HTTP answer into scores, a retryable failure, or a final error."""
        status = response.status_code
        if status == 200:
            try:
                data = response.json()
                scores = [PairScore.from_dict(d) for d in data["scores"]]
            except (ValueError, KeyError, TypeError) as e:
                raise RemoteScorerError(f"{endpoint}: malformed response ({type(e).__name__}: {e})", endpoint) from None
            if len(scores) != n:
                raise RemoteScorerError(f"{endpoint}: {len(scores)} scores for {n} pairs", endpoint)
            self.model_name = data.get("model", self.model_name)
            return scores
        kind, message, pair_index = _server_message(response)
        where = f"{endpoint} ({status} {kind})"
        if pair_index is not None and 0 <= pair_index < n and status in (422, 500):
            # the server named the pair: re-index it into the caller's list
            cls = NonFiniteScoreError if status == 500 else InvalidPairError
            raise cls(f"{where}: {_strip_pair_prefix(message, pair_index)}", offset + pair_index)
        if status == 500 and kind == "model_error":
            raise FloatingPointError(f"{where}: {message}")
        if status in RETRY_STATUS:
            raise RetryableError(endpoint, f"HTTP {status} {kind}: {message}", retry_after(response.headers))
        if status in (401, 403):
            raise PermissionError(f"{where}: {message} (set `api_key=` or ${API_KEY_ENV})")
        if status in (400, 413, 422):
            prefix = f" [request of pairs {offset}..{offset + n - 1}]" if offset or n > 1 else ""
            raise ValueError(f"{where}{prefix}: {message}")
        raise RemoteScorerError(f"{where}: {message}", endpoint)

    def _score_chunk(self, offset: int, chunk: list[Pair]) -> list[PairScore]:
        return self.transport.request("POST", SCORE_PATH, lambda ep, r: self._handle(ep, offset, len(chunk), r),
                                      self._body(chunk))

    async def _ascore_chunk(self, offset: int, chunk: list[Pair]) -> list[PairScore]:
        return await self.transport.arequest(
            "POST", SCORE_PATH, lambda ep, r: self._handle(ep, offset, len(chunk), r), self._body(chunk))
