"""Packed attention: many sequences in one row, no padding, one varlen attention call per layer.

The fast path's packed variant concatenates length-sorted sequences into a single row of at most
``batch_tokens`` tokens, restarts ``position_ids`` at 0 for every sequence (so RoPE sees exactly
what an unpacked forward sees) and gives attention the cumulative sequence lengths
``cu_seqlens = [0, n_0, n_0 + n_1, …]``, so each token attends causally within its own sequence only.

How it plugs into ``transformers`` (checked on 5.17 and 5.23): each kernel below is registered as an
attention function with ``AttentionInterface.register(name, fn)``; the scorer switches the model
to it with ``model.set_attn_implementation(name)`` for the duration of one call and switches back.
A name that ``AttentionMaskInterface`` does not know gets no mask at all (no ``T × T`` tensor), and
the decoder forwards its extra keyword arguments — here the standard flash-attention ones
``cu_seq_lens_q/k`` and ``max_length_q/k`` — unchanged to every attention call.

Kernels (``ScorerConfig.packed_kernel``):

* ``"varlen"`` — ``torch.nn.attention.varlen.varlen_attn`` (flash kernel; CUDA, bf16/fp16 only).
  Its keyword arguments moved across torch releases (``is_causal=`` earlier, ``window_size=(-1, 0)``
  later; ``enable_gqa`` added later), so the call is built from its signature.
* ``"flash_attn"`` — ``flash_attn.flash_attn_varlen_func`` when the package is installed (CUDA).
* ``"flex"`` — ``flex_attention`` with a document-causal ``BlockMask`` (CUDA compiled; CPU eager).
* ``"dense"`` — SDPA with an explicit block-causal boolean mask: exact everywhere but
  ``O(T²)`` memory; meant for CPU tests of the packing logic.
* ``"segments"`` — causal SDPA on each sequence's slice of the row, in a loop: exact, ``O(Σ n_i²)``,
  the CPU default (docs/performance.md: padded tokens cost matmul time on CPU, a loop of attention
  calls does not).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import itertools
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

KERNELS: tuple[str, ...] = ("varlen", "flash_attn", "flex", "dense", "segments")
_PREFIX = "ledom_packed_"


# ---------------------------------------------------------------------------- planning
def plan_packs(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Group sequence indices into packs of at most ``budget`` tokens (no padding).

    Longest first (ties by index, deterministic), first-fit over the open packs, so packs fill
    up with short sequences at the end. A sequence longer than the budget gets a pack of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    packs: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        for p, r in enumerate(room):
            if n <= r:
                packs[p].append(i)
                room[p] -= n
                break
        else:
            packs.append([i])
            room.append(max(0, budget - n))
    return packs


def cu_seqlens(lengths: Sequence[int], device: torch.device) -> torch.Tensor:
    """``[0, n_0, n_0 + n_1, …]`` as int32 on ``device``."""
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int32), 0)
    return cu.to(device)


# ---------------------------------------------------------------------------- kernels
def _to_thd(x: torch.Tensor) -> torch.Tensor:
    """(1, H, T, D) → (T, H, D)."""
    return x[0].transpose(0, 1)


def _repeat_kv(k: torch.Tensor, groups: int) -> torch.Tensor:
    """(T, Hkv, D) → (T, Hkv·groups, D) for kernels without native GQA."""
    return k if groups == 1 else k.repeat_interleave(groups, dim=1)


@functools.cache
def _varlen_call() -> tuple[Any, dict[str, Any], bool]:
    """The varlen function, its causal keyword arguments and whether it takes ``enable_gqa``."""
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    if "window_size" in params:
        causal: dict[str, Any] = {"window_size": (-1, 0)}
    elif "is_causal" in params:
        causal = {"is_causal": True}
    else:  # pragma: no cover - unknown future signature
        raise RuntimeError(f"unknown varlen_attn signature: {list(params)}")
    return varlen_attn, causal, "enable_gqa" in params


def _varlen_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int,
                   scale: float) -> torch.Tensor:
    fn, causal, gqa = _varlen_call()
    qt, kt, vt = _to_thd(q), _to_thd(k), _to_thd(v)
    groups = qt.shape[1] // kt.shape[1]
    extra: dict[str, Any] = dict(causal)
    if groups > 1:
        if gqa:
            extra["enable_gqa"] = True
        else:
            kt, vt = _repeat_kv(kt, groups), _repeat_kv(vt, groups)
    out = fn(qt.contiguous(), kt.contiguous(), vt.contiguous(), cu, cu, max_len, max_len, scale=scale, **extra)
    return out  # (T, H, D)


def _flash_attn_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int,
                       scale: float) -> torch.Tensor:
    from flash_attn import flash_attn_varlen_func

    return flash_attn_varlen_func(
        _to_thd(q).contiguous(), _to_thd(k).contiguous(), _to_thd(v).contiguous(),
        cu, cu, max_len, max_len, softmax_scale=scale, causal=True,
    )


def _doc_ids(cu: torch.Tensor, total: int) -> torch.Tensor:
    """Sequence index of every packed token, from ``cu_seqlens``."""
    pos = torch.arange(total, device=cu.device)
    return torch.searchsorted(cu[1:].to(torch.int64), pos, right=True)


class _OneSlotCache:
    """Remembers the mask built for the last ``cu_seqlens`` tensor (one per forward, shared by layers)."""

    def __init__(self) -> None:
        self.key: torch.Tensor | None = None
        self.value: Any = None

    def get(self, cu: torch.Tensor, build: Any) -> Any:
        if self.key is not cu:
            self.key, self.value = cu, build()
        return self.value


_DENSE_CACHE = _OneSlotCache()
_FLEX_CACHE = _OneSlotCache()


def _dense_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int,
                  scale: float) -> torch.Tensor:
    total = q.shape[2]

    def build() -> torch.Tensor:
        doc = _doc_ids(cu, total)
        idx = torch.arange(total, device=q.device)
        return ((doc[:, None] == doc[None, :]) & (idx[:, None] >= idx[None, :]))[None, None]

    mask = _DENSE_CACHE.get(cu, build)
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1]
    )  # (1, H, T, D)
    return _to_thd(out)


@functools.cache
def _compiled_flex() -> Any:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=True)


def _flex_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int,
                 scale: float) -> torch.Tensor:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    total = q.shape[2]

    def build() -> Any:
        doc = _doc_ids(cu, total)

        def doc_causal(b: Any, h: Any, qi: Any, ki: Any) -> Any:
            return (doc[qi] == doc[ki]) & (qi >= ki)

        return create_block_mask(doc_causal, None, None, total, total, device=q.device)

    block_mask = _FLEX_CACHE.get(cu, build)
    fn = _compiled_flex() if q.is_cuda else flex_attention
    out = fn(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])
    return _to_thd(out)


def _segments_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int,
                     scale: float) -> torch.Tensor:
    """Causal SDPA on each sequence's slice of the packed row: exact, ``O(Σ n_i²)``, any device.

    On CPU a loop of SDPA calls costs nothing next to the matmuls, and it keeps the rest of the model
    (projections, MLP, norms) on one padding-free ``[T, d]`` tensor.
    """
    bounds = cu.tolist()
    gqa = q.shape[1] != k.shape[1]
    out = torch.empty_like(q)  # (1, H, T, D)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for a, b in itertools.pairwise(bounds):
        out[:, :, a:b] = sdpa(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], is_causal=True, scale=scale,
                              enable_gqa=gqa)
    return _to_thd(out)


_KERNEL_FNS = {"varlen": _varlen_kernel, "flash_attn": _flash_attn_kernel, "flex": _flex_kernel,
               "dense": _dense_kernel, "segments": _segments_kernel}


def _make_attention(kernel: str) -> Any:
    impl = _KERNEL_FNS[kernel]

    def packed_attention(
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None = None,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        """``transformers`` attention function: (1, H, T, D) in, (1, T, H, D) out."""
        cu = kwargs.get("cu_seq_lens_q")
        if cu is None or query.shape[0] != 1:
            raise RuntimeError(
                f"attention {_PREFIX + kernel!r} needs a single packed row and `cu_seq_lens_q` "
                "(it is only meant to run inside the packed scoring path)"
            )
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        out = impl(query, key, value, cu, int(kwargs["max_length_q"]), float(scale))
        return out.unsqueeze(0), None

    return packed_attention


@functools.cache
def _register(kernel: str) -> str:
    from transformers import AttentionInterface

    name = _PREFIX + kernel
    AttentionInterface.register(name, _make_attention(kernel))
    return name


# ---------------------------------------------------------------------------- selection
def kernel_available(kernel: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``kernel`` can run for this device and dtype (without trying it)."""
    cuda = device.type == "cuda"
    half = dtype in (torch.bfloat16, torch.float16)
    if kernel == "varlen":
        return cuda and half and importlib.util.find_spec("torch.nn.attention.varlen") is not None
    if kernel == "flash_attn":
        return cuda and half and importlib.util.find_spec("flash_attn") is not None
    if kernel == "flex":
        return importlib.util.find_spec("torch.nn.attention.flex_attention") is not None
    if kernel in ("dense", "segments"):
        return True
    raise ValueError(f"`packed_kernel` must be one of {KERNELS} or 'auto', got {kernel!r}")


