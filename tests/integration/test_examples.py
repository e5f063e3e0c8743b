"""The integration examples run offline on CPU (subprocess), with fakes and with an OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _run(script: str, *args: str, timeout: int = 120) -> str:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT, env=env)
    assert p.returncode == 0, f"{script} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def test_langchain_best_of_n_example_default_model():
    out = _run("langchain_best_of_n.py")
    assert "chosen answer:" in out
    assert out.count("reward=") >= 4  # one line per candidate
    assert "generator calls" in out


def test_dspy_best_of_n_example(tiny_model_dir):
    out = _run("dspy_best_of_n.py", "--model", str(tiny_model_dir))
    assert "best answer:" in out and "rewards:" in out
    assert "bootstrapped demos:" in out


def test_step_pruner_agent_example(tiny_model_dir):
    out = _run("langchain_step_pruner_agent.py", "--model", str(tiny_model_dir))
    assert "[event] ledom_search" in out
    assert "final chain" in out


def test_langgraph_reasoning_agent_example(tiny_model_dir):
    import re

    out = _run("langgraph_reasoning_agent.py", "--model", str(tiny_model_dir), "--n", "3")
    assert out.count("=== task:") == 2 and out.count("final answer:") == 2
    assert "[search] depth 0 scored: pairs=4" in out  # beam 2 x 2 expansions, one scorer call per depth
    assert out.count("[best-of-n] tool-call turn passed through") == 2 and out.count("tool calculator -> ") == 2
    kept = re.findall(r"kept candidate (\d) of 3 \(rewards (.*)\)", out)
    assert len(kept) == 2
    for i, rewards in kept:  # the kept final answer is the one with the highest reward
        values = [float(r) for r in rewards.split(", ")]
        assert values[int(i)] == max(values)


class _FakeOpenAI(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict]] = []
    answers: ClassVar[list[str]] = ["3 + 4 = 7.\n#### 7", "3 * 4 = 12.\n#### 12", "7 apples.\n#### 7"]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        n = int(body.get("n") or 1)
        k = len(type(self).requests)
        choices = [{"index": i, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": self.answers[(k + i) % len(self.answers)]}}
                   for i in range(n)]
        data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": choices,
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def openai_server():
    _FakeOpenAI.requests = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_langchain_example_with_openai_compatible_endpoint(openai_server, tiny_model_dir):
    out = _run("langchain_best_of_n.py", "--model", str(tiny_model_dir), "--openai-base-url", openai_server,
               "--openai-model", "fake-model", "--n", "3")
    assert _FakeOpenAI.requests, "the example never called the endpoint"
    assert _FakeOpenAI.requests[0]["model"] == "fake-model"
    assert _FakeOpenAI.requests[0]["n"] == 3  # the chat model has an `n` field: one request for N samples
    chosen = out.split("chosen answer:")[1].strip().splitlines()[0]
    assert any(chosen in a.replace("\n", " ") or chosen in a for a in _FakeOpenAI.answers)
