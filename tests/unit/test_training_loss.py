"""Chunked cross-entropy equals the full one (value and gradients); the loss module respects documents."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from ledom_reason.training.loss import LossModule, chunked_linear_cross_entropy
from ledom_reason.training.model import count_params, flops_per_token, model_flops_per_token


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_ce_equals_full_ce_with_gradients(chunk):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(37, 16, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 16, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 50, (37,), generator=g)
    full = F.cross_entropy(h @ w.T, t, reduction="sum")
    gh, gw = torch.autograd.grad(full * 0.5, (h, w))
    ours = chunked_linear_cross_entropy(h, w, t, chunk=chunk)
    ch, cw = torch.autograd.grad(ours * 0.5, (h, w))  # grad_output != 1 is scaled through
    torch.testing.assert_close(ours, full)
    torch.testing.assert_close(ch, gh)
    torch.testing.assert_close(cw, gw)


def _tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def test_loss_module_chunked_matches_full_on_a_model(tiny_model_dir):
    torch.manual_seed(0)
    ids = torch.randint(3, 300, (2, 12))
    tgt = ids.roll(-1, dims=1)
    tgt[:, -1] = -100
    tgt[0, :4] = -100  # masked rows never reach the head
    out = {}
    for impl in ("full", "chunked"):
        model = _tiny_model(tiny_model_dir)
        loss, n = LossModule(model, impl, chunk=5)(ids, tgt)
        loss.backward()
        out[impl] = (loss.detach(), int(n), {k: p.grad.clone() for k, p in model.named_parameters()})
    assert out["full"][1] == out["chunked"][1] == 2 * 11 - 4
    torch.testing.assert_close(out["chunked"][0], out["full"][0], rtol=1e-5, atol=1e-5)
    for k, gfull in out["full"][2].items():
        torch.testing.assert_close(out["chunked"][2][k], gfull, rtol=1e-4, atol=2e-5)


def test_loss_module_packed_block_equals_separate_documents(tiny_model_dir):
    model = _tiny_model(tiny_model_dir).eval()
    lm = LossModule(model, "chunked")
    a, b = torch.tensor([5, 9, 13, 7, 22]), torch.tensor([40, 41, 60, 3])

    def shifted(x):
        y = x.roll(-1)
        y[-1] = -100
        return y

    with torch.no_grad():
        packed, n = lm(torch.cat([a, b])[None], torch.cat([shifted(a), shifted(b)])[None],
                       torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]]))
        sep = lm(a[None], shifted(a)[None])[0] + lm(b[None], shifted(b)[None])[0]
    assert int(n) == 7
    torch.testing.assert_close(packed, sep, rtol=1e-5, atol=1e-5)


def test_flops_accounting(tiny_model_dir):
    model = _tiny_model(tiny_model_dir)
    c = count_params(model)
    emb = model.get_input_embeddings().weight.numel()
    assert c["flops"] == c["total"] - emb  # untied: the LM head counts, the input embedding does not
    per_tok = model_flops_per_token(model, 128)
    assert per_tok == 6 * c["flops"] + 12 * 2 * 2 * 32 * 128
    assert flops_per_token(n_params=10, num_layers=1, num_heads=1, head_dim=1, seq_len=1) == 72


@pytest.mark.parametrize(("tied", "kv_heads"), [(False, 4), (True, 2)])
def test_mfu_flop_formula_matches_torch_flop_counter(tied, kv_heads):
    """The MFU numerator (6N + 12·L·H·Q·T per token) equals what torch counts for a real training step.

    Eager attention so every matmul (QKᵀ, AV, projections, LM head, their backward) is visible to
    ``FlopCounterMode``; N in the formula also holds norm weights and q/k/v biases (no matmul), hence
    the small tolerance; counting matmul weights only must match exactly.
    """
    from types import SimpleNamespace

    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForCausalLM

    from ledom_reason.training.model import make_model_config

    class Vocab:
        bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

        def __len__(self) -> int:
            return 512

    shape = SimpleNamespace(arch="qwen2", hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=kv_heads,
                            intermediate_size=384, max_position_embeddings=256, rope_theta=1e4, dropout=0.0,
                            init_std=0.02, tie_word_embeddings=tied)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(make_model_config(shape, Vocab()), attn_implementation="eager",
                                             dtype=torch.float32)
    b, t = 2, 64
    ids = torch.randint(3, 512, (b, t))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    measured = counter.get_total_flops()
    matmul_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert measured == (6 * matmul_weights + 12 * 2 * 4 * 32 * t) * b * t
    predicted = model_flops_per_token(model, t) * b * t
    assert 0 <= predicted / measured - 1 < 0.01
