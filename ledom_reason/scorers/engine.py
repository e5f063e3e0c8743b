"""Span log-probabilities of a causal LM: the reference and the fast path.

Both compute, for each sequence, ``sum_{t >= score_start} log p(ids[t] | ids[:t])`` and the count.
The reference runs one sequence at a time with the model's own forward and a full fp32
log-softmax. The fast path sorts by length, batches under a token budget — right-padded length
buckets, or packed rows without padding on a varlen attention kernel (:mod:`._packed`) — runs only
the decoder (no KV cache), gathers the hidden states of the scored rows and applies the LM head to
those rows in chunks, so no ``[tokens × vocab]`` tensor is ever built. Tests hold the paths to
1e-4 nats per sequence (fp32).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from ledom_reason.scorers._packed import packed_attention, packed_row, pick_kernel, plan_packs
from ledom_reason.scorers.sequence import ScoringSeq

ProgressFn = Callable[[int, int], None]

__all__ = ["ProgressFn", "ScoringSeq", "fast_logprobs", "output_head", "pick_kernel", "plan_batches", "reference_logprobs"]


def _check_finite(values: torch.Tensor, what: str) -> None:
    bad = (~torch.isfinite(values)).nonzero().flatten().tolist()
    if bad:
        raise FloatingPointError(
            f"{what}: non-finite log-probabilities for sequence(s) {bad[:8]} "
            "(NaN/inf from the model — check its weights and dtype)"
        )


@torch.inference_mode()
def reference_logprobs(model: torch.nn.Module, seqs: Sequence[ScoringSeq], device: torch.device) -> list[float]:
    """Plain unbatched reference: model forward, full fp32 log-softmax, one sequence at a time."""
    out: list[float] = []
    for s in seqs:
        ids = torch.tensor([s.input_ids], device=device)
        logits = model(input_ids=ids).logits[0].float()  # (L, V)
        logp = torch.log_softmax(logits, dim=-1)
        pos = torch.arange(s.score_start - 1, len(s.input_ids) - 1, device=device)
        tgt = ids[0, s.score_start :]
        total = logp[pos, tgt].double().sum()
        _check_finite(total.view(1), "reference")
        out.append(float(total))
    return out


def plan_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Group sequence indices into padded batches, longest first, under a token budget.

    Sorting by length (ties by index, so the plan is deterministic) keeps padding small; a batch's
    cost is ``len(batch) × longest``. A sequence longer than the budget runs alone.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        n = lengths[i]
        new_max = max(cur_max, n)
        if cur and (len(cur) + 1) * new_max > batch_tokens:
            batches.append(cur)
            cur, new_max = [], n
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


def output_head(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The LM head as a function of final hidden states, including any logit post-processing."""
    hf: Any = model  # a transformers PreTrainedModel
    head = hf.get_output_embeddings()
    if head is None:
        raise TypeError(f"{type(model).__name__} has no output embeddings (not a causal LM?)")
    cfg = model.config
    softcap = getattr(cfg, "final_logit_softcapping", None)
    scale = getattr(model, "logit_scale", None)
    if isinstance(scale, torch.Tensor | torch.nn.Parameter):
        raise NotImplementedError("models with a learned logit scale: use mode='reference'")

    def apply(h: torch.Tensor) -> torch.Tensor:
        logits = head(h).float()
        if isinstance(scale, int | float):
            logits = logits * scale
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    return apply


