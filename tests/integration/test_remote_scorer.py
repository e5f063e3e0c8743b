"""RemoteScorer against real uvicorn servers on 127.0.0.1: parity, chunking, errors, retries, failover."""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("tenacity")

import httpx

from ledom_reason import RemoteScorer
from ledom_reason.reward import reverse_reward
from ledom_reason.scorers.remote import MAX_RETRY_AFTER_S, RemoteScorerError
from ledom_reason.server.app import create_app
from ledom_reason.server.config import ServerConfig
from ledom_reason.server.run import ServerThread, wait_ready
from ledom_reason.testing import GatedScorer
from ledom_reason.types import InvalidPairError

PAIRS = [(f"Question {i}: what is {i} plus {i + 1}?", f"{i} + {i + 1} = {2 * i + 1}. The answer is {2 * i + 1}.")
         for i in range(10)]
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.2, "connect_timeout": 2.0, "timeout": 30.0}


def assert_same(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.question_tokens == e.question_tokens and g.input_tokens == e.input_tokens
        assert g.reverse_logprob == pytest.approx(e.reverse_logprob, abs=1e-4)
        assert g.reverse_mean == pytest.approx(e.reverse_mean, abs=1e-5)
        if e.forward_logprob is not None:
            assert g.forward_logprob == pytest.approx(e.forward_logprob, abs=1e-4)


def bound_socket() -> socket.socket:
    """A socket bound to a free loopback port but not listening: connections are refused."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


@pytest.fixture(scope="module")
def server(scorer):
    with ServerThread(create_app(scorer, ServerConfig(max_wait_ms=5, max_pairs_per_request=16))) as srv:
        wait_ready(srv.url)
        yield srv


def test_sync_matches_in_process(server, scorer):
    remote = RemoteScorer(server.url, max_pairs_per_request=3)
    assert_same(remote.score(PAIRS), scorer.score(PAIRS))
    assert remote.stats == {"requests": 4, "retries": 0, "failures": 0}  # 10 pairs → 3+3+3+1
    assert remote.model_name == scorer.name
    remote.close()


async def test_async_matches_in_process(server, scorer):
    async with RemoteScorer([server.url], max_pairs_per_request=4, max_concurrency=3) as remote:
        many = await asyncio.gather(*(remote.ascore(PAIRS[i:] + PAIRS[:i]) for i in range(5)))
    for i, got in enumerate(many):
        assert_same(got, scorer.score(PAIRS[i:] + PAIRS[:i]))


async def test_empty_input_is_an_empty_result_everywhere(server, scorer):
    # one contract for every backend: no pairs in, no scores out (no error, no request needed)
    remote = RemoteScorer(server.url, **FAST)
    assert scorer.score([]) == remote.score([]) == await remote.ascore([]) == []
    assert remote.stats["requests"] == 0
    r = httpx.post(f"{server.url}/v1/score", json={"pairs": []}, timeout=10)
    assert r.status_code == 200 and r.json()["scores"] == []


def test_chunking_by_bytes(server, scorer):
    remote = RemoteScorer(server.url, max_request_bytes=400)
    assert_same(remote.score(PAIRS), scorer.score(PAIRS))
    assert remote.stats["requests"] > 3


def test_forward_scores_and_reward(scorer_fwd):
    with ServerThread(create_app(scorer_fwd)) as srv:
        wait_ready(srv.url)
        got = RemoteScorer(srv.url).score(PAIRS[:4])
    expected = scorer_fwd.score(PAIRS[:4])
    assert_same(got, expected)
    for g, e in zip(got, expected, strict=True):
        assert reverse_reward(g, lam=0.5, normalize="mean") == pytest.approx(
            reverse_reward(e, lam=0.5, normalize="mean"), abs=1e-5)


def test_local_validation_sends_nothing(server):
    remote = RemoteScorer(server.url)
    with pytest.raises(ValueError, match="pair 1: `candidate` is empty"):
        remote.score([("q", "c"), ("q", " ")])
    with pytest.raises(TypeError):
        remote.score("not a list")
    assert remote.stats["requests"] == 0


def test_server_validation_error_is_not_retried(server):
    remote = RemoteScorer(server.url, **FAST)
    with pytest.raises(ValueError) as ei:
        remote.score([("q?", "fine"), ("seven apples " * 600, "c")])
    msg = str(ei.value)
    assert server.url in msg and "422 invalid_input" in msg and "does not fit the context" in msg
    assert remote.stats["requests"] == 1 and remote.stats["retries"] == 0
    too_big = RemoteScorer(server.url, max_pairs_per_request=20)  # server allows 16
    with pytest.raises(ValueError, match="413 too_many_pairs"):
        too_big.score(PAIRS * 2)
    assert too_big.stats["requests"] == 1


def test_server_named_pair_comes_back_as_an_attribute_in_the_callers_numbering(server):
    """The server answers 422 with `pair_index` (relative to its request); the client re-indexes it."""
    remote = RemoteScorer(server.url, max_pairs_per_request=3, **FAST)
    pairs = list(PAIRS[:7])
    pairs[5] = ("seven apples " * 600, "c")  # too long for the context: the server's scorer rejects it
    with pytest.raises(InvalidPairError) as ei:
        remote.score(pairs)
    assert ei.value.index == 5  # request 2 holds pairs 3..5; the server said pair 2 of it
    assert isinstance(ei.value, ValueError) and str(ei.value).startswith("pair 5: ")
    assert "does not fit the context" in ei.value.reason


def test_auth(scorer, monkeypatch):
    monkeypatch.delenv("LEDOM_API_KEY", raising=False)
    with ServerThread(create_app(scorer, ServerConfig(api_key="k-42"))) as srv:
        wait_ready(srv.url)
        with pytest.raises(PermissionError, match=r"401 unauthorized.*LEDOM_API_KEY"):
            RemoteScorer(srv.url).score(PAIRS[:1])
        with pytest.raises(PermissionError, match="invalid bearer token"):
            RemoteScorer(srv.url, api_key="nope").score(PAIRS[:1])
        assert len(RemoteScorer(srv.url, api_key="k-42").score(PAIRS[:2])) == 2
        monkeypatch.setenv("LEDOM_API_KEY", "k-42")
        remote = RemoteScorer(srv.url)
        assert len(remote.score(PAIRS[:2])) == 2
        assert "k-42" not in repr(remote)


def test_unreachable_error_names_endpoint_and_cause():
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    remote = RemoteScorer(url, max_attempts=3, **FAST)
    with pytest.raises(RemoteScorerError) as ei:
        remote.score(PAIRS[:1])
    sock.close()
    assert f"{url}/v1/score" in str(ei.value) and "ConnectError" in str(ei.value) and "3 attempt" in str(ei.value)
    assert ei.value.endpoint == f"{url}/v1/score"
    assert remote.stats == {"requests": 3, "retries": 2, "failures": 1}


def test_retries_until_the_server_comes_up(scorer):
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv = ServerThread(create_app(scorer), sock=sock)
    threading.Timer(1.0, srv.start).start()
    try:
        remote = RemoteScorer(url, max_attempts=100, retry_deadline_s=30, **FAST)
        assert_same(remote.score(PAIRS[:3]), scorer.score(PAIRS[:3]))
        assert remote.stats["retries"] > 0 and remote.stats["failures"] == 0
    finally:
        t_end = time.monotonic() + 10
        while srv.port is None and time.monotonic() < t_end:
            time.sleep(0.05)
        srv.stop()


async def test_failover_when_a_replica_is_killed_mid_load(scorer):
    a = ServerThread(create_app(scorer, ServerConfig(max_wait_ms=20))).start()
    b = ServerThread(create_app(scorer, ServerConfig(max_wait_ms=20))).start()
    wait_ready(a.url)
    wait_ready(b.url)
    expected = scorer.score(PAIRS)
    try:
        remote = RemoteScorer([a.url, b.url], max_pairs_per_request=2, **FAST)

        async def worker(k: int):
            out = []
            for j in range(6):
                rot = (k + j) % len(PAIRS)
                out.append((rot, await remote.ascore(PAIRS[rot:] + PAIRS[:rot])))
                await asyncio.sleep(0.01)
            return out

        tasks = [asyncio.create_task(worker(k)) for k in range(8)]
        await asyncio.sleep(0.3)
        await asyncio.to_thread(a.stop, force=True)  # replica A dies with requests in flight
        results = await asyncio.gather(*tasks)
        after = await remote.ascore(PAIRS)
        assert_same(after, expected)
        await remote.aclose()
    finally:
        b.stop()
    for per_worker in results:
        for rot, got in per_worker:
            assert_same(got, expected[rot:] + expected[:rot])
    assert remote.stats["failures"] == 0
    assert remote.stats["retries"] > 0  # the kill did hit requests (in flight or new)


def test_failover_skips_a_dead_replica(scorer, server):
    dead = bound_socket()
    dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}"
    remote = RemoteScorer([dead_url, server.url], max_pairs_per_request=1, max_concurrency=1, **FAST)
    got = remote.score(PAIRS[:6])
    dead.close()
    assert_same(got, scorer.score(PAIRS[:6]))
    # the dead replica is tried at most once before it is marked down, then skipped
    assert remote.stats["requests"] <= 6 + 1
    assert remote.health() == {dead_url: False, server.url: True}


async def test_retry_after_is_respected_on_503(scorer):
    gate = threading.Event()
    cfg = ServerConfig(max_queue=1, max_wait_ms=0, retry_after_s=1)
    with ServerThread(create_app(GatedScorer(scorer, gate), cfg)) as srv:
        wait_ready(srv.url)
        remote = RemoteScorer(srv.url, **FAST)
        busy = [asyncio.create_task(remote.ascore(PAIRS[:1]))]
        await asyncio.sleep(0.3)  # first pass holds the model
        busy.append(asyncio.create_task(remote.ascore(PAIRS[1:2])))  # fills the queue
        await asyncio.sleep(0.3)
        threading.Timer(0.3, gate.set).start()
        t0 = time.monotonic()
        got = await remote.ascore(PAIRS[2:3])  # 503 first, then retried after Retry-After
        elapsed = time.monotonic() - t0
        await asyncio.gather(*busy)
        await remote.aclose()
    assert_same(got, scorer.score(PAIRS[2:3]))
    assert remote.stats["retries"] >= 1
    assert elapsed >= 0.9  # waited Retry-After (1 s), not the 0.01 s backoff


def test_wait_policy():
    remote = RemoteScorer(["http://127.0.0.1:1", "http://127.0.0.1:2"], backoff_initial_s=0.5, backoff_max_s=4)

    def state(n, retry_after=None):
        exc = SimpleNamespace(retry_after=retry_after)
        return SimpleNamespace(attempt_number=n, outcome=SimpleNamespace(exception=lambda: exc))

    assert remote.transport.wait(state(1)) == 0.0  # next replica at once
    assert 0.0 <= remote.transport.wait(state(2)) <= 0.5  # end of round 1: backoff with jitter
    assert 0.0 <= remote.transport.wait(state(4)) <= 1.0
    assert remote.transport.wait(state(2, retry_after=3.0)) >= 3.0
    assert remote.transport.wait(state(2, retry_after=3600.0)) == MAX_RETRY_AFTER_S  # a bound on server advice


def test_model_error_raises_floating_point_error(scorer):
    class NaNScorer(GatedScorer):
        def score_encoded(self, encoded):
            raise FloatingPointError("fast path: non-finite log-probabilities for sequence(s) [0]")

    with ServerThread(create_app(NaNScorer(scorer, threading.Event()))) as srv:
        wait_ready(srv.url)
        remote = RemoteScorer(srv.url, **FAST)
        with pytest.raises(FloatingPointError, match="non-finite"):
            remote.score(PAIRS[:1])
        assert remote.stats["requests"] == 1


@pytest.mark.parametrize("kwargs", [{"urls": []}, {"urls": "ftp://x"}, {"urls": [""]},
                                    {"urls": "http://x", "max_pairs_per_request": 0},
                                    {"urls": "http://x", "timeout": 0}])
def test_constructor_validation(kwargs):
    with pytest.raises(ValueError, match="`"):
        RemoteScorer(**kwargs)


def test_cli_build_scorer_constructs_remote(monkeypatch):
    from ledom_reason.cli._common import build_scorer

    monkeypatch.setenv("MY_KEY", "abc")
    args = argparse.Namespace(url=["http://127.0.0.1:9/", "http://127.0.0.1:10"], model=None, api_key_env="MY_KEY")
    remote = build_scorer(args)
    assert isinstance(remote, RemoteScorer)
    assert remote.urls == ["http://127.0.0.1:9", "http://127.0.0.1:10"]
    assert remote.transport.headers["authorization"] == "Bearer abc"
