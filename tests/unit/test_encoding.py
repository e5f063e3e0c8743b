"""PairEncoder and the `bos` layout setting: every layout built by hand from the tokenizer's own output."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ledom_reason.reverse import BosLayout, build_reverse_input
from ledom_reason.scorers.config import ScorerConfig
from ledom_reason.scorers.encoding import PairEncoder, check_vocabulary, safe_pad_id
from ledom_reason.testing import plain_ids as plain
from ledom_reason.types import InvalidPairError

Q, C = "What is 7 times 8?", "7 * 8 = 56\n#### 56"


def test_layouts_token_level(tiny_tokenizer):
    tok = tiny_tokenizer
    q, c = plain(tok, Q), plain(tok, C)
    body = c[::-1] + q[::-1]
    eos = tok.eos_token_id
    assert BosLayout.resolve(tok, "auto").build(tok, Q, C).input_ids == [tok.bos_token_id, *body]
    assert BosLayout.resolve(tok, "none").build(tok, Q, C).input_ids == body
    assert BosLayout.resolve(tok, tok.eos_token).build(tok, Q, C).input_ids == [eos, *body]
    # a tokenizer that adds nothing: "tokenizer" == "none"
    assert BosLayout.resolve(tok, "tokenizer").build(tok, Q, C).input_ids == body
    for bos in ("auto", "none", tok.eos_token, "tokenizer"):
        r = build_reverse_input(tok, Q, C, bos=bos)
        assert r.question_ids_forward() == q and r.candidate_ids_forward() == c
        assert r.num_scored == len(q)


def test_tokenizer_layout_matches_third_party_loader(bos_eos_tokenizer):
    """`"tokenizer"` = encode with the tokenizer's specials, reverse, drop the BOS that ends up last."""
    tok = bos_eos_tokenizer

    def third_party(text):  # the loader's recipe, written out
        return list(reversed(tok.encode(text)))[:-1]

    r = build_reverse_input(tok, Q, C, bos="tokenizer")
    assert r.input_ids == third_party(C) + third_party(Q)
    assert r.input_ids[r.score_start:] == third_party(Q)  # [EOS] + reverse(question) is scored
    assert r.input_ids[0] == tok.eos_token_id and tok.bos_token_id not in r.input_ids
    # the default layout is unaffected by what the tokenizer adds itself
    assert build_reverse_input(tok, Q, C).input_ids == [tok.bos_token_id, *plain(tok, C)[::-1], *plain(tok, Q)[::-1]]


def test_bad_settings(tiny_tokenizer):
    with pytest.raises(TypeError, match="`bos`"):
        ScorerConfig(bos=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`forward_bos`"):
        ScorerConfig(forward_bos="")
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary"):
        BosLayout.resolve(tiny_tokenizer, "<s>")


def test_encoder_is_what_the_scorer_uses(scorer_fwd):
    enc = PairEncoder(scorer_fwd.tokenizer, scorer_fwd.config, max_length=scorer_fwd.max_length,
                      forward_tokenizer=scorer_fwd.forward_tokenizer, forward_max_length=scorer_fwd.forward_max_length)
    pairs = [(Q, C), ("Why?", "Because " * 40)]
    assert enc.encode(pairs) == scorer_fwd.encode(pairs)
    with pytest.raises(InvalidPairError) as e:
        enc.encode([(Q, C), ("", C)])
    assert e.value.index == 1


def test_pad_id_stays_inside_the_table(tiny_tokenizer):
    tok = tiny_tokenizer
    n = len(tok)
    assert safe_pad_id(tok, n) == tok.pad_token_id
    qwen_like = SimpleNamespace(pad_token_id=300, eos_token_id=3, bos_token_id=None)  # pad == table size
    assert safe_pad_id(qwen_like, 300) == 3
    assert safe_pad_id(qwen_like, 301) == 300
    assert safe_pad_id(SimpleNamespace(pad_token_id=None, eos_token_id=None, bos_token_id=None), 5) == 0
    assert check_vocabulary(tok, n) == []
    with pytest.raises(ValueError, match=rf"len\(tokenizer\) = {n} .* has {n - 10} rows"):
        check_vocabulary(tok, n - 10)
