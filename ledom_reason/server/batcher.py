"""Dynamic batching: merge concurrent scoring requests into one model pass.

Each request is validated and tokenized on its own (``scorer.encode``, in an encode thread), so a
bad request fails alone before it reaches the queue. A single loop takes queued requests in arrival
order until their reverse-input tokens reach ``max_batch_tokens`` or the first one has waited
``max_wait_ms``, scores the merged list with one ``scorer.score_encoded`` call in a model thread, and
splits the results back to each request's future. If a merged pass raises, each request of it is
retried alone, so only the request that breaks the model fails.

A :class:`~ledom_reason.types.BatchScorer` (``encode`` + ``score_encoded``: the local scorer) is used as
described; any other :class:`~ledom_reason.types.Scorer` (a :class:`~ledom_reason.scorers.remote.RemoteScorer`,
a fake) through ``score(pairs)`` on the merged list, its token budget estimated from characters (4 per token).

Example:
    >>> import asyncio
    >>> from ledom_reason.types import PairScore
    >>> class Fake:
    ...     def score(self, pairs):
    ...         return [PairScore.build(-float(len(q)), 1) for q, _ in pairs]
    ...     async def ascore(self, pairs):
    ...         return self.score(pairs)
    >>> async def main():
    ...     b = DynamicBatcher(Fake(), max_wait_ms=1)
    ...     await b.start()
    ...     out = await asyncio.gather(b.submit([("ab", "x")]), b.submit([("abc", "y")]))
    ...     await b.stop()
    ...     return [s[0].reverse_logprob for s in out]
    >>> asyncio.run(main())
    [-2.0, -3.0]
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ledom_reason.server.metrics import ServerMetrics
from ledom_reason.types import BatchScorer, PairLike, PairScore, Scorer, normalize_pairs

logger = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The batcher already holds ``max_queue`` waiting requests (the server answers 503)."""


class BatcherClosedError(RuntimeError):
    """The batcher is not running (not started yet, or shutting down)."""


