"""Reversal convention: round trip, scored positions, truncation, bad input."""

from __future__ import annotations

import pytest

from ledom_reason.reverse import (
    build_reverse_ids,
    build_reverse_input,
    reverse_document,
    reverse_ids,
    unreverse,
)


def test_hand_checked_layout_with_bos():
    r = build_reverse_ids([10, 11, 12], [20, 21], bos_token_id=1)
    # [BOS] + reverse(candidate) + reverse(question)
    assert r.input_ids == [1, 21, 20, 12, 11, 10]
    assert r.score_start == 3 and r.num_scored == 3
    assert list(r.target_positions) == [3, 4, 5]
    assert list(r.logit_positions) == [2, 3, 4]
    # the logits at position 2 (candidate's first token, 20) predict the question's LAST token, 12
    assert [r.input_ids[p + 1] for p in r.logit_positions] == [12, 11, 10]


def test_layout_without_bos():
    r = build_reverse_ids([10, 11], [20, 21, 22], bos_token_id=None)
    assert r.input_ids == [22, 21, 20, 11, 10]
    assert r.score_start == 3 and not r.has_bos
    assert r.candidate_ids_forward() == [20, 21, 22]
    assert r.question_ids_forward() == [10, 11]


def test_reverse_ids_is_involution():
    ids = [5, 1, 9, 9, 2]
    assert reverse_ids(reverse_ids(ids)) == ids
    assert reverse_document([1, 2, 3], bos_token_id=0) == [0, 3, 2, 1]
    assert reverse_document([1, 2, 3], bos_token_id=None) == [3, 2, 1]


def test_round_trip_with_real_tokenizer(tiny_tokenizer):
    q = "Natalia sold clips to 48 of her friends in April. How many clips did she sell?"
    c = "In May she sold 48/2 = 24 clips.\nAltogether 48+24 = 72 clips.\n#### 72"
    r = build_reverse_input(tiny_tokenizer, q, c)
    assert r.input_ids[0] == tiny_tokenizer.bos_token_id
    assert unreverse(tiny_tokenizer, r) == (q, c)
    assert r.num_scored == len(tiny_tokenizer(q, add_special_tokens=False)["input_ids"])


def test_truncation_drops_candidate_earliest_tokens():
    q, c = [10, 11], [20, 21, 22, 23, 24]
    r = build_reverse_ids(q, c, bos_token_id=1, max_length=6)
    assert r.truncated_tokens == 2
    assert r.candidate_ids_forward() == [22, 23, 24]  # earliest two dropped
    assert r.question_ids_forward() == q and len(r.input_ids) == 6


def test_truncation_error_policy_and_question_too_long():
    with pytest.raises(ValueError, match="over the context"):
        build_reverse_ids([10, 11], [20, 21, 22], bos_token_id=1, max_length=5, truncate="error")
    with pytest.raises(ValueError, match="question alone"):
        build_reverse_ids(list(range(10)), [20], bos_token_id=1, max_length=10)
    with pytest.raises(ValueError, match="truncate"):
        build_reverse_ids([1], [2], bos_token_id=None, truncate="middle")  # type: ignore[arg-type]


def test_empty_inputs_rejected():
    with pytest.raises(ValueError, match="question"):
        build_reverse_ids([], [1], bos_token_id=None)
    with pytest.raises(ValueError, match="candidate"):
        build_reverse_ids([1], [], bos_token_id=None)
