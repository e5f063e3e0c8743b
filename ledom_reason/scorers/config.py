"""Configuration of the local (transformers) scorer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ledom_reason.reverse import TRUNCATE_POLICIES, TruncatePolicy, check_bos_setting


@dataclass
class ScorerConfig:
    """Settings of :class:`~ledom_reason.scorers.local.ReverseScorer`.

    > Batching
        batch_tokens: Token budget of one model pass (padded tokens count). Bigger = faster until
            memory runs out. A pair longer than the budget runs alone.
        mode: ``"fast"`` (length-sorted batches, LM head only on scored rows, chunked
            log-softmax) or ``"reference"`` (one pair at a time, full log-softmax; for tests).
        attention: ``"padded"`` (right-padded length buckets, plain causal attention: works
            everywhere), ``"packed"`` (no padding, one row per ``batch_tokens`` with positions
            restarting per sequence, on a varlen kernel; falls back to padded when no kernel
            can run) or ``"auto"`` (packed when a kernel is available — on CPU always — else padded).
        packed_kernel: Kernel of the packed path: ``"auto"`` (GPU: flash_attn, else torch varlen, else
            flex; CPU: segments), ``"varlen"`` (``torch.nn.attention.varlen``), ``"flash_attn"``,
            ``"flex"`` (flex attention with a document mask; also CPU, eager there), ``"segments"``
            (causal SDPA per sequence slice of the packed row; exact, any device) or ``"dense"``
            (SDPA with an explicit block mask, ``O(T²)`` memory: for tests).
        compile: ``torch.compile`` the decoder once per model (dynamic shapes). Pays off only for
            long runs; the first call compiles for tens of seconds.
        head_chunk_bytes: Memory budget of one fp32 ``[rows × vocab]`` logits chunk.

    > Inputs
        max_length: Context limit in tokens; ``None`` = the model's ``max_position_embeddings``.
        truncate: ``"candidate_left"`` drops the candidate's earliest tokens when a pair is too
            long (the question is kept whole); ``"error"`` raises ``ValueError``.
        forward_chat_template: Wrap the question in the forward tokenizer's chat template (user
            turn + generation prompt) when computing ``log P_fwd(candidate | question)``.

    > Layout (what the checkpoint was trained on; docs/checkpoints.md, ``ledom-reason inspect``)
        bos: First token of the reverse input: ``"auto"`` (the tokenizer's BOS if it has one, else
            nothing), ``"none"``, a token string such as ``"<s>"``, or ``"tokenizer"`` (each text
            tokenized with the tokenizer's own special tokens, reversed, trailing BOS dropped).
        forward_bos: The same for the forward model's prompt (``"tokenizer"``: the question as
            the tokenizer encodes it, BOS kept).
    """

    batch_tokens: int = 16384
    mode: Literal["fast", "reference"] = "fast"
    attention: Literal["auto", "padded", "packed"] = "auto"
    packed_kernel: Literal["auto", "varlen", "flash_attn", "flex", "dense", "segments"] = "auto"
    compile: bool = False
    head_chunk_bytes: int = 256 * 2**20
    max_length: int | None = None
    truncate: TruncatePolicy = "candidate_left"
    forward_chat_template: bool = False
    bos: str = "auto"
    forward_bos: str = "auto"
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.batch_tokens, int) or self.batch_tokens < 1:
            raise ValueError(f"`batch_tokens` must be a positive int, got {self.batch_tokens!r}")
        if self.mode not in ("fast", "reference"):
            raise ValueError(f"`mode` must be 'fast' or 'reference', got {self.mode!r}")
        if self.attention not in ("auto", "padded", "packed"):
            raise ValueError(f"`attention` must be 'auto', 'padded' or 'packed', got {self.attention!r}")
        if self.packed_kernel not in ("auto", "varlen", "flash_attn", "flex", "dense", "segments"):
            raise ValueError(
                "`packed_kernel` must be one of 'auto', 'varlen', 'flash_attn', 'flex', 'dense', 'segments', "
                f"got {self.packed_kernel!r}"
            )
        if not isinstance(self.compile, bool):
            raise TypeError(f"`compile` must be a bool, got {type(self.compile).__name__}")
        if self.truncate not in TRUNCATE_POLICIES:
            raise ValueError(f"`truncate` must be one of {TRUNCATE_POLICIES}, got {self.truncate!r}")
        if self.max_length is not None and self.max_length < 3:
            raise ValueError(f"`max_length` must be >= 3, got {self.max_length}")
        if self.head_chunk_bytes < 1:
            raise ValueError("`head_chunk_bytes` must be positive")
        check_bos_setting(self.bos, "bos")
        check_bos_setting(self.forward_bos, "forward_bos")
