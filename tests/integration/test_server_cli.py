"""``ledom-reason serve`` as a real process: readiness, graceful SIGTERM, start-up errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx

from ledom_reason.cli import main
from ledom_reason.server.run import wait_ready

PAIR = ("What is 2+3?", "2+3 = 5. #### 5")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_finishes_in_flight_request_and_exits_0(tiny_model_dir, scorer):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LEDOM_TEST_KEY": "k1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledom_reason", "serve", "--model", str(tiny_model_dir), "--port", str(port),
         "--max-wait-ms", "1500", "--api-key-env", "LEDOM_TEST_KEY", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_ready(url, timeout=60)
        result: dict[str, httpx.Response] = {}

        def in_flight():  # sits in the batcher for max_wait_ms = 1.5 s
            result["r"] = httpx.post(f"{url}/v1/score", json={"pairs": [{"question": PAIR[0], "candidate": PAIR[1]}]},
                                     headers={"authorization": "Bearer k1"}, timeout=30)

        t = threading.Thread(target=in_flight)
        t.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.TransportError):  # no longer accepting
            httpx.get(f"{url}/healthz", timeout=2)
        t.join(30)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert rc == 0, err[-2000:]
    r = result["r"]
    assert r.status_code == 200, r.text
    assert r.json()["scores"][0]["reverse_logprob"] == pytest.approx(scorer.score([PAIR])[0].reverse_logprob, abs=1e-4)
    assert r.json()["model"] == tiny_model_dir.name
    assert "Traceback" not in err


def test_missing_api_key_env_is_a_usage_error(tiny_model_dir, monkeypatch, capsys):
    monkeypatch.delenv("LEDOM_NOPE", raising=False)
    assert main(["serve", "--model", str(tiny_model_dir), "--api-key-env", "LEDOM_NOPE"]) == 2
    assert "LEDOM_NOPE" in capsys.readouterr().err


def test_bad_limit_is_a_usage_error(tiny_model_dir, capsys):
    assert main(["serve", "--model", str(tiny_model_dir), "--max-queue", "0"]) == 2
    assert "`max_queue`" in capsys.readouterr().err


def test_model_load_failure_exits_1(tmp_path):
    assert main(["serve", "--model", str(tmp_path / "missing"), "--port", "0", "--log-level", "critical"]) == 1
