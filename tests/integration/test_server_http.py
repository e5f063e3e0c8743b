"""End-to-end over a real uvicorn server on 127.0.0.1: concurrency, the bad-input corpus, backpressure."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx

from ledom_reason.server.app import create_app
from ledom_reason.server.config import ServerConfig
from ledom_reason.server.run import ServerThread, wait_ready
from ledom_reason.testing import GatedScorer

GOOD = {"pairs": [{"question": "What is 2+3?", "candidate": "2+3 = 5. #### 5"}]}


def pool_pairs(n: int = 40) -> list[tuple[str, str]]:
    rng = random.Random(0)
    words = "the cat sat on a mat and counted seven apples then ate two of them leaving five".split()
    return [(f"Q{i}: how many apples are left if {' '.join(rng.choices(words, k=rng.randint(3, 12)))}?",
             " ".join(rng.choices(words, k=rng.randint(2, 30))) + f" #### {i}") for i in range(n)]


@pytest.fixture(scope="module")
def server(scorer):
    app = create_app(scorer, ServerConfig(max_wait_ms=10))
    with ServerThread(app) as srv:
        wait_ready(srv.url)
        yield srv


def metric(url: str, name: str, labels: str = "") -> float:
    """Sum of the samples of ``name`` (optionally those whose label string contains ``labels``)."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def count_500s(url: str) -> float:
    return metric(url, "ledom_requests_total", 'status="500"')


async def test_order_preserved_under_concurrency(server, scorer):
    pool = pool_pairs()
    expected = scorer.score(pool)
    before = metric(server.url, "ledom_batch_requests_count")
    rng = random.Random(1)
    plans = [[rng.sample(range(len(pool)), rng.randint(1, 6)) for _ in range(3)] for _ in range(24)]

    async def client(plan):
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            out = []
            for idx in plan:
                r = await c.post("/v1/score", json={"pairs": [{"question": pool[i][0], "candidate": pool[i][1]}
                                                              for i in idx]})
                assert r.status_code == 200, r.text
                out.append((idx, r.json()["scores"]))
            return out

    results = await asyncio.gather(*(client(p) for p in plans))
    n_checked = 0
    for per_client in results:
        for idx, scores in per_client:
            assert len(scores) == len(idx)
            for i, s in zip(idx, scores, strict=True):
                assert s["question_tokens"] == expected[i].question_tokens
                assert s["reverse_logprob"] == pytest.approx(expected[i].reverse_logprob, abs=1e-4)
                n_checked += 1
    assert n_checked == sum(len(i) for p in plans for i in p)
    passes = metric(server.url, "ledom_batch_requests_count") - before
    assert 0 < passes < 24 * 3  # concurrent requests were merged: mean batch size > 1


def raw_post(url: str, payload: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v1/score", content=payload, headers={"content-type": "application/json",
                                                                  **(headers or {})}, timeout=60)


def jbytes(obj) -> bytes:
    return json.dumps(obj).encode()


