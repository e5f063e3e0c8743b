"""Unit tests of the FastAPI app through TestClient (no sockets): endpoints, auth, limits, errors."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from ledom_reason.reward import reverse_reward
from ledom_reason.server.app import create_app
from ledom_reason.server.config import ServerConfig

PAIRS = [("What is 2+3?", "2+3 = 5. #### 5"), ("How many legs has a cat?", "A cat has four legs. #### 4"),
         ("Name a colour.", "Blue.")]


def body(pairs=PAIRS, **kw):
    return {"pairs": [{"question": q, "candidate": c} for q, c in pairs], **kw}


def wait_healthy(client: TestClient, timeout: float = 10.0) -> None:
    t_end = time.monotonic() + timeout
    while client.get("/healthz").status_code != 200:
        assert time.monotonic() < t_end, client.get("/healthz").json()
        time.sleep(0.01)


@pytest.fixture(scope="module")
def client(scorer):
    with TestClient(create_app(scorer, ServerConfig(max_pairs_per_request=8, max_field_chars=500))) as c:
        wait_healthy(c)
        yield c


def test_score_matches_in_process_scorer(client, scorer):
    r = client.post("/v1/score", json=body())
    assert r.status_code == 200
    data = r.json()
    expected = scorer.score(PAIRS)
    assert [s["question_tokens"] for s in data["scores"]] == [e.question_tokens for e in expected]
    for got, exp in zip(data["scores"], expected, strict=True):
        assert got["reverse_logprob"] == pytest.approx(exp.reverse_logprob, abs=1e-4)
        assert got["reverse_mean"] == pytest.approx(exp.reverse_mean, abs=1e-5)
        assert "reward" not in got  # only when lam/normalize is given
    st = data["stats"]  # the names SearchStats uses
    assert (st["scored_pairs"], st["scored_tokens"]) == (3, sum(e.input_tokens for e in expected))
    assert 0 < st["scoring_time_s"] <= st["wall_time_s"]
    assert data["model"] == scorer.name


def test_empty_pairs_give_empty_scores_like_the_local_scorer(client, scorer):
    r = client.post("/v1/score", json={"pairs": []})
    assert r.status_code == 200, r.text
    assert r.json()["scores"] == [] == scorer.score([])
    assert r.json()["stats"]["scored_pairs"] == 0


def test_reward_added_on_request(client, scorer):
    expected = scorer.score(PAIRS)
    r = client.post("/v1/score", json=body(lam=1.0, normalize="mean"))
    assert r.status_code == 200
    for got, exp in zip(r.json()["scores"], expected, strict=True):
        assert got["reward"] == pytest.approx(reverse_reward(exp, lam=1.0, normalize="mean"), abs=1e-5)


def test_lam_below_one_without_forward_model_is_422(client):
    r = client.post("/v1/score", json=body(lam=0.5))
    assert r.status_code == 422
    assert r.json()["error"]["type"] == "forward_model_required"
    assert "forward" in r.json()["error"]["message"]


def test_lam_below_one_with_forward_model(scorer_fwd):
    with TestClient(create_app(scorer_fwd)) as c:
        wait_healthy(c)
        r = c.post("/v1/score", json=body(lam=0.25, normalize="sum"))
        info = c.get("/v1/info").json()
    assert r.status_code == 200, r.text
    assert info["forward_model"] is True
    expected = scorer_fwd.score(PAIRS)
    for got, exp in zip(r.json()["scores"], expected, strict=True):
        assert got["forward_logprob"] == pytest.approx(exp.forward_logprob, abs=1e-4)
        assert got["reward"] == pytest.approx(reverse_reward(exp, lam=0.25), abs=1e-4)


def test_limits_pairs_and_field_chars(client):
    r = client.post("/v1/score", json=body(PAIRS * 3))  # 9 > 8
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "too_many_pairs"
    r = client.post("/v1/score", json=body([("q?", "ok"), ("q?", "x" * 501)]))
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith("pair 1: `candidate` is 501 characters")


def test_scorer_validation_error_names_the_pair(client):
    r = client.post("/v1/score", json=body([("q?", "fine"), ("   ", "blank question")]))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "invalid_input" and "pair 1" in err["message"] and "question" in err["message"]


def test_error_bodies_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    r = client.get("/v1/score")
    assert r.status_code == 405 and r.json()["error"]["type"] == "method_not_allowed"
    r = client.post("/v1/score", json={"pairs": [{"question": "q", "candidate": "c", "extra": 1}]})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["type"] == "extra_forbidden"
    assert "input" not in r.json()["error"]["details"][0]  # never echo the input back


def test_info_metrics_openapi(client):
    info = client.get("/v1/info").json()
    assert info["limits"]["max_pairs_per_request"] == 8 and info["forward_model"] is False
    m = client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    for name in ("ledom_requests_total", "ledom_pairs_total", "ledom_tokens_total", "ledom_batch_requests_bucket",
                 "ledom_batch_pairs_bucket", "ledom_queue_depth", "ledom_request_latency_seconds_bucket"):
        assert name in m.text, name
    spec = client.get("/openapi.json").json()
    assert {"/v1/score", "/healthz", "/metrics", "/v1/info"} <= set(spec["paths"])
    assert "ScoreRequest" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_each_app_has_its_own_registry(scorer):
    a, b = create_app(scorer), create_app(scorer)
    assert a.state.ledom.metrics.registry is not b.state.ledom.metrics.registry
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("ledom_pairs_total") is None


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic c2VjcmV0", "Bearer "])
def test_auth_rejects(scorer, header):
    with TestClient(create_app(scorer, ServerConfig(api_key="s3cret"))) as c:
        headers = {"Authorization": header} if header is not None else {}
        r = c.post("/v1/score", json=body(), headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/healthz").status_code in (200, 503)  # health stays public


def test_auth_accepts_the_key(scorer):
    with TestClient(create_app(scorer, ServerConfig(api_key="s3cret"))) as c:
        wait_healthy(c)
        r = c.post("/v1/score", json=body(), headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200


def test_healthz_503_until_loader_finishes(scorer):
    gate = threading.Event()

    def load():
        gate.wait(10)
        return scorer

    with TestClient(create_app(load)) as c:
        r = c.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = c.post("/v1/score", json=body())
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        gate.set()
        wait_healthy(c)
        assert c.post("/v1/score", json=body()).status_code == 200


def test_load_failure_reported_by_healthz():
    def load():
        raise FileNotFoundError("no such model folder: /nowhere")

    fatal = []
    app = create_app(load)
    app.state.ledom.on_fatal = lambda: fatal.append(True)
    with TestClient(app) as c:
        t_end = time.monotonic() + 5
        while c.get("/healthz").json()["status"] == "loading" and time.monotonic() < t_end:
            time.sleep(0.01)
        r = c.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "error"
        assert "/nowhere" in r.json()["detail"]
    assert fatal == [True]


@pytest.mark.parametrize("kwargs", [{"port": -1}, {"max_queue": 0}, {"max_wait_ms": float("nan")},
                                    {"api_key": ""}, {"max_pairs_per_request": True}, {"retry_after_s": -1}])
def test_config_validation(kwargs):
    with pytest.raises(ValueError, match=f"`{next(iter(kwargs))}`"):
        ServerConfig(**kwargs)


def test_create_app_rejects_non_scorer():
    with pytest.raises(TypeError, match="`scorer`"):
        create_app(42)  # type: ignore[arg-type]


def test_config_repr_hides_key():
    assert "s3cret" not in repr(ServerConfig(api_key="s3cret"))


def test_calibrated_server_returns_p_correct(tiny_model_dir):
    from ledom_reason import ReverseScorer
    from ledom_reason.calibration import Calibration

    cal = Calibration("platt", 1.0, "mean", {"a": 1.0, "b": 4.0})
    calibrated = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", calibration=cal)
    with TestClient(create_app(calibrated)) as c:
        wait_healthy(c)
        got = c.post("/v1/score", json=body()).json()["scores"]
        assert c.get("/v1/info").json()["calibration"] == {"method": "platt", "lam": 1.0, "normalize": "mean"}
    assert [g["p_correct"] for g in got] == pytest.approx([cal(s) for s in calibrated.score(PAIRS)], abs=1e-9)
