"""Tiny, locally built tokenizers and models for tests, examples and benchmarks (no network).

Example:
    >>> from ledom_reason.testing import train_tiny_tokenizer, make_tiny_model  # doctest: +SKIP
    >>> tok = train_tiny_tokenizer(["some text", "more text"], vocab_size=300)  # doctest: +SKIP
    >>> path = make_tiny_model("/tmp/tiny", tok)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ledom_reason.training.tokenizer import BOS, EOS, PAD, train_bpe_tokenizer  # noqa: F401 (re-exported)


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> Any:
    """Train a byte-level BPE tokenizer (no unknown tokens) and wrap it for ``transformers``.

    The tokenizer has BOS/EOS/PAD special tokens and does not add them by itself, so
    ``add_special_tokens`` is a no-op and the reversal convention adds BOS explicitly. Same trainer as
    ``ledom-reason train tokenizer``, with every pair allowed to merge (tiny corpora).
    """
    return train_bpe_tokenizer(texts, vocab_size, min_frequency=0)


def corpus_texts(max_chars: int = 400_000, data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Lines of the Shakespeare corpus plus GSM8K *train* problems (text with digits and math)."""
    import json

    from ledom_reason import paths

    d = paths.data_dir(data_dir)
    text = (d / "corpus" / "tinyshakespeare.txt").read_text(encoding="utf-8")[: max_chars // 2]
    out = [ln for ln in text.splitlines() if ln.strip()]
    n = 0
    with open(d / "gsm8k" / "train.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            out += [row["question"], row["answer"]]
            n += len(row["question"]) + len(row["answer"])
            if n > max_chars // 2:
                break
    return out


def make_tiny_model(
    out_dir: str | os.PathLike[str],
    tokenizer: Any,
    *,
    arch: str = "qwen2",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int = 1,
    max_position_embeddings: int = 512,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Create a random-init Qwen2 or Llama causal LM sized for CPU tests and save it with the tokenizer.

    Head dim = hidden_size / num_heads (32 by default, the minimum vLLM's CPU kernel accepts).
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    cls = {"qwen2": Qwen2Config, "llama": LlamaConfig}[arch]
    cfg = cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **overrides,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    # Random init gives near-uniform predictions; a larger init spreads log-probs so that
    # comparisons between paths are not trivially equal.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


class GatedScorer:
    """A real scorer whose model pass (``score_encoded``) waits for ``gate`` (up to ``timeout_s``).

    Lets server tests hold requests in flight, e.g. to fill the batcher's queue and see 503 + Retry-After.
    Tokenization (``encode``) is not gated, so bad requests still fail at once.
    """

    def __init__(self, inner: Any, gate: Any, timeout_s: float = 20.0) -> None:
        self.inner, self.gate, self.timeout_s, self.name = inner, gate, timeout_s, "gated"

    def encode(self, pairs: Any) -> Any:
        return self.inner.encode(pairs)

    def score_encoded(self, encoded: Any) -> Any:
        self.gate.wait(self.timeout_s)
        return self.inner.score_encoded(encoded)

    def score(self, pairs: Any) -> Any:
        return self.score_encoded(self.encode(pairs))

    async def ascore(self, pairs: Any) -> Any:
        return self.score(pairs)