@dataclass(eq=False)
class _Job:
    payload: list[Any]  # EncodedPair objects, or (question, candidate) tuples for plain scorers
    tokens: int
    future: asyncio.Future[list[PairScore]]
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """Merge concurrent :meth:`submit` calls into few model passes.

    Args:
        scorer: A :class:`~ledom_reason.scorers.local.ReverseScorer` (uses ``encode`` +
            ``score_encoded``) or any :class:`~ledom_reason.Scorer` (uses ``score``).
        max_batch_tokens: Token budget of one merged pass; a bigger request runs alone.
        max_wait_ms: How long the oldest queued request waits for others before its pass starts.
        max_queue: Requests waiting (being encoded or queued) at most; :meth:`submit` raises
            :class:`QueueFullError` beyond it.
        metrics: Where to record batch sizes and queue depth (optional).
    """

    def __init__(
        self,
        scorer: Scorer | BatchScorer[Any],
        *,
        max_batch_tokens: int = 16384,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        metrics: ServerMetrics | None = None,
    ) -> None:
        if max_batch_tokens < 1:
            raise ValueError(f"`max_batch_tokens` must be positive, got {max_batch_tokens}")
        if max_wait_ms < 0:
            raise ValueError(f"`max_wait_ms` must be >= 0, got {max_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"`max_queue` must be positive, got {max_queue}")
        self.scorer = scorer
        # the same object, typed for the encode/score_encoded split when it offers one
        self._batch_scorer: BatchScorer[Any] | None = scorer if isinstance(scorer, BatchScorer) else None
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.metrics = metrics
        self.uses_encode = self._batch_scorer is not None
        self._pending: deque[_Job] = deque()
        self._pending_tokens = 0
        self._waiting = 0  # admitted, not yet taken into a pass (encoding + queued)
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._model_pool: ThreadPoolExecutor | None = None
        self._encode_pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        """Started, not stopping, and its loop alive."""
        return self._task is not None and not self._task.done() and not self._closing

    @property
    def queue_depth(self) -> int:
        """Requests admitted but not yet in a model pass."""
        return self._waiting

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._task is not None:
            raise RuntimeError("batcher already started")
        self._wakeup = asyncio.Event()
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="ledom-model")
        self._encode_pool = ThreadPoolExecutor(1, thread_name_prefix="ledom-encode")
        self._task = asyncio.create_task(self._loop(), name="ledom-batcher")

    async def stop(self) -> None:
        """Stop taking requests, finish the queued ones, then stop the loop and its threads."""
        if self._task is None:
            return
        self._closing = True
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            await self._task
        finally:
            for job in self._pending:  # only left if the loop died
                if not job.future.done():
                    job.future.set_exception(BatcherClosedError("server is shutting down"))
            self._pending.clear()
            for pool in (self._model_pool, self._encode_pool):
                if pool is not None:
                    pool.shutdown(wait=False)

    # ------------------------------------------------------------------ requests
    async def submit(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Score ``pairs`` as part of a merged pass; one :class:`PairScore` per pair, in order.

        Raises:
            QueueFullError: too many requests are waiting (retry later).
            BatcherClosedError: the batcher is not running.
            ValueError / TypeError: bad pairs (from the scorer's validation, naming the pair).
            Exception: whatever the model raised for this request when scored alone.
        """
        if not self.running:
            raise BatcherClosedError("the scorer is not running (starting up or shutting down)")
        if self._waiting >= self.max_queue:
            if self.metrics is not None:
                self.metrics.rejected.labels("queue_full").inc()
            raise QueueFullError(f"server busy: {self._waiting} requests already waiting (max_queue={self.max_queue})")
        loop = asyncio.get_running_loop()
        self._set_waiting(+1)
        queued = False
        try:
            if self._batch_scorer is not None:
                payload = await loop.run_in_executor(self._encode_pool, self._batch_scorer.encode, pairs)
                tokens = sum(e.num_tokens for e in payload)
            else:
                payload = normalize_pairs(pairs)
                tokens = sum(len(q) + len(c) for q, c in payload) // 4 + 1
            if self._closing:
                raise BatcherClosedError("server is shutting down")
            job = _Job(payload, tokens, loop.create_future())
            self._pending.append(job)
            self._pending_tokens += tokens
            queued = True
            assert self._wakeup is not None
            self._wakeup.set()
        finally:
            if not queued:
                self._set_waiting(-1)
        return await job.future

    def _set_waiting(self, delta: int) -> None:
        self._waiting += delta
        if self.metrics is not None:
            self.metrics.queue_depth.set(self._waiting)

    # ------------------------------------------------------------------ the loop
    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            if batch is None:
                return
            if batch:
                await self._run(batch)

    async def _collect(self) -> list[_Job] | None:
        """Wait for work, then for the budget or the oldest job's deadline; pop one pass's jobs."""
        assert self._wakeup is not None
        while not self._pending:
            if self._closing:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        loop = asyncio.get_running_loop()
        # Deadline counts from the oldest job's arrival: if it already waited (model busy), go now.
        deadline = loop.time() + max(0.0, self._pending[0].enqueued + self.max_wait - time.monotonic())
        while not self._closing and self._pending_tokens < self.max_batch_tokens:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
        batch: list[_Job] = []
        tokens = 0
        while self._pending:
            job = self._pending[0]
            if batch and tokens + job.tokens > self.max_batch_tokens:
                break
            self._pending.popleft()
            self._pending_tokens -= job.tokens
            self._set_waiting(-1)
            if job.future.done():  # the caller went away
                continue
            batch.append(job)
            tokens += job.tokens
        return batch

    def _score(self, payload: list[Any]) -> list[PairScore]:
        bs = self._batch_scorer
        out = bs.score_encoded(payload) if bs is not None else self.scorer.score(payload)
        if len(out) != len(payload):
            raise RuntimeError(f"scorer returned {len(out)} scores for {len(payload)} pairs")
        return list(out)

    async def _run(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        payload = [p for job in batch for p in job.payload]
        if self.metrics is not None:
            self.metrics.batch_requests.observe(len(batch))
            self.metrics.batch_pairs.observe(len(payload))
            self.metrics.batch_tokens.observe(sum(job.tokens for job in batch))
        try:
            results = await loop.run_in_executor(self._model_pool, self._score, payload)
        except Exception as exc:
            if len(batch) == 1:
                _resolve(batch[0], exc)
                return
            # One request may have broken the merged pass: score each alone so the others succeed.
            logger.warning("merged pass of %d requests failed (%s: %s); retrying each alone",
                           len(batch), type(exc).__name__, exc)
            if self.metrics is not None:
                self.metrics.batch_failures.inc()
            for job in batch:
                if job.future.done():
                    continue
                try:
                    _resolve(job, await loop.run_in_executor(self._model_pool, self._score, job.payload))
                except Exception as one_exc:
                    _resolve(job, one_exc)
            return
        start = 0
        for job in batch:
            n = len(job.payload)
            _resolve(job, results[start : start + n])
            start += n


def _resolve(job: _Job, outcome: list[PairScore] | BaseException) -> None:
    if job.future.done():
        return
    if isinstance(outcome, BaseException):
        job.future.set_exception(outcome)
    else:
        job.future.set_result(outcome)
