"""The HTTP transport of the remote scorers: replicas, round-robin, failover, retries (one copy).

Used by :class:`~ledom_reason.scorers.remote.RemoteScorer` (``ledom-reason serve``) and
:class:`~ledom_reason.scorers.vllm_server.VLLMServerScorer` (``vllm serve``). A scorer gives
:meth:`Transport.post` a path, a JSON body and a ``handle(endpoint, response)`` function that turns an
HTTP answer into a result, raises :class:`RetryableError` (try the next replica / back off), or raises a
final error. Connect errors and timeouts are retryable. Retries use ``tenacity``: a round tries every
replica once without waiting, rounds are separated by exponential backoff with full jitter, and a
``Retry-After`` header lengthens the wait (up to :data:`MAX_RETRY_AFTER_S`). Replicas that failed
recently are moved to the back of the order for a while.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ledom_reason._optional import require

logger = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C")

MAX_RETRY_AFTER_S = 30.0
"""A server's ``Retry-After`` is honoured up to this many seconds."""
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth another attempt (on the next replica, then after a backoff)."""


class RemoteScorerError(ConnectionError):
    """The server(s) could not score a request: unreachable or failing after all retries.

    Attributes:
        endpoint: The URL of the last attempt.
    """

    def __init__(self, message: str, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class RetryableError(Exception):
    """One failed attempt worth retrying (carries the endpoint, the cause and ``Retry-After``)."""

    def __init__(self, endpoint: str, cause: str, retry_after: float | None = None) -> None:
        super().__init__(f"{endpoint}: {cause}")
        self.endpoint, self.cause, self.retry_after = endpoint, cause, retry_after


def retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (``None``: absent, or an HTTP date)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def check_urls(urls: str | Sequence[str], arg: str = "urls") -> list[str]:
    """Validate one base URL or a list of them; returns them without trailing ``/``."""
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, Sequence) or not urls or not all(isinstance(u, str) and u.strip() for u in urls):
        raise ValueError(f"`{arg}` must be a base URL or a non-empty list of them, got {urls!r}")
    out = [u.strip().rstrip("/") for u in urls]
    for u in out:
        if not u.startswith(("http://", "https://")):
            raise ValueError(f"`{arg}`: {u!r} must start with http:// or https://")
    return out


def check_positive_ints(**values: Any) -> None:
    """``ValueError`` naming the first argument that is not a positive int."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}")


