"""Fast path variants (padded buckets, packed rows on dense/flex kernels) == the unbatched reference."""

from __future__ import annotations

import random

import pytest
import torch

from ledom_reason import ReverseScorer, ScorerConfig
from ledom_reason.scorers._packed import cu_seqlens, pick_kernel, plan_packs
from ledom_reason.scorers.engine import ScoringSeq, fast_logprobs, reference_logprobs

CPU = torch.device("cpu")


def _seqs(vocab: int, n: int, seed: int) -> list[ScoringSeq]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(4, 70)
        out.append(ScoringSeq([rng.randrange(vocab) for _ in range(length)], rng.randint(1, length - 1)))
    return out


def _model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.mark.parametrize("arch_fixture", ["tiny_model_dir", "tiny_llama_dir"])
@pytest.mark.parametrize("budget", [60, 256, 10_000])
def test_packed_dense_and_segments_equal_reference(request, arch_fixture, budget):
    model = _model(request.getfixturevalue(arch_fixture))
    seqs = _seqs(model.config.vocab_size, 20, seed=budget)
    ref = reference_logprobs(model, seqs, CPU)
    packed = fast_logprobs(model, seqs, CPU, batch_tokens=budget, head_chunk_bytes=4096 * 8, packed_kernel="dense")
    segments = fast_logprobs(model, seqs, CPU, batch_tokens=budget, head_chunk_bytes=4096 * 8,
                             packed_kernel="segments")
    padded = fast_logprobs(model, seqs, CPU, batch_tokens=budget, head_chunk_bytes=4096 * 8)
    assert max(abs(a - b) for a, b in zip(ref, packed, strict=True)) < 1e-4
    assert max(abs(a - b) for a, b in zip(ref, segments, strict=True)) < 1e-4
    assert max(abs(a - b) for a, b in zip(ref, padded, strict=True)) < 1e-4
    assert len({round(x, 3) for x in ref}) > 10  # the sequences really differ
    assert model.config._attn_implementation == "sdpa"  # switched back after the packed call


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_packed_flex_equals_reference(tiny_model_dir):
    model = _model(tiny_model_dir)
    seqs = _seqs(model.config.vocab_size, 10, seed=7)
    ref = reference_logprobs(model, seqs, CPU)
    flex = fast_logprobs(model, seqs, CPU, batch_tokens=300, head_chunk_bytes=2**20, packed_kernel="flex")
    assert max(abs(a - b) for a, b in zip(ref, flex, strict=True)) < 1e-4


def test_packed_scores_do_not_depend_on_pack_composition(tiny_model_dir):
    model = _model(tiny_model_dir)
    seqs = _seqs(model.config.vocab_size, 16, seed=3)
    for kernel in ("dense", "segments"):
        whole = fast_logprobs(model, seqs, CPU, batch_tokens=10_000, head_chunk_bytes=2**20, packed_kernel=kernel)
        alone = [fast_logprobs(model, [s], CPU, batch_tokens=10, head_chunk_bytes=2**20, packed_kernel=kernel)[0]
                 for s in seqs[:4]]
        assert alone == pytest.approx(whole[:4], abs=1e-5)


@pytest.mark.parametrize("budget", [1, 50, 120, 10_000])
def test_plan_packs_covers_every_sequence_once_under_budget(budget):
    rng = random.Random(budget)
    lengths = [rng.randint(1, 100) for _ in range(60)]
    packs = plan_packs(lengths, budget)
    assert sorted(i for p in packs for i in p) == list(range(60))
    for p in packs:
        assert len(p) == 1 or sum(lengths[i] for i in p) <= budget
    assert packs == plan_packs(lengths, budget)  # deterministic
    if budget == 10_000:
        assert len(packs) == 1


def test_cu_seqlens():
    assert cu_seqlens([3, 1, 4], CPU).tolist() == [0, 3, 4, 8]
    assert cu_seqlens([3], CPU).dtype == torch.int32


def test_kernel_selection_on_cpu():
    assert pick_kernel("auto", CPU, torch.float32) == "segments"  # CPU: packed rows, attention per sequence
    assert pick_kernel("dense", CPU, torch.float32) == "dense"
    with pytest.raises(ValueError, match="packed_kernel"):
        pick_kernel("varlen", CPU, torch.float32)


def test_scorer_attention_modes(tiny_model_dir):
    pairs = [("What is 7 times 8?", "7 * 8 = 56\n#### 56"), ("How many clips?", "48/2 = 24 clips. 48+24 = 72.")] * 3
    ref = [s.reverse_logprob for s in ReverseScorer.from_pretrained(tiny_model_dir, device="cpu",
                                                                     mode="reference").score(pairs)]
    auto = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", batch_tokens=64)
    assert auto.packed_kernel_for(auto.model) == "segments"
    padded = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", attention="padded")
    assert padded.packed_kernel_for(padded.model) is None
    dense = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", attention="packed", packed_kernel="dense",
                                          batch_tokens=64)
    assert dense.packed_kernel_for(dense.model) == "dense"
    for sc in (auto, padded, dense):
        got = [s.reverse_logprob for s in sc.score(pairs)]
        assert got == pytest.approx(ref, abs=1e-4)
    bad = ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", attention="packed", packed_kernel="varlen")
    with pytest.raises(ValueError, match="packed_kernel"):
        bad.score(pairs)


def test_config_validation():
    with pytest.raises(ValueError, match="packed_kernel"):
        ScorerConfig(packed_kernel="triton")
    with pytest.raises(TypeError, match="compile"):
        ScorerConfig(compile="yes")


@pytest.mark.slow
def test_compiled_padded_equals_reference(tiny_model_dir):
    model = _model(tiny_model_dir)
    seqs = _seqs(model.config.vocab_size, 8, seed=11)
    ref = reference_logprobs(model, seqs, CPU)
    got = fast_logprobs(model, seqs, CPU, batch_tokens=256, head_chunk_bytes=2**20, compile_model=True)
    assert max(abs(a - b) for a, b in zip(ref, got, strict=True)) < 1e-4


@pytest.mark.gpu
def test_packed_varlen_on_gpu_matches_reference(tiny_model_dir):
    """bf16 on CUDA: packed varlen == padded == unbatched reference to bf16 noise (per token)."""
    from transformers import AutoModelForCausalLM

    dev = torch.device("cuda")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).to(dev).eval()
    assert pick_kernel("auto", dev, torch.bfloat16) is not None
    seqs = _seqs(model.config.vocab_size, 32, seed=5)
    ref = reference_logprobs(model, seqs, dev)
    for kernel in (None, "varlen"):
        got = fast_logprobs(model, seqs, dev, batch_tokens=512, head_chunk_bytes=2**24, packed_kernel=kernel)
        per_tok = [abs(a - b) / (len(s.input_ids) - s.score_start) for a, b, s in zip(ref, got, seqs, strict=True)]
        assert max(per_tok) < 0.05, kernel
