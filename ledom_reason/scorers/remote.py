"""HTTP client for ``ledom-reason serve``: a drop-in :class:`~ledom_reason.Scorer`.

Big pair lists are split into requests of at most ``max_pairs_per_request`` pairs (and
``max_request_bytes``), sent to one or more server replicas round-robin. Connect errors,
timeouts, ``429`` and ``5xx`` are retried with exponential backoff and full jitter (``tenacity``),
moving to the next replica first and honouring ``Retry-After``; ``4xx`` validation errors are not
retried and raise ``ValueError`` with the server's message. Results come back in input order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ledom_reason._optional import require
from ledom_reason.types import (
    InvalidPairError,
    NonFiniteScoreError,
    Pair,
    PairLike,
    PairScore,
    normalize_pairs,
)

logger = logging.getLogger(__name__)

API_KEY_ENV = "LEDOM_API_KEY"
SCORE_PATH = "/v1/score"
MAX_RETRY_AFTER_S = 30.0
"""A server's ``Retry-After`` is honoured up to this many seconds."""
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class RemoteScorerError(ConnectionError):
    """The server(s) could not score a request: unreachable or failing after all retries.

    Attributes:
        endpoint: The URL of the last attempt.
    """

    def __init__(self, message: str, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class _RetryableError(Exception):
    """One failed attempt worth retrying (carries the endpoint, the cause and ``Retry-After``)."""

    def __init__(self, endpoint: str, cause: str, retry_after: float | None = None) -> None:
        super().__init__(f"{endpoint}: {cause}")
        self.endpoint, self.cause, self.retry_after = endpoint, cause, retry_after


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


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
        self._httpx = require("httpx", "remote")
        self._tenacity = require("tenacity", "remote")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, Sequence) or not urls or not all(isinstance(u, str) and u.strip() for u in urls):
            raise ValueError(f"`urls` must be a base URL or a non-empty list of them, got {urls!r}")
        self.urls = [u.strip().rstrip("/") for u in urls]
        for u in self.urls:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"`urls`: {u!r} must start with http:// or https://")
        for name, v in (("max_pairs_per_request", max_pairs_per_request), ("max_attempts", max_attempts),
                        ("max_concurrency", max_concurrency), ("max_request_bytes", max_request_bytes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        for name, f in (("timeout", timeout), ("connect_timeout", connect_timeout),
                        ("retry_deadline_s", retry_deadline_s), ("backoff_max_s", backoff_max_s)):
            if not f > 0:
                raise ValueError(f"`{name}` must be positive, got {f!r}")
        if backoff_initial_s < 0:
            raise ValueError(f"`backoff_initial_s` must be >= 0, got {backoff_initial_s!r}")
        self.max_pairs_per_request = max_pairs_per_request
        self.max_request_bytes = max_request_bytes
        self.max_attempts = max_attempts
        self.retry_deadline_s = retry_deadline_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_concurrency = max_concurrency
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._headers = {"user-agent": "ledom-reason-remote"}
        if key:
            self._headers["authorization"] = f"Bearer {key}"
        self._timeout = self._httpx.Timeout(timeout, connect=connect_timeout)
        self._rr = itertools.count()
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._client: Any | None = None
        self._aclient: Any | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self.model_name: str | None = None
        """The ``model`` the server reported in its last answer."""
        self.stats = {"requests": 0, "retries": 0, "failures": 0}
        """Counters: HTTP attempts, retried attempts, requests that failed for good."""

    # ------------------------------------------------------------------ public API
    @property
    def name(self) -> str:
        return self.model_name or f"remote:{self.urls[0]}"

    def score(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Score pairs on the server(s); one :class:`PairScore` per pair, in input order.

        Raises:
            TypeError / ValueError: bad pairs (checked locally), or the server refused the input.
            PermissionError: missing or wrong API key.
            FloatingPointError: the server's model produced NaN/inf.
            RemoteScorerError: unreachable or failing after all retries (names endpoint and cause).
        """
        chunks = self._chunks(normalize_pairs(pairs))
        if len(chunks) <= 1 or self.max_concurrency == 1:
            parts = [self._score_chunk(off, c) for off, c in chunks]
        else:
            with ThreadPoolExecutor(min(self.max_concurrency, len(chunks))) as pool:
                parts = list(pool.map(lambda oc: self._score_chunk(*oc), chunks))
        return [s for part in parts for s in part]

    async def ascore(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Async :meth:`score`: chunks go out concurrently (at most ``max_concurrency``)."""
        chunks = self._chunks(normalize_pairs(pairs))
        sem = asyncio.Semaphore(self.max_concurrency)

        async def one(off: int, chunk: list[Pair]) -> list[PairScore]:
            async with sem:
                return await self._ascore_chunk(off, chunk)

        parts = await asyncio.gather(*(one(off, c) for off, c in chunks))
        return [s for part in parts for s in part]

    def health(self) -> dict[str, bool]:
        """``{url: ready}`` from each replica's ``GET /healthz``."""
        out = {}
        for url in self.urls:
            try:
                out[url] = self._sync_client().get(f"{url}/healthz", timeout=5.0).status_code == 200
            except self._httpx.TransportError:
                out[url] = False
        return out

    def close(self) -> None:
        """Close the sync HTTP client (the async one: :meth:`aclose`)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the async HTTP client."""
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self.close()

    def __enter__(self) -> RemoteScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RemoteScorer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        auth = ", api_key=***" if "authorization" in self._headers else ""
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

    # ------------------------------------------------------------------ replicas and retries
    def _replica_order(self) -> list[str]:
        """Round-robin start, replicas marked down recently moved to the back."""
        with self._lock:
            k = next(self._rr) % len(self.urls)
        order = self.urls[k:] + self.urls[:k]
        now = time.monotonic()
        up = [u for u in order if self._down_until.get(u, 0.0) <= now]
        return up + [u for u in order if u not in up]

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _mark(self, url: str, down_s: float) -> None:
        with self._lock:
            if down_s > 0:
                self._down_until[url] = time.monotonic() + down_s
            else:
                self._down_until.pop(url, None)

    def _wait(self, retry_state: Any) -> float:
        """No wait before trying the next replica; exponential full-jitter backoff between rounds."""
        n = len(self.urls)
        attempt = retry_state.attempt_number
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        if attempt % n != 0:
            return 0.0
        rounds = attempt // n - 1
        delay = random.uniform(0.0, min(self.backoff_max_s, self.backoff_initial_s * 2**rounds))
        ra = getattr(exc, "retry_after", None)
        if ra is not None:
            delay = max(delay, min(ra, MAX_RETRY_AFTER_S))
        return delay

    def _retrying(self, cls: Any) -> Any:
        t = self._tenacity
        return cls(
            stop=t.stop_after_attempt(self.max_attempts) | t.stop_after_delay(self.retry_deadline_s),
            wait=self._wait,
            retry=t.retry_if_exception_type(_RetryableError),
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def _before_sleep(self, retry_state: Any) -> None:
        self._count("retries")
        exc = retry_state.outcome.exception()
        logger.info("retrying after attempt %d: %s", retry_state.attempt_number, exc)

    def _give_up(self, exc: _RetryableError, started: float, attempts: int) -> RemoteScorerError:
        self._count("failures")
        return RemoteScorerError(
            f"POST {exc.endpoint} failed after {attempts} attempt(s) in {time.monotonic() - started:.1f} s "
            f"over {len(self.urls)} replica(s); last error: {exc.cause}", exc.endpoint)

    # ------------------------------------------------------------------ one request
    def _body(self, chunk: list[Pair]) -> bytes:
        return json.dumps({"pairs": [{"question": q, "candidate": c} for q, c in chunk]},
                          ensure_ascii=False).encode()

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
        if status in _RETRY_STATUS:
            raise _RetryableError(endpoint, f"HTTP {status} {kind}: {message}", _retry_after(response.headers))
        if status in (401, 403):
            raise PermissionError(f"{where}: {message} (set `api_key=` or ${API_KEY_ENV})")
        if status in (400, 413, 422):
            prefix = f" [request of pairs {offset}..{offset + n - 1}]" if offset or n > 1 else ""
            raise ValueError(f"{where}{prefix}: {message}")
        raise RemoteScorerError(f"{where}: {message}", endpoint)

    def _transport_error(self, endpoint: str, e: Exception) -> _RetryableError:
        return _RetryableError(endpoint, f"{type(e).__name__}: {e or 'connection failed'}")

    def _sync_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._httpx.Client(timeout=self._timeout, headers=self._headers)
            return self._client

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            # A client is bound to its event loop; a new loop (asyncio.run again) gets a new client.
            self._aclient = self._httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
            self._aclient_loop = loop
        return self._aclient

    def _attempt_url(self, order: list[str], retry_state: Any) -> str:
        return order[(retry_state.attempt_number - 1) % len(order)] + SCORE_PATH

    def _score_chunk(self, offset: int, chunk: list[Pair]) -> list[PairScore]:
        body, order, started = self._body(chunk), self._replica_order(), time.monotonic()
        client = self._sync_client()
        attempts = 0
        try:
            for attempt in self._retrying(self._tenacity.Retrying):
                with attempt:
                    attempts += 1
                    endpoint = self._attempt_url(order, attempt.retry_state)
                    self._count("requests")
                    try:
                        r = client.post(endpoint, content=body, headers={"content-type": "application/json"})
                    except self._httpx.TransportError as e:
                        self._mark(endpoint.removesuffix(SCORE_PATH), 2.0)
                        raise self._transport_error(endpoint, e) from None
                    out = self._after(endpoint, offset, len(chunk), r)
        except _RetryableError as e:
            raise self._give_up(e, started, attempts) from None
        return out

    async def _ascore_chunk(self, offset: int, chunk: list[Pair]) -> list[PairScore]:
        body, order, started = self._body(chunk), self._replica_order(), time.monotonic()
        client = self._async_client()
        attempts = 0
        try:
            async for attempt in self._retrying(self._tenacity.AsyncRetrying):
                with attempt:
                    attempts += 1
                    endpoint = self._attempt_url(order, attempt.retry_state)
                    self._count("requests")
                    try:
                        r = await client.post(endpoint, content=body, headers={"content-type": "application/json"})
                    except self._httpx.TransportError as e:
                        self._mark(endpoint.removesuffix(SCORE_PATH), 2.0)
                        raise self._transport_error(endpoint, e) from None
                    out = self._after(endpoint, offset, len(chunk), r)
        except _RetryableError as e:
            raise self._give_up(e, started, attempts) from None
        return out

    def _after(self, endpoint: str, offset: int, n: int, response: Any) -> list[PairScore]:
        base = endpoint.removesuffix(SCORE_PATH)
        try:
            out = self._handle(endpoint, offset, n, response)
        except _RetryableError as e:
            self._mark(base, e.retry_after if e.retry_after is not None else 1.0)
            raise
        self._mark(base, 0.0)
        return out
