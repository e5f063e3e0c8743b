"""vLLM backend pieces that need no vllm: prompt-logprob extraction and the install hint.

The end-to-end check (vLLM numbers == local backend) lives in tests/vllm_backend/ and runs in the vLLM
virtualenv (.ci/vllm_stage.sh).
"""

from __future__ import annotations

import math

import pytest

from ledom_reason.reverse import build_reverse_ids
from ledom_reason.scorers.vllm import VLLMScorer, sum_prompt_logprobs


class _Logprob:
    """Shape of vllm.sequence.Logprob (an object with ``.logprob``)."""

    def __init__(self, logprob: float) -> None:
        self.logprob = logprob


def test_sum_prompt_logprobs_takes_only_question_positions():
    rev = build_reverse_ids([7, 8], [4, 5, 6], bos_token_id=0)  # [0, 6, 5, 4, 8, 7], score_start 4
    lps = [None] + [{tok: _Logprob(-0.1 * i)} for i, tok in enumerate(rev.input_ids[1:], start=1)]
    got = sum_prompt_logprobs(lps, rev)
    assert math.isclose(got, -0.1 * 4 + -0.1 * 5)
    plain = [None] + [{tok: -1.0} for tok in rev.input_ids[1:]]  # plain floats work too
    assert sum_prompt_logprobs(plain, rev) == -2.0


def test_sum_prompt_logprobs_rejects_mismatch():
    rev = build_reverse_ids([7, 8], [4, 5, 6], bos_token_id=0)
    with pytest.raises(ValueError, match="positions"):
        sum_prompt_logprobs([None, {6: -1.0}], rev)
    lps = [None] + [{tok: -1.0} for tok in rev.input_ids[1:]]
    lps[5] = {999: -1.0}
    with pytest.raises(ValueError, match="no log-prob"):
        sum_prompt_logprobs(lps, rev)


def _has_vllm() -> bool:
    try:
        import vllm  # under pytest, `vllm` could resolve to a tests folder of that name (namespace package)
    except ImportError:
        return False
    return hasattr(vllm, "LLM")


@pytest.mark.skipif(_has_vllm(), reason="vllm is installed here")
def test_missing_vllm_gives_install_hint(tiny_model_dir):
    with pytest.raises(ImportError, match=r"ledom-reason\[vllm\]"):
        VLLMScorer.from_pretrained(str(tiny_model_dir))
