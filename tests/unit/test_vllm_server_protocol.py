"""VLLMServerScorer's reading of vLLM's prompt_logprobs JSON (no server: the HTTP side is in integration/)."""

from __future__ import annotations

import math

import pytest

from ledom_reason.scorers.vllm_server import Seq, sum_prompt_logprobs


def entry(lp, rank=1, tok="x"):
    return {"logprob": lp, "rank": rank, "decoded_token": tok}


def test_takes_the_prompt_token_by_id_among_top_k_entries():
    seq = Seq([1, 7, 8, 9], score_start=2)  # positions 2 and 3 scored
    plp = [None,
           {"7": entry(-1.0), "3": entry(-0.1)},
           {"5": entry(-0.2, 1), "6": entry(-0.3, 2), "8": entry(-2.5, 40)},  # the prompt token is not first
           {"9": entry(-0.5)}]
    assert sum_prompt_logprobs(plp, seq) == pytest.approx(-3.0)
    as_ints = [None] + [{int(k): v for k, v in d.items()} for d in plp[1:]]  # ray.data.llm's int keys
    assert sum_prompt_logprobs(as_ints, seq) == pytest.approx(-3.0)


@pytest.mark.parametrize("bad", [None, -9999.0, math.inf, math.nan])
def test_non_finite_or_clamped_logprobs_raise(bad):
    plp = [None, {"7": entry(-1.0)}, {"8": entry(bad)}]
    with pytest.raises(FloatingPointError, match="position 2"):
        sum_prompt_logprobs(plp, Seq([1, 7, 8], 1))


def test_shape_mismatches_raise():
    with pytest.raises(ValueError, match="2 positions for a prompt of 3"):
        sum_prompt_logprobs([None, {"7": entry(-1.0)}], Seq([1, 7, 8], 1))
    with pytest.raises(ValueError, match="no log-prob for prompt token 8 at position 2"):
        sum_prompt_logprobs([None, {"7": entry(-1.0)}, {"9": entry(-1.0)}], Seq([1, 7, 8], 1))
    with pytest.raises(ValueError, match="positions"):
        sum_prompt_logprobs(None, Seq([1, 7, 8], 1))
    with pytest.raises(TypeError, match="not a number"):
        sum_prompt_logprobs([None, {"7": entry("-1")}], Seq([1, 7], 1))