class Transport:
    """HTTP replicas with round-robin, failover and retries; sync and async clients.

    Args:
        urls: One base URL or a list of replicas.
        api_key: Bearer token sent as ``Authorization: Bearer …`` (``None``/empty: none).
        user_agent: The ``User-Agent`` header.
        timeout / connect_timeout: Seconds per request / per connection attempt.
        max_attempts / retry_deadline_s: Stop retrying after this many attempts or seconds.
        backoff_initial_s / backoff_max_s: Exponential full-jitter backoff between rounds.
        max_concurrency: Requests in flight at once in :meth:`map` / :meth:`amap`.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        api_key: str | None = None,
        *,
        user_agent: str = "ledom-reason",
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_attempts: int = 8,
        retry_deadline_s: float = 120.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        max_concurrency: int = 8,
    ) -> None:
        self._httpx = require("httpx", "remote")
        self._tenacity = require("tenacity", "remote")
        self.urls = check_urls(urls)
        check_positive_ints(max_attempts=max_attempts, max_concurrency=max_concurrency)
        for name, f in (("timeout", timeout), ("connect_timeout", connect_timeout),
                        ("retry_deadline_s", retry_deadline_s), ("backoff_max_s", backoff_max_s)):
            if not f > 0:
                raise ValueError(f"`{name}` must be positive, got {f!r}")
        if backoff_initial_s < 0:
            raise ValueError(f"`backoff_initial_s` must be >= 0, got {backoff_initial_s!r}")
        self.max_attempts = max_attempts
        self.retry_deadline_s = retry_deadline_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_concurrency = max_concurrency
        self.headers = {"user-agent": user_agent}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self._timeout = self._httpx.Timeout(timeout, connect=connect_timeout)
        self._rr = itertools.count()
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._client: Any | None = None
        self._aclient: Any | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self.stats = {"requests": 0, "retries": 0, "failures": 0}
        """Counters: HTTP attempts, retried attempts, requests that failed for good."""

    @property
    def has_auth(self) -> bool:
        return "authorization" in self.headers

    # ------------------------------------------------------------------ fan-out
    def map(self, fn: Callable[[C], T], chunks: Sequence[C]) -> list[T]:
        """``[fn(c) for c in chunks]``, at most ``max_concurrency`` at once (threads)."""
        if len(chunks) <= 1 or self.max_concurrency == 1:
            return [fn(c) for c in chunks]
        with ThreadPoolExecutor(min(self.max_concurrency, len(chunks))) as pool:
            return list(pool.map(fn, chunks))

    async def amap(self, fn: Callable[[C], Awaitable[T]], chunks: Sequence[C]) -> list[T]:
        """Async :meth:`map`: at most ``max_concurrency`` coroutines in flight."""
        sem = asyncio.Semaphore(self.max_concurrency)

        async def one(c: C) -> T:
            async with sem:
                return await fn(c)

        return list(await asyncio.gather(*(one(c) for c in chunks)))

    # ------------------------------------------------------------------ replicas and retries
    def replica_order(self) -> list[str]:
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

    def wait(self, retry_state: Any) -> float:
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
            wait=self.wait,
            retry=t.retry_if_exception_type(RetryableError),
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def _before_sleep(self, retry_state: Any) -> None:
        self._count("retries")
        logger.info("retrying after attempt %d: %s", retry_state.attempt_number, retry_state.outcome.exception())

    def _give_up(self, exc: RetryableError, method: str, started: float, attempts: int) -> RemoteScorerError:
        self._count("failures")
        return RemoteScorerError(
            f"{method} {exc.endpoint} failed after {attempts} attempt(s) in {time.monotonic() - started:.1f} s "
            f"over {len(self.urls)} replica(s); last error: {exc.cause}", exc.endpoint)

    # ------------------------------------------------------------------ clients
    def _sync_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._httpx.Client(timeout=self._timeout, headers=self.headers)
            return self._client

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            # A client is bound to its event loop; a new loop (asyncio.run again) gets a new client.
            self._aclient = self._httpx.AsyncClient(timeout=self._timeout, headers=self.headers)
            self._aclient_loop = loop
        return self._aclient

    def close(self) -> None:
        """Close the sync HTTP client (the async one: :meth:`aclose`)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close both HTTP clients."""
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self.close()

    # ------------------------------------------------------------------ one request, retried
    def _after(self, base: str, endpoint: str, handle: Callable[[str, Any], T], response: Any) -> T:
        try:
            out = handle(endpoint, response)
        except RetryableError as e:
            self._mark(base, e.retry_after if e.retry_after is not None else 1.0)
            raise
        self._mark(base, 0.0)
        return out

    def _transport_error(self, base: str, endpoint: str, e: Exception) -> RetryableError:
        self._mark(base, 2.0)
        return RetryableError(endpoint, f"{type(e).__name__}: {e or 'connection failed'}")

    @staticmethod
    def _encode(body: Any) -> bytes:
        return body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()

    def request(self, method: str, path: str, handle: Callable[[str, Any], T], body: Any = None) -> T:
        """Send one request to the replicas until ``handle`` returns (retrying :class:`RetryableError`).

        Raises:
            RemoteScorerError: every attempt failed (names the last endpoint and cause).
            Whatever ``handle`` raises besides :class:`RetryableError`.
        """
        content = None if body is None else self._encode(body)
        order, started, attempts = self.replica_order(), time.monotonic(), 0
        client = self._sync_client()
        try:
            for attempt in self._retrying(self._tenacity.Retrying):
                with attempt:
                    attempts += 1
                    base = order[(attempt.retry_state.attempt_number - 1) % len(order)]
                    endpoint = base + path
                    self._count("requests")
                    try:
                        r = client.request(method, endpoint, content=content,
                                           headers={"content-type": "application/json"} if content else None)
                    except self._httpx.TransportError as e:
                        raise self._transport_error(base, endpoint, e) from None
                    out = self._after(base, endpoint, handle, r)
        except RetryableError as e:
            raise self._give_up(e, method, started, attempts) from None
        return out

    async def arequest(self, method: str, path: str, handle: Callable[[str, Any], T], body: Any = None) -> T:
        """Async :meth:`request`."""
        content = None if body is None else self._encode(body)
        order, started, attempts = self.replica_order(), time.monotonic(), 0
        client = self._async_client()
        try:
            async for attempt in self._retrying(self._tenacity.AsyncRetrying):
                with attempt:
                    attempts += 1
                    base = order[(attempt.retry_state.attempt_number - 1) % len(order)]
                    endpoint = base + path
                    self._count("requests")
                    try:
                        r = await client.request(method, endpoint, content=content,
                                                 headers={"content-type": "application/json"} if content else None)
                    except self._httpx.TransportError as e:
                        raise self._transport_error(base, endpoint, e) from None
                    out = self._after(base, endpoint, handle, r)
        except RetryableError as e:
            raise self._give_up(e, method, started, attempts) from None
        return out

    def health(self, path: str) -> dict[str, bool]:
        """``{url: ready}`` from each replica's ``GET path`` (one attempt each, 5 s)."""
        out = {}
        for url in self.urls:
            try:
                out[url] = self._sync_client().get(f"{url}{path}", timeout=5.0).status_code == 200
            except self._httpx.TransportError:
                out[url] = False
        return out
