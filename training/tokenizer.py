"""``ledom-reason train tokenizer``: a byte-level BPE tokenizer saved as a ``transformers`` folder.

The tokenizer has ``<|pad|>`` (id 0), ``<|bos|>`` (1) and ``<|eos|>`` (2) and never adds them by
itself, so the reversal convention (:mod:`ledom_reason.reverse`) adds BOS explicitly. Byte-level
means no unknown tokens: any text round-trips.

Example:
    >>> from ledom_reason.training.tokenizer import train_bpe_tokenizer
    >>> tok = train_bpe_tokenizer(["hello world", "hello there"], vocab_size=300)
    >>> tok.bos_token, tok.decode(tok("hello world")["input_ids"])
    ('<|bos|>', 'hello world')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ledom_reason.training.config import TokenizerConfig

logger = logging.getLogger(__name__)

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 8192, *, min_frequency: int = 2) -> Any:
    """Train a byte-level BPE on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    Args:
        texts: Training texts (an iterator is fine: it is streamed).
        vocab_size: Vocabulary size including the three special tokens.
        min_frequency: Minimum pair count for a merge.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)


def _limited(texts: Iterable[str], max_chars: int) -> Iterator[str]:
    n = 0
    for t in texts:
        yield t
        n += len(t)
        if max_chars and n >= max_chars:
            return


def train_tokenizer(cfg: TokenizerConfig) -> Path:
    """Train a tokenizer on ``cfg.inputs`` and save it to ``cfg.out_dir``; returns the folder.

    Pair rows contribute both their question and their solution text. A used ``out_dir`` is refused
    before any work unless ``cfg.overwrite`` (:func:`ledom_reason.training.rundir.plan_run`).
    """
    from ledom_reason.training.data import iter_input_texts
    from ledom_reason.training.rundir import begin_run, plan_run

    plan = plan_run(cfg, what="a tokenizer")
    texts = _limited(iter_input_texts(cfg.inputs, cfg), cfg.max_chars)
    tok = train_bpe_tokenizer(texts, cfg.vocab_size, min_frequency=cfg.min_frequency)
    out = plan.out_dir
    begin_run(plan, cfg)
    tok.save_pretrained(out)
    logger.info("tokenizer with %d tokens saved to %s", len(tok), out)
    return out


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """Load a tokenizer folder (local files only) and check it can be used for training.

    Loaded exactly as the scorer loads it (:func:`ledom_reason.scorers.checkpoint.load_tokenizer`:
    the tokenizer the folder saved, not the one transformers 5 picks from the model type), so a
    model is trained and scored on the same token ids.
    """
    from ledom_reason.scorers.checkpoint import load_tokenizer as load_verified

    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"tokenizer folder not found: {p}")
    tok = load_verified(p)
    if tok.bos_token_id is None:
        logger.warning("tokenizer %s has no BOS token: sequences start without one", p)
    return tok
