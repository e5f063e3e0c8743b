"""vLLM backend == local backend on a tiny model (run in the vLLM virtualenv: .ci/vllm_stage.sh)."""

from __future__ import annotations

import os

import pytest

vllm = pytest.importorskip("vllm.entrypoints.llm", reason="vllm is not installed (run .ci/vllm_stage.sh in its own virtualenv)")

pytestmark = pytest.mark.vllm

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in-process: no spawn, faster start

PAIRS = [
    ("What is 7 times 8?", "7 * 8 = 56\n#### 56"),
    ("Natalia sold clips to 48 of her friends in April, and then she sold half as many in May.",
     "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.\n#### 72"),
    ("What is 7 times 8?", "The answer is 5."),
    ("Weng earns $12 an hour for babysitting.", "To be, or not to be, that is the question. " * 4),
]


@pytest.fixture(scope="module")
def vllm_scorer(tiny_model_dir):
    from ledom_reason.scorers.vllm import VLLMScorer

    return VLLMScorer.from_pretrained(str(tiny_model_dir), dtype="float32", max_model_len=512,
                                      enforce_eager=True)


def test_vllm_matches_local_backend(vllm_scorer, scorer):
    v = vllm_scorer.score(PAIRS)
    loc = scorer.score(PAIRS)
    assert [s.question_tokens for s in v] == [s.question_tokens for s in loc]
    diffs = [abs(a.reverse_logprob - b.reverse_logprob) for a, b in zip(v, loc, strict=True)]
    assert max(diffs) < 1e-4, diffs
    assert len({round(s.reverse_logprob, 2) for s in v}) == len(PAIRS)  # the pairs really differ


async def test_vllm_ascore_and_order(vllm_scorer):
    fwd = await vllm_scorer.ascore(PAIRS)
    rev = vllm_scorer.score(PAIRS[::-1])
    assert [s.reverse_logprob for s in fwd] == pytest.approx([s.reverse_logprob for s in rev[::-1]], abs=1e-5)


def test_vllm_layout_setting_matches_local(vllm_scorer, tiny_model_dir):
    from ledom_reason import ReverseScorer
    from ledom_reason.scorers.vllm import VLLMScorer

    v = VLLMScorer(vllm_scorer.llm, vllm_scorer.tokenizer, bos="none")
    loc = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", bos="none", check_direction=False)
    assert [r.input_ids for r in v.encode(PAIRS)] == [e.reverse.input_ids for e in loc.encode(PAIRS)]
    diffs = [abs(a.reverse_logprob - b.reverse_logprob) for a, b in zip(v.score(PAIRS), loc.score(PAIRS), strict=True)]
    assert max(diffs) < 1e-4, diffs


def test_vllm_bad_input_names_pair(vllm_scorer):
    with pytest.raises(ValueError, match="pair 1"):
        vllm_scorer.score([PAIRS[0], ("", "x")])


async def test_vllm_generator_expands_and_samples(tiny_model_dir):
    from ledom_reason.generators import VLLMGenerator

    gen = VLLMGenerator.from_pretrained(
        str(tiny_model_dir), llm_kwargs={"dtype": "float32", "max_model_len": 512, "enforce_eager": True},
        max_tokens=8, seed=0,
    )
    steps = await gen.expand("What is 7 times 8?", "7 * 8 = 56", 3)
    sols = await gen.sample("What is 7 times 8?", 2)
    assert len(steps) == 3 and len(sols) == 2
    assert steps.generated_tokens is not None and 3 <= steps.generated_tokens <= 24
    assert all("\n\n" not in s for s in steps)  # stopped at the step delimiter
