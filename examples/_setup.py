"""Shared set-up for the integration examples: scorer and generator from the command line.

Scorer (pick one):
    --model DIR|NAME   a reverse-model folder or a bundled name. Default: the bundled ``ledom-tiny`` when
                       this build has it, else a tiny RANDOM-WEIGHT model built locally in a temp folder
                       (its scores carry no signal; it only exercises the pipeline).
    --scorer-url URL   a running ``ledom-reason serve`` (RemoteScorer).

Generator: LangChain/DSPy fakes by default (offline), or any OpenAI-compatible endpoint with
``--openai-base-url URL --openai-model NAME`` (``OPENAI_API_KEY`` is sent when set).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_TOKENIZER_TEXT = [
    "Tom has 3 apples and buys 4 more. How many apples does he have? 3 + 4 = 7. #### 7",
    "A box holds 6 eggs. How many eggs are in 2 boxes? 2 * 6 = 12 eggs. #### 12",
    "Natalia sold 48 clips in April and half as many in May. 48 / 2 = 24. 48 + 24 = 72. #### 72",
    "First, find the cost of one item. Then multiply by the number of items. The answer is 35.",
    "Step 1: read the question. Step 2: compute. So the total is 10 - 4 = 6.",
]


def add_args(p: argparse.ArgumentParser) -> None:
    """Add the scorer and generator options to an example's parser."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="reverse model folder or bundled name (default: ledom-tiny "
                   "if bundled, else a tiny random-weight model built locally)")
    g.add_argument("--scorer-url", default=None, help="URL of a running `ledom-reason serve`")
    p.add_argument("--openai-base-url", default=None, help="OpenAI-compatible endpoint for the generator")
    p.add_argument("--openai-model", default=None, help="model name at that endpoint")


def _tiny_model_dir() -> Path:
    from ledom_reason.testing import make_tiny_model, train_tiny_tokenizer

    print("NOTE: no --model given and no bundled `ledom-tiny`: building a tiny RANDOM-WEIGHT reverse model; "
          "its scores carry no signal (pass --model DIR for a real LEDOM checkpoint).", file=sys.stderr)
    tok = train_tiny_tokenizer(_TOKENIZER_TEXT * 20, vocab_size=320)
    return make_tiny_model(tempfile.mkdtemp(prefix="ledom-example-"), tok)


def make_scorer(args: argparse.Namespace) -> Any:
    """The scorer chosen on the command line (see the module docstring)."""
    if args.scorer_url:
        from ledom_reason import RemoteScorer

        return RemoteScorer([args.scorer_url])
    from ledom_reason import ReverseScorer
    from ledom_reason.models import BUNDLED

    model = args.model or ("ledom-tiny" if "ledom-tiny" in BUNDLED else _tiny_model_dir())
    return ReverseScorer.from_pretrained(model, device="cpu")


def openai_chat_model(args: argparse.Namespace, temperature: float = 1.0) -> Any | None:
    """A LangChain chat model for ``--openai-base-url``/``--openai-model``, or ``None`` when not given.

    Uses ``langchain_openai.ChatOpenAI`` when installed, else :class:`OpenAICompatChat` below.
    """
    if not args.openai_base_url:
        return None
    if not args.openai_model:
        raise SystemExit("--openai-model is required with --openai-base-url")
    key = os.environ.get("OPENAI_API_KEY", "not-needed")
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        return _chat_model_class()(base_url=args.openai_base_url, model=args.openai_model, api_key=key,
                                temperature=temperature)
    return ChatOpenAI(base_url=args.openai_base_url, model=args.openai_model, api_key=key, temperature=temperature)


def _chat_model_class() -> type:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class OpenAICompatChat(BaseChatModel):
        """A tiny chat model for any OpenAI-compatible ``/chat/completions`` endpoint (httpx, no SDK)."""

        base_url: str
        model: str
        api_key: str = "not-needed"
        temperature: float = 1.0
        seed: int | None = None
        n: int = 1
        max_tokens: int = 256
        timeout: float = 60.0

        @property
        def _llm_type(self) -> str:
            return "openai-compatible-httpx"

        def _payload(self, messages: list[BaseMessage], stop: list[str] | None) -> dict[str, Any]:
            roles = {"human": "user", "ai": "assistant", "system": "system"}
            body: dict[str, Any] = {
                "model": self.model, "n": self.n, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "messages": [{"role": roles.get(m.type, "user"), "content": m.text} for m in messages],
            }
            if self.seed is not None:
                body["seed"] = self.seed
            if stop:
                body["stop"] = stop
            return body

        def _result(self, data: dict[str, Any]) -> ChatResult:
            gens = [ChatGeneration(message=AIMessage(c["message"].get("content") or "")) for c in data["choices"]]
            return ChatResult(generations=gens)

        def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                      run_manager: Any = None, **kwargs: Any) -> ChatResult:
            import httpx

            r = httpx.post(self.base_url.rstrip("/") + "/chat/completions", json=self._payload(messages, stop),
                           headers={"Authorization": f"Bearer {self.api_key}"}, timeout=self.timeout)
            r.raise_for_status()
            return self._result(r.json())

        async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                             run_manager: Any = None, **kwargs: Any) -> ChatResult:
            import httpx

            async with httpx.AsyncClient(timeout=self.timeout) as c:
                r = await c.post(self.base_url.rstrip("/") + "/chat/completions",
                                 json=self._payload(messages, stop),
                                 headers={"Authorization": f"Bearer {self.api_key}"})
            r.raise_for_status()
            return self._result(r.json())

    return OpenAICompatChat


def __getattr__(name: str) -> Any:
    if name == "OpenAICompatChat":  # built lazily so that importing this file needs no langchain
        return _chat_model_class()
    raise AttributeError(name)