def _chunked_target_logprobs(
    head: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor, targets: torch.Tensor, rows: int
) -> torch.Tensor:
    """log p(target) for each row of ``h`` (T, d), computing at most ``rows`` × vocab logits at once."""
    out = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
    for a in range(0, h.shape[0], rows):
        logits = head(h[a : a + rows])  # (rows, V) fp32
        t = targets[a : a + rows]
        out[a : a + rows] = logits.gather(1, t[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)
    return out


_COMPILED: weakref.WeakKeyDictionary[torch.nn.Module, Callable[..., Any]] = weakref.WeakKeyDictionary()


def _decoder(model: torch.nn.Module, compile_model: bool) -> Callable[..., Any]:
    """The model body without the LM head (optionally ``torch.compile``d once, cached per model)."""
    hf: Any = model  # a transformers PreTrainedModel
    decoder: torch.nn.Module = hf.get_decoder() if hasattr(hf, "get_decoder") else hf.base_model
    if not compile_model:
        return decoder
    if decoder not in _COMPILED:
        _COMPILED[decoder] = torch.compile(decoder, dynamic=True)
    return _COMPILED[decoder]


def _score_rows(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    ids: torch.Tensor,
    rows: list[int],
    seg: list[int],
    n_seqs: int,
    chunk_rows: int,
) -> torch.Tensor:
    """Sum ``log p(ids[r + 1] | ·)`` over ``rows`` of the flat ``hidden`` (T, d) into ``n_seqs`` sums."""
    device = hidden.device
    ri = torch.tensor(rows, device=device)
    h = hidden.index_select(0, ri)  # (T_scored, d): only the rows that predict scored tokens
    lp = _chunked_target_logprobs(head, h, ids.index_select(0, ri + 1), chunk_rows)
    sums = torch.zeros(n_seqs, dtype=torch.float64, device=device)
    sums.index_add_(0, torch.tensor(seg, device=device), lp.double())
    return sums


def _padded_batches(
    seqs: Sequence[ScoringSeq], batch_tokens: int, pad_id: int, device: torch.device
) -> Iterator[tuple[list[int], dict[str, Any], list[int], list[int]]]:
    """Right-padded, length-sorted batches: (indices, decoder kwargs, flat scored rows, segment ids)."""
    for batch in plan_batches([len(s.input_ids) for s in seqs], batch_tokens):
        width = max(len(seqs[i].input_ids) for i in batch)
        x = torch.full((len(batch), width), pad_id, dtype=torch.long)
        rows: list[int] = []
        seg: list[int] = []
        for r, i in enumerate(batch):
            s = seqs[i]
            x[r, : len(s.input_ids)] = torch.tensor(s.input_ids)
            base = r * width
            rows += range(base + s.score_start - 1, base + len(s.input_ids) - 1)
            seg += [r] * (len(s.input_ids) - s.score_start)
        yield batch, {"input_ids": x.to(device)}, rows, seg


def _packed_batches(
    seqs: Sequence[ScoringSeq], batch_tokens: int, device: torch.device
) -> Iterator[tuple[list[int], dict[str, Any], list[int], list[int]]]:
    """Packed rows without padding (see :mod:`._packed`), same tuple as :func:`_padded_batches`."""
    for pack in plan_packs([len(s.input_ids) for s in seqs], batch_tokens):
        kwargs = packed_row([seqs[i].input_ids for i in pack], device)
        rows: list[int] = []
        seg: list[int] = []
        off = 0
        for r, i in enumerate(pack):
            s = seqs[i]
            rows += range(off + s.score_start - 1, off + len(s.input_ids) - 1)
            seg += [r] * (len(s.input_ids) - s.score_start)
            off += len(s.input_ids)
        yield pack, kwargs, rows, seg


@torch.inference_mode()
def fast_logprobs(
    model: torch.nn.Module,
    seqs: Sequence[ScoringSeq],
    device: torch.device,
    *,
    batch_tokens: int,
    head_chunk_bytes: int,
    pad_id: int = 0,
    progress: ProgressFn | None = None,
    packed_kernel: str | None = None,
    compile_model: bool = False,
) -> list[float]:
    """Fast path (see module docstring): padded buckets, or packed rows when ``packed_kernel`` is set.

    Padded: with right padding and a causal mask, real tokens never attend to padding, so no
    attention mask is needed and plain causal attention is exact; positions start at 0 in every row.
    Packed: sequences are concatenated without padding, positions restart per sequence and a
    varlen kernel (``packed_kernel``, one of :data:`._packed.KERNELS`) keeps attention inside each.
    """
    head = output_head(model)
    decoder = _decoder(model, compile_model)
    hf: Any = model  # a transformers PreTrainedModel
    vocab = int(hf.get_output_embeddings().weight.shape[0])
    chunk_rows = max(1, head_chunk_bytes // (vocab * 4))
    results = torch.zeros(len(seqs), dtype=torch.float64)
    if packed_kernel is None:
        batches = _padded_batches(seqs, batch_tokens, pad_id, device)
        ctx: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    else:
        batches = _packed_batches(seqs, batch_tokens, device)
        ctx = packed_attention(model, packed_kernel)
    done = 0
    with ctx:
        for batch, kwargs, rows, seg in batches:
            hidden = decoder(**kwargs, use_cache=False).last_hidden_state  # (B, W, d) or (1, T, d)
            flat_ids = kwargs["input_ids"].reshape(-1)
            sums = _score_rows(head, hidden.reshape(-1, hidden.shape[-1]), flat_ids, rows, seg, len(batch),
                               chunk_rows)
            del hidden
            _check_finite(sums, "fast path")
            results[torch.tensor(batch)] = sums.cpu()
            done += len(batch)
            if progress is not None:
                progress(done, len(seqs))
    return results.tolist()
