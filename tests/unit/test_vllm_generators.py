"""OpenAI-compatible generator against a real HTTP server on 127.0.0.1 (a stand-in for `vllm serve`)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from ledom_reason.generators import DEFAULT_TEMPLATE, OpenAIGenerator


class _Completions(BaseHTTPRequestHandler):
    """Minimal /v1/completions: continues the prompt with numbered steps and honours `stop`."""

    seen: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Completions.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        if self.path != "/v1/completions" or body.get("model") != "m":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "unknown"}')
            return
        depth = body["prompt"].count("\n\n")
        choices = []
        for i in range(body["n"]):
            text = f" Step {depth}.{i}: compute.\n\nStep {depth + 1}: more.\n\n#### {i}"
            for s in body.get("stop") or []:
                text = text.split(s)[0]
            choices.append({"index": i, "text": text})
        out = json.dumps({"choices": choices[::-1], "usage": {"completion_tokens": 5 * body["n"]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server_url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Completions)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


async def test_expand_returns_one_step_per_sample(server_url):
    gen = OpenAIGenerator(server_url, model="m", api_key="secret", temperature=0.5)
    steps = await gen.expand("What is 2+3?", "2+3 = 5.", 3)
    assert list(steps) == ["Step 2.0: compute.", "Step 2.1: compute.", "Step 2.2: compute."]
    assert steps.generated_tokens == 15
    req = _Completions.seen[-1]
    assert req["auth"] == "Bearer secret" and req["stop"] == ["\n\n"] and req["temperature"] == 0.5
    assert req["prompt"] == DEFAULT_TEMPLATE.format(question="What is 2+3?") + "2+3 = 5.\n\n"
    await gen.aclose()


async def test_sample_returns_full_solutions(server_url):
    gen = OpenAIGenerator(server_url, model="m")
    sols = await gen.sample("What is 2+3?", 2)
    assert len(sols) == 2 and all("####" in s for s in sols)
    assert "stop" not in _Completions.seen[-1]
    await gen.aclose()


async def test_errors_are_clear(server_url):
    gen = OpenAIGenerator(server_url, model="other")
    with pytest.raises(RuntimeError, match="404"):
        await gen.sample("q?", 1)
    with pytest.raises(ValueError, match="`n`"):
        await gen.expand("q?", "", 0)
    with pytest.raises(ValueError, match="`question`"):
        await gen.expand(" ", "", 1)
    with pytest.raises(ValueError, match="base_url"):
        OpenAIGenerator("localhost:8000", model="m")
    await gen.aclose()
