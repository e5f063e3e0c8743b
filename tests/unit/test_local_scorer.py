"""Local scorer: fast path == reference, order, determinism, forward model, bad input, async."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
import torch

from ledom_reason import ReverseScorer, ScorerConfig
from ledom_reason.scorers.engine import ScoringSeq, fast_logprobs, plan_batches, reference_logprobs

Q = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
    "What is 7 times 8?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
]
C = [
    "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\n#### 72",
    "7 * 8 = 56\n#### 56",
    "Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.\n#### 10",
    "The answer is 5.",
    "To be, or not to be, that is the question: " * 3,
]


def _pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        q = rng.choice(Q)
        c = " ".join(rng.choice(C) for _ in range(rng.randint(1, 3)))
        out.append((q, c))
    return out


def _by_hand(scorer: ReverseScorer, q: str, c: str) -> float:
    """Independent computation straight from the convention, no package helpers."""
    tok = scorer.tokenizer
    qi = tok(q, add_special_tokens=False)["input_ids"]
    ci = tok(c, add_special_tokens=False)["input_ids"]
    ids = [tok.bos_token_id, *ci[::-1], *qi[::-1]]
    with torch.no_grad():
        logp = torch.log_softmax(scorer.model(torch.tensor([ids])).logits[0].double(), -1)
    start = 1 + len(ci)
    return sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids)))


def test_reference_matches_hand_computation(tiny_model_dir):
    ref = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", mode="reference")
    q, c = Q[1], C[1]
    s = ref.score([(q, c)])[0]
    assert s.reverse_logprob == pytest.approx(_by_hand(ref, q, c), abs=1e-4)
    assert s.question_tokens == len(ref.tokenizer(q, add_special_tokens=False)["input_ids"])
    assert s.reverse_mean == pytest.approx(s.reverse_logprob / s.question_tokens)
    assert s.reverse_logprob < 0


@pytest.mark.parametrize("arch_fixture", ["tiny_model_dir", "tiny_llama_dir"])
@pytest.mark.parametrize("batch_tokens", [64, 700, 100_000])
def test_fast_equals_reference(request, arch_fixture, batch_tokens):
    path = request.getfixturevalue(arch_fixture)
    ref = ReverseScorer.from_pretrained(path, device="cpu", mode="reference")
    fast = ReverseScorer.from_pretrained(path, device="cpu", batch_tokens=batch_tokens, head_chunk_bytes=4096 * 8)
    pairs = _pairs(24, seed=batch_tokens)
    r = [s.reverse_logprob for s in ref.score(pairs)]
    f = [s.reverse_logprob for s in fast.score(pairs)]
    assert max(abs(a - b) for a, b in zip(r, f, strict=True)) < 1e-4
    assert len(set(round(x, 3) for x in r)) > 5  # the pairs really differ


def test_order_preserved_and_batch_invariant(scorer):
    pairs = _pairs(30, seed=3)
    base = {p: s.reverse_logprob for p, s in zip(pairs, scorer.score(pairs), strict=True)}
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    for p, s in zip(shuffled, scorer.score(shuffled), strict=True):
        assert s.reverse_logprob == pytest.approx(base[p], abs=1e-5)
    # a pair scored alone, or among very different neighbours, gets the same score
    for p in pairs[:4]:
        assert scorer.score([p])[0].reverse_logprob == pytest.approx(base[p], abs=1e-5)
    # deterministic: the same call twice gives bit-identical results
    assert [s.reverse_logprob for s in scorer.score(pairs)] == [base[p] for p in pairs]


def test_plan_batches_respects_budget_and_covers_all():
    lengths = [5, 50, 7, 33, 33, 120, 1, 64]
    plan = plan_batches(lengths, batch_tokens=100)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    for b in plan:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 100


def test_engine_on_hand_made_sequences(scorer):
    seqs = [ScoringSeq([1, 5, 6, 7], 2), ScoringSeq([1, 9, 8], 1), ScoringSeq([3, 3, 3, 3, 3, 3], 5)]
    r = reference_logprobs(scorer.model, seqs, scorer.device)
    f = fast_logprobs(scorer.model, seqs, scorer.device, batch_tokens=10, head_chunk_bytes=1)
    assert r == pytest.approx(f, abs=1e-5)
    with pytest.raises(ValueError):
        ScoringSeq([1, 2], 2)


def test_forward_model_scores(scorer_fwd, tiny_forward_dir):
    q, c = Q[1], C[1]
    s = scorer_fwd.score([(q, c)])[0]
    tok = scorer_fwd.forward_tokenizer
    qi = tok(q, add_special_tokens=False)["input_ids"]
    ci = tok(c, add_special_tokens=False)["input_ids"]
    ids = [tok.bos_token_id, *qi, *ci]
    with torch.no_grad():
        logp = torch.log_softmax(scorer_fwd.forward_model(torch.tensor([ids])).logits[0].double(), -1)
    expected = sum(float(logp[t - 1, ids[t]]) for t in range(1 + len(qi), len(ids)))
    assert s.forward_logprob == pytest.approx(expected, abs=1e-4)
    assert s.candidate_tokens == len(ci)
    assert s.forward_mean == pytest.approx(expected / len(ci), abs=1e-5)
    assert s.input_tokens == (1 + len(qi) + len(ci)) * 2


def test_truncation_policy(tiny_model_dir):
    short = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", max_length=40)
    s = short.score([(Q[1], C[0] * 3)])[0]
    assert s.truncated_tokens > 0 and s.input_tokens == 40
    strict = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", max_length=40, truncate="error")
    with pytest.raises(ValueError, match="pair 0"):
        strict.score([(Q[1], C[0] * 3)])
    with pytest.raises(ValueError, match="question alone"):
        short.score([(Q[0] * 3, "x")])


@pytest.mark.parametrize(
    ("pairs", "exc"),
    [
        ([("", "a")], ValueError),
        ([("q", "   ")], ValueError),
        ([("q", 5)], TypeError),
        ([("q",)], ValueError),
        ("not a list", TypeError),
        ([{"question": "q"}], ValueError),
        ([None], TypeError),
    ],
)
def test_bad_input(scorer, pairs, exc):
    with pytest.raises(exc):
        scorer.score(pairs)


def test_empty_list_and_mapping_input(scorer):
    assert scorer.score([]) == []
    a = scorer.score([{"question": Q[1], "candidate": C[1]}])[0]
    b = scorer.score([(Q[1], C[1])])[0]
    assert a == b


def test_nan_logits_raise(tiny_model_dir):
    bad = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu")
    with torch.no_grad():
        bad.model.get_output_embeddings().weight[0, 0] = math.nan
    with pytest.raises(FloatingPointError, match="non-finite"):
        bad.score([(Q[1], C[1])])
    ref = ReverseScorer(bad.model, bad.tokenizer, config=ScorerConfig(mode="reference"))
    with pytest.raises(FloatingPointError):
        ref.score([(Q[1], C[1])])


def test_config_validation():
    with pytest.raises(ValueError, match="batch_tokens"):
        ScorerConfig(batch_tokens=0)
    with pytest.raises(ValueError, match="truncate"):
        ScorerConfig(truncate="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        ScorerConfig(mode="turbo")  # type: ignore[arg-type]


def test_missing_model_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ReverseScorer.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        ReverseScorer.from_pretrained(tmp_path)


async def test_ascore_does_not_block_loop(scorer):
    pairs = _pairs(40, seed=5)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    t = asyncio.create_task(ticker())
    res = await scorer.ascore(pairs)
    t.cancel()
    assert ticks > 1
    assert [s.reverse_logprob for s in res] == [s.reverse_logprob for s in scorer.score(pairs)]


def test_progress_callback(scorer):
    seen = []
    scorer.score(_pairs(10), progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1] == (10, 10)


def test_bad_pairs_raise_pair_errors_that_carry_the_index(scorer):
    from ledom_reason.types import InvalidPairError, PairError, PairTypeError

    with pytest.raises(InvalidPairError) as ei:
        scorer.score([("q?", "fine"), ("q?", "also fine"), ("q?", "   ")])
    assert ei.value.index == 2 and isinstance(ei.value, ValueError) and ei.value.reason == "`candidate` is empty"
    with pytest.raises(PairTypeError) as et:
        scorer.score([("q?", 3)])
    assert et.value.index == 0 and isinstance(et.value, TypeError)
    too_long = "word " * 2000
    with pytest.raises(InvalidPairError) as el:
        scorer.score([("q?", "fine"), (too_long, "c")])
    assert el.value.index == 1 and "does not fit the context" in el.value.reason
    # pickles with its attributes (errors cross process boundaries in Ray and the server's workers)
    import pickle

    again = pickle.loads(pickle.dumps(el.value))
    assert isinstance(again, PairError) and again.index == 1 and str(again) == str(el.value)


@pytest.mark.parametrize(("family", "extra", "packed"), [
    ("llama", {}, True),
    ("gemma2", {"head_dim": 32}, False),  # attention logit soft-capping: the packed kernels would ignore it
    ("mistral", {"sliding_window": 64}, False),  # a window shorter than the context
    ("mistral", {"sliding_window": 4096}, True),  # a window the context never reaches
])
def test_packed_attention_only_where_it_is_exact(family, extra, packed, tiny_tokenizer):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(
        family, vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256, **extra)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    s = ReverseScorer(model, tiny_tokenizer, config=ScorerConfig(attention="packed", packed_kernel="segments",
                                                                 batch_tokens=512))
    assert (s.packed_kernel_for(model) == "segments") is packed
    pairs = [("What is 7 times 8? " * 3, "7 * 8 = 56. " * 12), ("Hi?", "Yes.")]
    ref = ReverseScorer(model, tiny_tokenizer, config=ScorerConfig(mode="reference"))
    assert [x.reverse_logprob for x in s.score(pairs)] == pytest.approx(
        [x.reverse_logprob for x in ref.score(pairs)], abs=1e-4)
