"""Language-model loss without materialising the ``[tokens × vocab]`` logits.

:class:`ChunkedLinearCrossEntropy` computes, ``chunk`` rows at a time, the logits of the LM head,
the summed cross-entropy *and* its gradients with respect to the hidden states and the head
weight, then drops the chunk's logits. Backward only scales the stored gradients, so peak memory
is ``chunk × vocab`` floats instead of ``tokens × vocab`` (and there is no recompute). Liger's
fused kernel is used instead when installed (``loss_impl="liger"``/``"auto"`` on CUDA).

:class:`LossModule` wraps a causal LM so that ``forward(input_ids, targets, position_ids)``
returns ``(loss_sum, n_targets)``; it is the module that DDP/FSDP wrap.

Example:
    >>> import torch
    >>> from ledom_reason.training.loss import chunked_linear_cross_entropy
    >>> h, w, t = torch.randn(10, 8), torch.randn(50, 8), torch.randint(0, 50, (10,))
    >>> full = torch.nn.functional.cross_entropy(h @ w.T, t, reduction="sum")
    >>> bool(torch.allclose(chunked_linear_cross_entropy(h, w, t, chunk=3), full, atol=1e-4))
    True
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F  # noqa: N812

from ledom_reason.training.model import base_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)
IGNORE = -100


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """``sum_t CE(h_t @ W.T, y_t)`` over rows of ``h`` (T, d) with ``W`` (V, d); grads made in forward."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        need_w = weight.requires_grad
        grad_h = torch.empty_like(h)
        acc = torch.promote_types(h.dtype, torch.float32)  # fp32 logits/accumulators (fp64 stays fp64)
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=acc, device=h.device)
        w = weight.to(h.dtype)
        for a in range(0, h.shape[0], chunk):
            hc, tc = h[a : a + chunk], targets[a : a + chunk]
            logits = (hc @ w.T).to(acc)  # (c, V) fp32
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, tc[:, None]).squeeze(1)).sum()
            g = torch.softmax(logits, dim=-1)  # d(CE)/d(logits) = softmax - onehot
            g[torch.arange(len(tc), device=g.device), tc] -= 1.0
            g = g.to(h.dtype)
            grad_h[a : a + chunk] = g @ w
            if grad_w is not None:
                grad_w += (g.T @ hc).to(acc)
        ctx.save_for_backward(grad_h, grad_w if grad_w is not None else torch.empty(0))
        ctx.need_w = need_w
        ctx.w_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype)
        gw = (grad_w * grad_out.to(grad_w.dtype)).to(ctx.w_dtype) if ctx.need_w else None
        return gh, gw, None, None


def chunked_linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                                 chunk: int = 4096) -> torch.Tensor:
    """Summed cross-entropy of ``h @ weight.T`` against ``targets`` (no ignored rows allowed)."""
    if h.shape[0] == 0:
        return h.sum() * 0.0 + weight.sum() * 0.0
    out = ChunkedLinearCrossEntropy.apply(h, weight, targets, chunk)
    return out


def liger_available() -> bool:
    """Whether Liger's fused linear cross-entropy can be imported."""
    return importlib.util.find_spec("liger_kernel") is not None


def resolve_loss_impl(impl: str, device: torch.device, model: PreTrainedModel) -> str:
    """``auto`` → ``liger`` on CUDA when installed, else ``chunked``; heads with bias/softcap → ``full``."""
    head = model.get_output_embeddings()
    special = getattr(head, "bias", None) is not None or getattr(model.config, "final_logit_softcapping", None)
    if special and impl != "full":
        logger.warning("LM head with bias or logit softcapping: using the full loss")
        return "full"
    if impl == "auto":
        return "liger" if device.type == "cuda" and liger_available() else "chunked"
    if impl == "liger" and not liger_available():
        raise ImportError("`loss_impl='liger'` needs liger-kernel: pip install liger-kernel")
    return impl


class LossModule(torch.nn.Module):
    """``forward(input_ids, targets, position_ids=None) -> (loss_sum, n_targets)`` for a causal LM.

    ``targets`` are already shifted (``targets[b, t]`` is predicted by position ``t``) with
    ``-100`` where no loss applies. Only rows with a target reach the LM head. ``use_cache=False``
    matters: with a KV cache ``transformers`` skips its packed-sequence (document) mask.
    """

    def __init__(self, model: torch.nn.Module, impl: str = "chunked", chunk: int = 4096) -> None:
        super().__init__()
        if impl not in ("chunked", "liger", "full"):
            raise ValueError(f"`loss_impl` must be chunked, liger or full, got {impl!r}")
        self.model = model
        self.impl = impl
        self.chunk = chunk

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor,
                position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        t = targets.reshape(-1)  # (B*T,)
        n = (t != IGNORE).sum()
        if self.impl == "full":
            logits = self.model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits  # (B, T, V)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), t, ignore_index=IGNORE,
                                   reduction="sum")
            return loss, n
        base = base_model(self.model)
        hidden = base.get_decoder()(input_ids=input_ids, position_ids=position_ids,
                                    use_cache=False).last_hidden_state  # (B, T, d)
        weight = base.get_output_embeddings().weight  # (V, d)
        h = hidden.reshape(-1, hidden.shape[-1])
        keep = (t != IGNORE).nonzero().squeeze(1)
        h, tv = h.index_select(0, keep), t.index_select(0, keep)  # (N, d): rows with a target only
        if self.impl == "liger":
            from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

            loss = liger_fused_linear_cross_entropy(h, weight.to(h.dtype), tv, reduction="sum")
            return loss.float(), n
        return chunked_linear_cross_entropy(h, weight, tv, chunk=self.chunk), n
