"""Forward-model inputs for ``log P_fwd(candidate | question)``.

Input = prompt + ids(candidate), candidate positions scored. The prompt is ``[BOS] + ids(question)``
(question and candidate tokenized separately, no special tokens — the mirror image of the reverse
convention in :mod:`ledom_reason.reverse`), or, with ``chat_template=True``, the forward tokenizer's
chat template for a user turn holding the question plus the generation prompt. The first token is
the forward model's own ``bos`` setting (:class:`~ledom_reason.reverse.BosLayout`, ``ScorerConfig.forward_bos``):
``"auto"`` (the tokenizer's BOS if any), ``"none"``, a token, or ``"tokenizer"`` (the question
tokenized with the tokenizer's own special tokens, BOS kept).
Too long: the prompt loses its *earliest* tokens (the candidate is always scored whole); a candidate
that alone does not fit raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledom_reason.reverse import BosLayout, encode_plain
from ledom_reason.scorers.sequence import ScoringSeq


def forward_prompt_ids(tokenizer: Any, question: str, *, chat_template: bool,
                       bos: str | BosLayout = "auto") -> list[int]:
    """Token ids of the prompt that precedes the candidate (``bos``: see the module docstring)."""
    if chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("`forward_chat_template=True` but the forward tokenizer has no chat template")
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, Mapping) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)
    layout = bos if isinstance(bos, BosLayout) else BosLayout.resolve(tokenizer, bos)
    return layout.prefix + layout.encode(tokenizer, question, drop_bos=False)


def build_forward_seq(
    tokenizer: Any,
    question: str,
    candidate: str,
    *,
    chat_template: bool = False,
    max_length: int | None = None,
    truncate: str = "candidate_left",
    bos: str | BosLayout = "auto",
) -> ScoringSeq:
    """Build the forward-model input with the candidate positions scored."""
    prompt = forward_prompt_ids(tokenizer, question, chat_template=chat_template, bos=bos)
    cand = encode_plain(tokenizer, candidate)
    if not cand:
        raise ValueError("candidate tokenizes to zero tokens")
    if not prompt:
        raise ValueError("question tokenizes to zero tokens and the layout puts no BOS first")
    if max_length is not None and len(prompt) + len(cand) > max_length:
        if len(cand) + 1 > max_length:
            raise ValueError(
                f"candidate alone ({len(cand)} tokens) does not fit the forward model's context ({max_length})"
            )
        if truncate == "error":
            raise ValueError(f"pair is {len(prompt) + len(cand)} tokens, over the forward context of {max_length}")
        prompt = prompt[len(prompt) + len(cand) - max_length :]
    return ScoringSeq(input_ids=prompt + cand, score_start=len(prompt))
