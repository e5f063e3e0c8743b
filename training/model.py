"""Models built from scratch through ``transformers`` (Qwen2/Llama) and FLOP accounting for MFU.

Checkpoints are ordinary Hugging Face folders: ``AutoModelForCausalLM.from_pretrained`` (and vLLM)
load them, and so does :meth:`ledom_reason.ReverseScorer.from_pretrained`.

Example:
    >>> from ledom_reason.training.model import flops_per_token
    >>> flops_per_token(n_params=1_000_000, num_layers=2, num_heads=2, head_dim=32, seq_len=128)
    6196608
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)


def base_model(model: torch.nn.Module) -> PreTrainedModel:
    """The underlying ``transformers`` model (through a peft wrapper, if any)."""
    get_base = getattr(model, "get_base_model", None)
    return cast("PreTrainedModel", get_base() if callable(get_base) else model)


def default_intermediate_size(hidden_size: int) -> int:
    """SwiGLU width ≈ 8/3 · d rounded up to a multiple of 64 (keeps matmuls tensor-core friendly)."""
    return max(64, -(-int(8 * hidden_size / 3) // 64) * 64)


def make_model_config(shape: Any, tokenizer: Any) -> Any:
    """A ``Qwen2Config`` or ``LlamaConfig`` from a :class:`~ledom_reason.training.config.ModelShape`."""
    from transformers import LlamaConfig, Qwen2Config

    classes = {"qwen2": Qwen2Config, "llama": LlamaConfig}
    if shape.arch not in classes:
        raise ValueError(f"`arch` must be one of {sorted(classes)}, got {shape.arch!r}")
    vocab = len(tokenizer)
    vocab = -(-vocab // 64) * 64  # pad the vocabulary to a multiple of 64 (faster matmuls)
    return classes[shape.arch](
        vocab_size=vocab,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size or default_intermediate_size(shape.hidden_size),
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=shape.max_position_embeddings,
        rope_theta=shape.rope_theta,
        attention_dropout=shape.dropout,
        initializer_range=shape.init_std,
        tie_word_embeddings=shape.tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=False,
    )


def build_model(shape: Any, tokenizer: Any, *, seed: int = 0, attn_implementation: str = "sdpa") -> PreTrainedModel:
    """Random-init causal LM (fp32 weights; autocast supplies bf16 on GPU)."""
    from transformers import AutoModelForCausalLM

    cfg = make_model_config(shape, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attn_implementation, dtype=torch.float32)
    logger.info("built %s: %.2fM parameters", type(model).__name__, count_params(model)["total"] / 1e6)
    return model


def count_params(model: PreTrainedModel) -> dict[str, int]:
    """``total`` (unique tensors) and ``flops`` parameters (all but the input embedding; LM head included)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    emb = cast(torch.Tensor, model.get_input_embeddings().weight)
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is emb
    return {"total": total, "flops": total if tied else total - emb.numel()}


def flops_per_token(*, n_params: int, num_layers: int, num_heads: int, head_dim: int, seq_len: int) -> int:
    """Training FLOPs per token: ``6N + 12·L·H·Q·T`` (PaLM appendix B; N includes the LM head)."""
    return 6 * n_params + 12 * num_layers * num_heads * head_dim * seq_len


def model_flops_per_token(model: PreTrainedModel, seq_len: int) -> int:
    """:func:`flops_per_token` for a ``transformers`` causal LM at sequence length ``seq_len``."""
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return flops_per_token(n_params=count_params(model)["flops"], num_layers=c.num_hidden_layers,
                           num_heads=c.num_attention_heads, head_dim=head_dim, seq_len=seq_len)
