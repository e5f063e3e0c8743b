"""Sample N candidate solutions per problem with a local transformers model (CPU or GPU).

Output rows follow the candidates format (:mod:`ledom_reason.eval.candidates`), with a ``stats`` field: the
sampled candidates' ``generated_tokens`` and ``generation_time_s`` (the time of the batched ``generate`` call,
shared evenly among the problems of the batch), which ``ledom-reason eval`` adds up. The file is
append-only and resumable: problems already in it are skipped, and every line is complete (a torn
last line from an interruption is dropped on restart).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledom_reason.io import append_jsonl, read_resumable

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = (
    "Solve the problem step by step. End with a line of the form '#### <answer>'.\n\n"
    "Problem: {question}\n\nSolution:"
)
_FINAL_LINE = re.compile(r"####[^\n]*")
EMPTY_OUTPUT = "(no output)"


@dataclass
class GenerationConfig:
    """Sampling settings.

    > Sampling
        n: Samples per problem.
        temperature: Sampling temperature (> 0).
        top_p: Nucleus sampling.
        max_new_tokens: Generation budget per sample.
        greedy: Also generate one greedy (temperature 0) solution per problem (``greedy`` field).
        seed: Torch seed (set per batch from the first problem's index, so resumed runs match).

    > Prompt
        prompt: Format string with ``{question}``.
        chat_template: ``True``/``False``, or ``None`` = use the tokenizer's chat template if it has one.
        cut_after_answer: Drop text after the first ``#### …`` line.

    > Batching
        batch_size: Sequences per ``generate`` call (problems per call = ``max(1, batch_size // n)``).
    """

    n: int = 8
    temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 512
    greedy: bool = False
    seed: int = 0
    prompt: str = DEFAULT_PROMPT
    chat_template: bool | None = None
    cut_after_answer: bool = True
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("`n`, `max_new_tokens` and `batch_size` must be >= 1")
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be > 0 (use `greedy` for greedy decoding), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"`top_p` must be in (0, 1], got {self.top_p}")
        if "{question}" not in self.prompt:
            raise ValueError("`prompt` must contain '{question}'")


def uses_chat_template(tokenizer: Any, cfg: GenerationConfig) -> bool:
    """Whether prompts go through the tokenizer's chat template."""
    return cfg.chat_template if cfg.chat_template is not None else bool(getattr(tokenizer, "chat_template", None))


def build_prompt(tokenizer: Any, question: str, cfg: GenerationConfig) -> str:
    """The prompt text for one question (chat template applied when asked for / available)."""
    text = cfg.prompt.format(question=question)
    if uses_chat_template(tokenizer, cfg):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return text


def clean_output(text: str, cfg: GenerationConfig) -> str:
    """Strip, cut after the final-answer line, and replace an empty output by a placeholder."""
    text = text.strip()
    if cfg.cut_after_answer:
        m = _FINAL_LINE.search(text)
        if m:
            text = text[: m.end()].strip()
    return text or EMPTY_OUTPUT


def prompt_ids(tokenizer: Any, prompt: str, cfg: GenerationConfig) -> list[int]:
    """Token ids of one prompt.

    Without a chat template this is ``[BOS] + ids(prompt)`` (BOS when the tokenizer has one), the
    same layout the forward scorer and the forward-twin trainer use
    (:func:`ledom_reason.scorers.forward.forward_prompt_ids`), so ``--prompt '{question}'`` samples
    a forward twin exactly as it was trained. A chat-template prompt already holds its special tokens.
    """
    from ledom_reason.reverse import encode_plain
    from ledom_reason.scorers.forward import forward_prompt_ids

    if uses_chat_template(tokenizer, cfg):
        return encode_plain(tokenizer, prompt)
    return forward_prompt_ids(tokenizer, prompt, chat_template=False)


def _new_tokens(row: list[int], stop_ids: set[int]) -> int:
    """Tokens generated in one output row: up to and including the first stop (EOS/pad) token."""
    for i, t in enumerate(row):
        if t in stop_ids:
            return i + 1
    return len(row)


def _generate(model: Any, tokenizer: Any, prompts: list[str], cfg: GenerationConfig, *, sample: bool,
              num: int) -> tuple[list[list[str]], list[int]]:
    """Texts per prompt, and the tokens generated per prompt (all its ``num`` samples)."""
    import torch

    rows = [prompt_ids(tokenizer, p, cfg) for p in prompts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    # left padding: every prompt ends at the same position, where generation starts
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=model.device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=model.device)
    kwargs: dict[str, Any] = {"max_new_tokens": cfg.max_new_tokens, "num_return_sequences": num,
                              "pad_token_id": pad, "do_sample": sample}
    if sample:
        kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p)
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
    new = out[:, width:]
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    stop = {i for i in (tokenizer.eos_token_id, pad) if i is not None}
    counts = [_new_tokens(r, stop) for r in new.tolist()]
    return ([[clean_output(t, cfg) for t in texts[i * num : (i + 1) * num]] for i in range(len(prompts))],
            [sum(counts[i * num : (i + 1) * num]) for i in range(len(prompts))])


def generate_candidates(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Any],
    out_path: str | os.PathLike[str],
    config: GenerationConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    model_name: str | None = None,
) -> int:
    """Sample candidates for ``problems`` and append them to ``out_path`` (resumable).

    Args:
        model: A loaded causal LM (``.generate``), e.g. from ``load_causal_lm``.
        tokenizer: Its tokenizer (left padding is set for batched generation).
        problems: :class:`~ledom_reason.eval.datasets.Problem` s.
        out_path: Candidates JSONL; existing problem ids are skipped.
        config: :class:`GenerationConfig`.
        progress: ``callback(problems_done_now)`` after each batch.
        model_name: Recorded in each row's ``meta``.

    Returns:
        Number of problems written by this call.
    """
    import torch

    cfg = config or GenerationConfig()
    done = {str(r.get("id")) for r in read_resumable(out_path)}
    todo = [(i, p) for i, p in enumerate(problems) if p.id not in done]
    if len(todo) < len(problems):
        logger.info("resuming: %d of %d problems already in %s", len(problems) - len(todo), len(problems), out_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    per_call = max(1, cfg.batch_size // cfg.n)
    meta = {"model": model_name, **{k: v for k, v in asdict(cfg).items() if k != "prompt"}}
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(out_path, "a", encoding="utf-8") as f:
        for a in range(0, len(todo), per_call):
            part = todo[a : a + per_call]
            prompts = [build_prompt(tokenizer, p.question, cfg) for _, p in part]
            torch.manual_seed(cfg.seed * 1_000_003 + part[0][0])
            t0 = time.perf_counter()
            samples, tokens = _generate(model, tokenizer, prompts, cfg, sample=True, num=cfg.n)
            seconds = time.perf_counter() - t0
            greedy = _generate(model, tokenizer, prompts, cfg, sample=False, num=1)[0] if cfg.greedy else None
            for j, (_, p) in enumerate(part):
                row: dict[str, Any] = {"id": p.id, "question": p.question, "gold": p.answer,
                                       "candidates": samples[j]}
                if greedy is not None:
                    row["greedy"] = greedy[j][0]
                row["meta"] = meta
                # the sampled candidates' cost (greedy excluded); one batched call shared by `part`
                row["stats"] = {"generated_tokens": tokens[j], "generation_time_s": seconds / len(part)}
                append_jsonl(f, row)
                written += 1
            if progress is not None:
                progress(len(part))
    return written
