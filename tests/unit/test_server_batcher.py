"""The dynamic batcher: merging, routing results back, fault isolation, backpressure, shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

pytest.importorskip("prometheus_client")

from ledom_reason.server.batcher import BatcherClosedError, DynamicBatcher, QueueFullError
from ledom_reason.server.metrics import ServerMetrics
from ledom_reason.types import PairScore, normalize_pairs

QUESTIONS = ["What is 2+3?", "How many legs has a cat?", "Name a colour.", "Who wrote Hamlet?",
             "What is 7 times 6?", "Is the sea salty?"]


def request(i: int, n: int = 2) -> list[tuple[str, str]]:
    return [(QUESTIONS[(i + k) % len(QUESTIONS)], f"Candidate {i}.{k}: the answer is {i * 7 + k}.") for k in range(n)]


class RecordingScorer:
    """The real scorer, recording the size of each model pass; optionally poisoned or gated."""

    def __init__(self, inner, gate: threading.Event | None = None):
        self.inner = inner
        self.gate = gate
        self.passes: list[int] = []
        self._poison: set[int] = set()
        self.name = "recording"

    def encode(self, pairs):
        enc = self.inner.encode(pairs)
        for (q, _), e in zip(normalize_pairs(pairs), enc, strict=True):
            if "POISON" in q:
                self._poison.add(id(e))
        return enc

    def score_encoded(self, encoded):
        if self.gate is not None:
            self.gate.wait(10)
        self.passes.append(len(encoded))
        if any(id(e) in self._poison for e in encoded):
            raise FloatingPointError("non-finite log-probabilities (injected)")
        return self.inner.score_encoded(encoded)

    def score(self, pairs):
        return self.score_encoded(self.encode(pairs))

    async def ascore(self, pairs):
        return self.score(pairs)


def assert_same(got: list[PairScore], expected: list[PairScore]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.question_tokens == e.question_tokens
        assert g.reverse_logprob == pytest.approx(e.reverse_logprob, abs=1e-4)


async def test_concurrent_requests_merge_and_route_back(scorer):
    metrics = ServerMetrics()
    rec = RecordingScorer(scorer)
    b = DynamicBatcher(rec, max_batch_tokens=100_000, max_wait_ms=200, metrics=metrics)
    await b.start()
    try:
        reqs = [request(i, n=1 + i % 3) for i in range(12)]
        results = await asyncio.gather(*(b.submit(r) for r in reqs))
    finally:
        await b.stop()
    for r, got in zip(reqs, results, strict=True):
        assert_same(got, scorer.score(r))
    assert sum(rec.passes) == sum(len(r) for r in reqs)
    assert len(rec.passes) < len(reqs)  # merged
    reg = metrics.registry
    assert reg.get_sample_value("ledom_batch_requests_count") == len(rec.passes)
    assert reg.get_sample_value("ledom_batch_requests_sum") == len(reqs)
    assert max(rec.passes) > 3  # more pairs in a pass than any one request has
    assert reg.get_sample_value("ledom_queue_depth") == 0


async def test_token_budget_splits_passes(scorer):
    rec = RecordingScorer(scorer)
    one = sum(len(e.reverse.input_ids) for e in scorer.encode(request(0, n=4)))
    b = DynamicBatcher(rec, max_batch_tokens=one * 2, max_wait_ms=200)
    await b.start()
    try:
        await asyncio.gather(*(b.submit(request(0, n=4)) for _ in range(6)))
    finally:
        await b.stop()
    assert rec.passes == [8, 8, 8]


async def test_poisoned_request_fails_alone(scorer):
    metrics = ServerMetrics()
    rec = RecordingScorer(scorer)
    b = DynamicBatcher(rec, max_wait_ms=200, metrics=metrics)
    await b.start()
    try:
        reqs = [request(i) for i in range(5)]
        reqs[2] = [("POISON question?", "any answer")]
        results = await asyncio.gather(*(b.submit(r) for r in reqs), return_exceptions=True)
    finally:
        await b.stop()
    assert isinstance(results[2], FloatingPointError)
    for i in (0, 1, 3, 4):
        assert_same(results[i], scorer.score(reqs[i]))
    assert rec.passes[0] == sum(len(r) for r in reqs)  # the merged pass that failed
    assert metrics.registry.get_sample_value("ledom_batch_failures_total") == 1


async def test_invalid_request_fails_at_encode_without_touching_others(scorer):
    rec = RecordingScorer(scorer)
    b = DynamicBatcher(rec, max_wait_ms=100)
    await b.start()
    try:
        results = await asyncio.gather(b.submit(request(0)), b.submit([("q", "  ")]), b.submit(request(1)),
                                       return_exceptions=True)
    finally:
        await b.stop()
    assert isinstance(results[1], ValueError) and "pair 0" in str(results[1])
    assert_same(results[0], scorer.score(request(0)))
    assert_same(results[2], scorer.score(request(1)))
    assert rec.passes == [4]  # one merged pass, the invalid request never reached the model


async def test_queue_full_and_closed(scorer):
    gate = threading.Event()
    b = DynamicBatcher(RecordingScorer(scorer, gate=gate), max_wait_ms=0, max_queue=2)
    with pytest.raises(BatcherClosedError):
        await b.submit(request(0))  # not started
    await b.start()
    try:
        first = asyncio.create_task(b.submit(request(0)))  # taken into a pass, blocked on the gate
        await asyncio.sleep(0.2)
        waiting = [asyncio.create_task(b.submit(request(i))) for i in (1, 2)]
        await asyncio.sleep(0.2)
        assert b.queue_depth == 2
        with pytest.raises(QueueFullError, match="max_queue=2"):
            await b.submit(request(3))
        gate.set()
        done = await asyncio.gather(first, *waiting)
        assert [len(d) for d in done] == [2, 2, 2]
    finally:
        gate.set()
        await b.stop()
    with pytest.raises(BatcherClosedError):
        await b.submit(request(0))


async def test_stop_finishes_queued_requests(scorer):
    b = DynamicBatcher(scorer, max_wait_ms=300)
    await b.start()
    tasks = [asyncio.create_task(b.submit(request(i))) for i in range(3)]
    await asyncio.sleep(0.05)  # queued, waiting for the deadline
    await b.stop()
    for i, t in enumerate(tasks):
        assert_same(t.result(), scorer.score(request(i)))


class PlainScorer:
    """A scorer with only score/ascore (no encode): the batcher must fall back to score()."""

    def __init__(self):
        self.calls: list[int] = []

    def score(self, pairs):
        self.calls.append(len(pairs))
        return [PairScore.build(-float(len(q) + len(c)), len(q)) for q, c in pairs]

    async def ascore(self, pairs):
        return self.score(pairs)


async def test_plain_scorer_fallback():
    plain = PlainScorer()
    b = DynamicBatcher(plain, max_wait_ms=100)
    assert not b.uses_encode
    await b.start()
    try:
        out = await asyncio.gather(*(b.submit(request(i, n=1 + i)) for i in range(4)))
    finally:
        await b.stop()
    for i, scores in enumerate(out):
        assert [s.reverse_logprob for s in scores] == [-float(len(q) + len(c)) for q, c in request(i, n=1 + i)]
    assert sum(plain.calls) == 10 and len(plain.calls) < 4


@pytest.mark.parametrize("kwargs", [{"max_batch_tokens": 0}, {"max_wait_ms": -1}, {"max_queue": 0}])
def test_batcher_validates_arguments(kwargs):
    with pytest.raises(ValueError, match=f"`{next(iter(kwargs))}`"):
        DynamicBatcher(PlainScorer(), **kwargs)
