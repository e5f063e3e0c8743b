from __future__ import annotations

import math

import pytest

from ledom_reason import PairScore, reverse_reward, rewards


def _s(fwd: float | None = -10.0) -> PairScore:
    return PairScore.build(-4.0, 2, forward_logprob=fwd, candidate_tokens=5 if fwd is not None else None)


def test_sum_and_mean():
    s = _s()
    assert reverse_reward(s) == -4.0
    assert reverse_reward(s, normalize="mean") == -2.0
    assert reverse_reward(s, lam=0.0) == -10.0
    assert reverse_reward(s, lam=0.25) == pytest.approx(0.75 * -10.0 + 0.25 * -4.0)
    assert reverse_reward(s, lam=0.5, normalize="mean") == pytest.approx(0.5 * -2.0 + 0.5 * -2.0)
    assert rewards([s, s.to_dict()], lam=0.5) == [-7.0, -7.0]


def test_missing_forward_is_a_clear_error():
    with pytest.raises(ValueError, match="forward_model"):
        reverse_reward(_s(None), lam=0.9)
    assert reverse_reward(_s(None), lam=1.0) == -4.0


@pytest.mark.parametrize("lam", [-0.1, 1.5, math.nan, math.inf])
def test_bad_lambda(lam):
    with pytest.raises(ValueError, match="lam"):
        reverse_reward(_s(), lam=lam)


def test_bad_normalize_and_types():
    with pytest.raises(ValueError, match="normalize"):
        reverse_reward(_s(), normalize="max")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        reverse_reward(_s(), lam="1")  # type: ignore[arg-type]


def test_pairscore_rejects_non_finite_and_round_trips():
    with pytest.raises(FloatingPointError):
        PairScore.build(math.nan, 3)
    s = _s()
    assert PairScore.from_dict(s.to_dict()) == s
