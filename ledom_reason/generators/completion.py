"""Generators for search: vLLM's offline engine or any OpenAI-compatible HTTP server.

Both classes offer the two async callables the searches take:

* :meth:`expand` — ``async (question, partial_chain, n) -> n next steps`` (a
  :data:`~ledom_reason.search._common.StepGenerator` for beam search / DVTS): the prompt is the
  question in :attr:`prompt_template` followed by the partial chain; generation stops at the step
  delimiter (default a blank line), so each sample is one step.
* :meth:`sample` — ``async (question, n) -> n full solutions`` for Best-of-N.

Results are :class:`~ledom_reason.search._common.GeneratedSteps` (``list[str]`` that carry the
number of generated tokens when the backend reports it, for compute accounting).

``OpenAIGenerator`` talks to ``/v1/completions`` (raw continuation, which step expansion needs)
of a ``vllm serve`` process or any compatible server, with ``httpx``; ``VLLMGenerator`` drives a
``vllm.LLM`` in a worker thread.

Example:
    >>> from ledom_reason.generators import OpenAIGenerator
    >>> gen = OpenAIGenerator("http://127.0.0.1:8000/v1", model="qwen2.5-math-1.5b")
    >>> gen.prompt("What is 2+3?", "2+3 = 5.")
    'Question: What is 2+3?\\nAnswer: Let us think step by step.\\n\\n2+3 = 5.\\n\\n'
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from ledom_reason._optional import require
from ledom_reason.scorers.vllm import require_vllm
from ledom_reason.search import GeneratedSteps

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "Question: {question}\nAnswer: Let us think step by step.\n\n"


class _PromptMixin:
    prompt_template: str
    step_delimiter: str

    def prompt(self, question: str, partial_chain: str = "") -> str:
        """The raw prompt: template + the steps so far, each followed by the delimiter."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("`question` must be a non-empty string")
        text = self.prompt_template.format(question=question)
        if partial_chain:
            text += partial_chain.rstrip("\n") + self.step_delimiter
        return text

    @staticmethod
    def _check_n(n: int) -> None:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"`n` must be a positive int, got {n!r}")


class OpenAIGenerator(_PromptMixin):
    """Async generator over an OpenAI-compatible ``/v1/completions`` endpoint (e.g. ``vllm serve``).

    Args:
        base_url: Server URL up to and including ``/v1``.
        model: Model name the server knows.
        api_key: Optional bearer token.
        temperature / top_p / max_tokens: Sampling settings (``max_tokens`` per call).
        step_delimiter: Stop string of one reasoning step (default: blank line).
        prompt_template: Format string with ``{question}``.
        timeout: Seconds per HTTP request.
        client: An ``httpx.AsyncClient`` to reuse (otherwise one is created and owned).
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, temperature: float = 0.8,
                 top_p: float = 1.0, max_tokens: int = 512, step_delimiter: str = "\n\n",
                 prompt_template: str = DEFAULT_TEMPLATE, timeout: float = 120.0, client: Any | None = None) -> None:
        httpx = require("httpx", "remote")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"`base_url` must be an http(s) URL, got {base_url!r}")
        if max_tokens < 1:
            raise ValueError(f"`max_tokens` must be positive, got {max_tokens}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature, self.top_p, self.max_tokens = temperature, top_p, max_tokens
        self.step_delimiter = step_delimiter
        self.prompt_template = prompt_template
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout, headers=headers)

    async def _complete(self, prompt: str, n: int, stop: Sequence[str] | None) -> GeneratedSteps:
        self._check_n(n)
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "n": n, "max_tokens": self.max_tokens,
                                "temperature": self.temperature, "top_p": self.top_p}
        if stop:
            body["stop"] = list(stop)
        r = await self._client.post(f"{self.base_url}/completions", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"{self.base_url}/completions answered {r.status_code}: {r.text[:300]}")
        data = r.json()
        choices = sorted(data.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != n:
            raise RuntimeError(f"asked for {n} completions, got {len(choices)}")
        usage = data.get("usage") or {}
        return GeneratedSteps([c["text"].strip() for c in choices], usage.get("completion_tokens"))

    async def expand(self, question: str, partial_chain: str, n: int) -> GeneratedSteps:
        """``n`` candidate next steps after ``partial_chain`` (``""`` at the root)."""
        return await self._complete(self.prompt(question, partial_chain), n, [self.step_delimiter])

    async def sample(self, question: str, n: int) -> GeneratedSteps:
        """``n`` full solutions."""
        return await self._complete(self.prompt(question), n, None)

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_client:
            await self._client.aclose()


class VLLMGenerator(_PromptMixin):
    """Async generator over vLLM's offline engine (``vllm.LLM``), run in a worker thread.

    Args:
        llm: A ``vllm.LLM`` (or pass a model folder to :meth:`from_pretrained`).
        temperature / top_p / max_tokens / step_delimiter / prompt_template: as in
            :class:`OpenAIGenerator`.
        seed: Optional sampling seed (reproducible samples).
    """

    def __init__(self, llm: Any, *, temperature: float = 0.8, top_p: float = 1.0, max_tokens: int = 512,
                 step_delimiter: str = "\n\n", prompt_template: str = DEFAULT_TEMPLATE,
                 seed: int | None = None) -> None:
        self._vllm = require_vllm()
        self.llm = llm
        self.temperature, self.top_p, self.max_tokens, self.seed = temperature, top_p, max_tokens, seed
        self.step_delimiter = step_delimiter
        self.prompt_template = prompt_template
        self._lock = asyncio.Lock()

    @classmethod
    def from_pretrained(cls, model: str, *, llm_kwargs: dict[str, Any] | None = None,
                        **kwargs: Any) -> VLLMGenerator:
        """Start ``vllm.LLM(model, **llm_kwargs)`` and wrap it."""
        vllm = require_vllm()
        return cls(vllm.LLM(model=str(model), **(llm_kwargs or {})), **kwargs)

    def _generate(self, prompt: str, n: int, stop: Sequence[str] | None) -> GeneratedSteps:
        self._check_n(n)
        params = self._vllm.SamplingParams(n=n, temperature=self.temperature, top_p=self.top_p,
                                           max_tokens=self.max_tokens, stop=list(stop) if stop else None,
                                           seed=self.seed)
        out = self.llm.generate([prompt], params, use_tqdm=False)[0]
        return GeneratedSteps([c.text.strip() for c in out.outputs], sum(len(c.token_ids) for c in out.outputs))

    async def expand(self, question: str, partial_chain: str, n: int) -> GeneratedSteps:
        """``n`` candidate next steps after ``partial_chain`` (``""`` at the root)."""
        prompt = self.prompt(question, partial_chain)
        async with self._lock:  # one engine call at a time from this object
            return await asyncio.to_thread(self._generate, prompt, n, [self.step_delimiter])

    async def sample(self, question: str, n: int) -> GeneratedSteps:
        """``n`` full solutions."""
        prompt = self.prompt(question)
        async with self._lock:
            return await asyncio.to_thread(self._generate, prompt, n, None)