def pick_kernel(requested: str, device: torch.device, dtype: torch.dtype) -> str | None:
    """Resolve ``"auto"`` to the best available kernel (``None`` = use the padded path).

    ``"auto"``: on CUDA flash_attn, else torch varlen, else flex; on CPU ``"segments"`` (exact, and
    faster than padded buckets: no padded tokens go through the matmuls). It never picks ``"dense"``
    (``O(T²)`` memory) or CPU flex (slow in eager mode). A kernel asked for by name that cannot run
    raises ``ValueError``.
    """
    if requested == "auto":
        if device.type == "cpu":
            return "segments"
        if device.type != "cuda":
            return None
        for k in ("flash_attn", "varlen", "flex"):
            if kernel_available(k, device, dtype):
                return k
        return None
    if not kernel_available(requested, device, dtype):
        raise ValueError(
            f"`packed_kernel`={requested!r} cannot run on {device.type} with {dtype} "
            "(varlen/flash_attn need CUDA and bf16/fp16; flash_attn needs the package)"
        )
    return requested


@contextlib.contextmanager
def packed_attention(model: torch.nn.Module, kernel: str) -> Iterator[None]:
    """Switch ``model`` to the packed attention function of ``kernel`` for the ``with`` block."""
    name = _register(kernel)
    hf: Any = model  # a transformers PreTrainedModel (config, set_attn_implementation)
    prev = hf.config._attn_implementation
    hf.set_attn_implementation(name)
    if hf.config._attn_implementation != name:
        raise RuntimeError(f"{type(model).__name__} does not accept a custom attention function")
    try:
        yield
    finally:
        hf.set_attn_implementation(prev)


def packed_row(seqs_ids: Sequence[Sequence[int]], device: torch.device) -> dict[str, Any]:
    """Decoder keyword arguments for one packed row: ids, restarting positions, cu_seqlens."""
    lengths = [len(s) for s in seqs_ids]
    flat = [t for s in seqs_ids for t in s]
    pos = [p for n in lengths for p in range(n)]
    cu = cu_seqlens(lengths, device)
    m = max(lengths)
    return {
        "input_ids": torch.tensor([flat], device=device),
        "position_ids": torch.tensor([pos], device=device),
        "cu_seq_lens_q": cu,
        "cu_seq_lens_k": cu,
        "max_length_q": m,
        "max_length_k": m,
    }