BAD_INPUTS = {
    "empty body": b"",
    "invalid json": b'{"pairs": [',
    "json array": b"[1, 2, 3]",
    "json string": b'"pairs"',
    "null": b"null",
    "empty object": b"{}",
    "pairs not a list": jbytes({"pairs": "What is 2+3?"}),
    "pair as list": jbytes({"pairs": [["q", "c"]]}),
    "question int": jbytes({"pairs": [{"question": 5, "candidate": "c"}]}),
    "candidate null": jbytes({"pairs": [{"question": "q", "candidate": None}]}),
    "missing candidate": jbytes({"pairs": [{"question": "q"}]}),
    "extra field": jbytes({"pairs": [{"question": "q", "candidate": "c", "answer": "5"}]}),
    "empty question": jbytes({"pairs": [{"question": "", "candidate": "c"}]}),
    "empty candidate": jbytes({"pairs": [{"question": "q", "candidate": ""}]}),
    "blank question": jbytes({"pairs": [{"question": "   ", "candidate": "c"}]}),
    "field over max chars": jbytes({"pairs": [{"question": "q", "candidate": "x" * 70_000}]}),
    "10 MB field": jbytes({"pairs": [{"question": "q", "candidate": "x" * 10_000_000}]}),
    "100k pairs": jbytes({"pairs": [{"question": "q?", "candidate": "c"}] * 100_000}),
    "non-utf8 bytes": b'{"pairs": [{"question": "\xff\xfe\xfd", "candidate": "c"}]}',
    "NaN lam": b'{"pairs": [{"question": "q", "candidate": "c"}], "lam": NaN}',
    "Infinity lam": b'{"pairs": [{"question": "q", "candidate": "c"}], "lam": Infinity}',
    "lam above 1": jbytes({**GOOD, "lam": 1.5}),
    "lam as string": jbytes({**GOOD, "lam": "0.5"}),
    "lam as bool": jbytes({**GOOD, "lam": True}),
    "lam < 1 without forward model": jbytes({**GOOD, "lam": 0.5}),
    "unknown normalize": jbytes({**GOOD, "normalize": "median"}),
    "deeply nested json": b'{"pairs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "question too long for the model": jbytes({"pairs": [{"question": "seven apples " * 600, "candidate": "c"}]}),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_corpus(server, case):
    r = raw_post(server.url, BAD_INPUTS[case])
    assert 400 <= r.status_code < 500, (case, r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["type"] and err["message"]
    assert "Traceback" not in r.text and len(r.text) < 20_000  # no traceback, input not echoed


def test_server_healthy_after_bad_inputs(server, scorer):
    for name, payload in BAD_INPUTS.items():
        if name not in ("10 MB field", "100k pairs"):  # the corpus test already sent these
            raw_post(server.url, payload)
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    r = httpx.post(f"{server.url}/v1/score", json=GOOD)
    assert r.status_code == 200
    assert r.json()["scores"][0]["reverse_logprob"] == pytest.approx(
        scorer.score([("What is 2+3?", "2+3 = 5. #### 5")])[0].reverse_logprob, abs=1e-4)
    assert count_500s(server.url) == 0


def test_body_limit_on_streamed_body_without_content_length(scorer):
    app = create_app(scorer, ServerConfig(max_body_bytes=1000))
    with ServerThread(app) as srv:
        wait_ready(srv.url)

        def chunks():
            yield b'{"pairs": [{"question": "q", "candidate": "'
            for _ in range(100):
                yield b"x" * 100
            yield b'"}]}'

        r = httpx.post(f"{srv.url}/v1/score", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"
        assert "content-length" not in r.request.headers
        # bad Content-Length header, raw socket (httpx will not send one)
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n{}")
            head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 4")
        assert httpx.post(f"{srv.url}/v1/score", json=GOOD).status_code == 200


def test_auth_over_http(scorer):
    with ServerThread(create_app(scorer, ServerConfig(api_key="tok-123"))) as srv:
        wait_ready(srv.url)
        for headers in ({}, {"authorization": "Bearer tok-124"}, {"authorization": "tok-123"}):
            r = raw_post(srv.url, jbytes(GOOD), headers)
            assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
        # auth is checked before the body is parsed
        assert raw_post(srv.url, b"{not json", {}).status_code == 401
        assert raw_post(srv.url, jbytes(GOOD), {"authorization": "Bearer tok-123"}).status_code == 200
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        assert httpx.get(f"{srv.url}/metrics").status_code == 200
        assert count_500s(srv.url) == 0


async def test_backpressure_503_with_retry_after(scorer):
    gate = threading.Event()
    app = create_app(GatedScorer(scorer, gate), ServerConfig(max_queue=2, max_wait_ms=0, retry_after_s=3))
    with ServerThread(app) as srv:
        wait_ready(srv.url)
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
            running = asyncio.create_task(c.post("/v1/score", json=GOOD))
            await asyncio.sleep(0.3)
            queued = [asyncio.create_task(c.post("/v1/score", json=GOOD)) for _ in range(2)]
            await asyncio.sleep(0.3)
            r = await c.post("/v1/score", json=GOOD)
            assert r.status_code == 503
            assert r.headers["retry-after"] == "3" and r.json()["error"]["type"] == "overloaded"
            h = (await c.get("/healthz")).json()
            assert h["queue_depth"] == 2
            gate.set()
            done = await asyncio.gather(running, *queued)
        assert [d.status_code for d in done] == [200, 200, 200]
        assert metric(srv.url, "ledom_rejected_total", 'reason="queue_full"') == 1
