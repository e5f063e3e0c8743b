"""Input parsing and N-sample drawing for the LangChain adapters (no scoring, no selection here).

* :func:`parse_verifier_input` / :func:`question_of` — find the question and candidates in runnable inputs.
* :class:`Sampler` — draw N outputs from any runnable: one ``n=N`` call when its language model has an
  ``n`` field, else N concurrent calls with distinct ``seed`` / ``temperature`` copies of the model.
* :func:`step_messages` — the chat prompt asking a model for the next reasoning step.
* :class:`TokenCounter` — a callback handler counting the tokens the models under it generated.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, convert_to_messages
from langchain_core.outputs import LLMResult
from langchain_core.prompt_values import ChatPromptValue, PromptValue, StringPromptValue
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSequence
from langchain_core.runnables.config import get_executor_for_config
from pydantic import BaseModel, ConfigDict

from ledom_reason.integrations._common import gather_all, text_of

_MODEL_CONFIG = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())

QuestionRule = Literal["last_human", "first_human", "all_human"] | Callable[[Sequence[BaseMessage]], str]
"""Which text of a conversation is the question: the last / first human message, all of them joined, or a
callable ``messages -> str``."""
QUESTION_RULES = ("last_human", "first_human", "all_human")


def parse_verifier_input(value: Any) -> tuple[str, list[str]]:
    """``{"question", "candidates"}``, or a list whose first item is the question and the rest candidates.

    List items may be strings or messages; for messages the question is the last human message before the
    first AI message and the candidates are the AI messages.

    Raises:
        ValueError: missing key, empty question or empty candidate list.
        TypeError: wrong types (names the offending field or candidate).
    """
    if isinstance(value, BaseModel) and hasattr(value, "question") and hasattr(value, "candidates"):
        value = {"question": value.question, "candidates": value.candidates}  # a VerifierRequest
    if isinstance(value, Mapping):
        missing = [k for k in ("question", "candidates") if k not in value]
        if missing:
            raise ValueError(f"input is missing key(s) {['`' + k + '`' for k in missing]}; "
                             'expected {"question": str, "candidates": list[str]}')
        question, cands = value["question"], value["candidates"]
        if isinstance(cands, str) or not isinstance(cands, Sequence):
            raise TypeError(f"`candidates` must be a list, got {type(cands).__name__}")
        cands = [text_of(c, f"candidates[{i}]") for i, c in enumerate(cands)]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = list(value)
        if items and all(hasattr(m, "type") and hasattr(m, "content") for m in items):
            ai = [i for i, m in enumerate(items) if m.type == "ai"]
            humans = [m for m in items[: ai[0] if ai else len(items)] if m.type == "human"]
            if not humans:
                raise ValueError("message input needs a human message (the question) before the AI messages")
            question = text_of(humans[-1], "question")
            cands = [text_of(items[i], f"candidates[{k}]") for k, i in enumerate(ai)]
        else:
            if not items:
                raise ValueError("input list is empty: expected [question, candidate, ...]")
            question = text_of(items[0], "question")
            cands = [text_of(c, f"candidates[{i}]") for i, c in enumerate(items[1:])]
    else:
        raise TypeError('input must be {"question": str, "candidates": list[str]} or a list of '
                        f"strings/messages, got {type(value).__name__}")
    if not isinstance(question, str):
        raise TypeError(f"`question` must be str, got {type(question).__name__}")
    if not question.strip():
        raise ValueError("`question` is empty")
    if not cands:
        raise ValueError("`candidates` is empty: nothing to verify")
    for i, c in enumerate(cands):
        if not c.strip():
            raise ValueError(f"`candidates[{i}]` is empty")
    return question, cands


def question_of(value: Any, key: str) -> str:
    """The question text inside a runnable input: a str, ``value[key]``, a prompt value or messages."""
    if isinstance(value, str):
        q = value
    elif isinstance(value, Mapping):
        if key not in value:
            raise ValueError(f"input has no `{key}` key (keys: {sorted(value)}): set `question_key=`")
        q = text_of(value[key], key)
    else:
        msgs = value.to_messages() if hasattr(value, "to_messages") else value
        if isinstance(msgs, str) or not isinstance(msgs, Sequence):
            raise TypeError(f"cannot find the question in a {type(value).__name__} input: pass a str, a dict "
                            f"with `{key}`, a prompt value or a list of messages")
        humans = [m for m in convert_to_messages(msgs) if m.type == "human"]
        if not humans:
            raise ValueError("message input has no human message to use as the question")
        q = text_of(humans[-1], "question")
    if not q.strip():
        raise ValueError("the question is empty")
    return q


def question_of_messages(messages: Sequence[BaseMessage], rule: QuestionRule = "last_human") -> str:
    """The question of a conversation under ``rule`` (:data:`QuestionRule`); system, AI and tool messages
    are context, never the question.

    Raises:
        ValueError: no human message with text, or the rule gave an empty question.
    """
    if callable(rule):
        q = rule(messages)
        if not isinstance(q, str):
            raise TypeError(f"`question` callable must return a str, got {type(q).__name__}")
    else:
        humans = [text_of(m, "human message") for m in messages if getattr(m, "type", None) == "human"]
        humans = [h for h in humans if h.strip()]
        if not humans:
            raise ValueError("the conversation has no human message to use as the question: pass `question=` "
                             "a callable taking the messages")
        q = {"last_human": humans[-1], "first_human": humans[0], "all_human": "\n\n".join(humans)}[rule]
    if not q.strip():
        raise ValueError("the question is empty")
    return q


def split_language_model(r: Runnable) -> tuple[Runnable | None, BaseLanguageModel | None, Runnable | None]:
    """``(before, model, after)`` around the first language model of ``r`` (a model or an LCEL sequence)."""
    if isinstance(r, BaseLanguageModel):
        return None, r, None
    if isinstance(r, RunnableSequence):
        steps = r.steps
        for i, s in enumerate(steps):
            if isinstance(s, BaseLanguageModel):
                return _seq(steps[:i]), s, _seq(steps[i + 1:])
    return None, None, None


def _seq(steps: Sequence[Runnable | None]) -> Runnable | None:
    present = [s for s in steps if s is not None]
    return None if not present else present[0] if len(present) == 1 else RunnableSequence(*present)


def prompt_value(x: Any) -> PromptValue:
    """The prompt value a language model makes of its input (a str, messages or a prompt value)."""
    if isinstance(x, PromptValue):
        return x
    if isinstance(x, str):
        return StringPromptValue(text=x)
    if isinstance(x, Sequence):
        return ChatPromptValue(messages=convert_to_messages(x))
    raise TypeError(f"a language model's input must be a str, a list of messages or a prompt value, "
                    f"got {type(x).__name__}")


def _run_kwargs(config: RunnableConfig) -> dict[str, Any]:
    """What ``generate_prompt`` takes of a runnable config (callbacks, tags, metadata, run name)."""
    keys = ("callbacks", "tags", "metadata", "run_name")
    return {k: config[k] for k in keys if config.get(k) is not None}  # type: ignore[literal-required]


class Sampler(BaseModel):
    """Draws N outputs from a runnable: one call with ``n=N`` when the model has an ``n`` field,
    else N concurrent calls, each with its own ``seed`` (and ``temperature``) when the model has those fields."""

    model_config = _MODEL_CONFIG
    runnable: Runnable
    use_n: bool = True
    temperature: float | None = 1.0
    seed: int | None = 0

    def _variants(self, n: int) -> list[Runnable]:
        pre, lm, post = split_language_model(self.runnable)
        fields = type(lm).model_fields if lm is not None else {}
        out = []
        for i in range(n):
            upd = {k: v for k, v in (("seed", None if self.seed is None else self.seed + i),
                                     ("temperature", self.temperature)) if k in fields and v is not None}
            v = _seq([pre, lm.model_copy(update=upd), post]) if lm is not None and upd else self.runnable
            out.append(v if v is not None else self.runnable)
        return out

    def _n_model(self, n: int) -> tuple[Runnable | None, BaseLanguageModel | None, Runnable | None]:
        pre, lm, post = split_language_model(self.runnable)
        if n > 1 and self.use_n and lm is not None and "n" in type(lm).model_fields:
            return pre, lm.model_copy(update={"n": n}), post
        return None, None, None

    @staticmethod
    def _outputs(result: Any) -> list[Any]:
        return [getattr(g, "message", None) or g.text for g in result.generations[0]]

    def sample(self, input_: Any, n: int, config: RunnableConfig) -> tuple[list[Any], int]:
        """N outputs and the number of generator calls made."""
        pre, lm, post = self._n_model(n)
        if lm is not None:
            x = pre.invoke(input_, config) if pre else input_
            outs = self._outputs(lm.generate_prompt([prompt_value(x)], **_run_kwargs(config)))
            outs = post.batch(outs, config) if post else outs
            if len(outs) >= n:
                return outs[:n], 1
            more, calls = self._concurrent(input_, n - len(outs), config)
            return outs + more, 1 + calls
        return self._concurrent(input_, n, config)

    def _concurrent(self, input_: Any, n: int, config: RunnableConfig) -> tuple[list[Any], int]:
        with get_executor_for_config(config) as ex:
            return list(ex.map(lambda v: v.invoke(input_, config), self._variants(n))), n

    async def asample(self, input_: Any, n: int, config: RunnableConfig) -> tuple[list[Any], int]:
        """Async :meth:`sample`; cancelling it cancels every pending call."""
        pre, lm, post = self._n_model(n)
        if lm is not None:
            x = await pre.ainvoke(input_, config) if pre else input_
            res = await lm.agenerate_prompt([prompt_value(x)], **_run_kwargs(config))
            outs = self._outputs(res)
            outs = await post.abatch(outs, config) if post else outs
            if len(outs) >= n:
                return outs[:n], 1
            more, calls = await self._aconcurrent(input_, n - len(outs), config)
            return outs + more, 1 + calls
        return await self._aconcurrent(input_, n, config)

    async def _aconcurrent(self, input_: Any, n: int, config: RunnableConfig) -> tuple[list[Any], int]:
        calls = [functools.partial(v.ainvoke, input_, config) for v in self._variants(n)]
        return await gather_all(calls, config.get("max_concurrency")), n


def step_messages(system_prompt: str, question: str, partial_chain: str) -> list[BaseMessage]:
    """Chat messages asking a model for the next step of ``partial_chain``."""
    user = question if not partial_chain.strip() else (
        f"{question}\n\nSolution so far:\n{partial_chain}\n\nWrite only the next step.")
    return [SystemMessage(system_prompt), HumanMessage(user)]


class TokenCounter(BaseCallbackHandler):
    """Counts the tokens generated by every language-model call made under it (add it to a config's callbacks).

    Per call: the call's own total when the model reports one (``llm_output["token_usage"]``
    ``completion_tokens``/``output_tokens``, as OpenAI-style models do; with ``n > 1`` they repeat that total on
    every message), else the sum of ``usage_metadata["output_tokens"]`` over the call's messages.
    :attr:`generated_tokens` is ``None`` when a call reported neither (an honest "unknown", not an undercount).
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.calls = 0
        self.tokens = 0
        self.unreported = 0

    @staticmethod
    def tokens_of(response: LLMResult) -> int | None:
        """Tokens one model call generated (see the class docstring), ``None`` when it did not say."""
        usage = (response.llm_output or {}).get("token_usage") or {}
        for key in ("completion_tokens", "output_tokens"):
            if isinstance(usage.get(key), int):
                return int(usage[key])
        gens = [g for batch in response.generations for g in batch]
        total = 0
        for g in gens:
            meta = getattr(getattr(g, "message", None), "usage_metadata", None)
            if not meta or "output_tokens" not in meta:
                return None
            total += int(meta["output_tokens"])
        return total if gens else None

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        n = self.tokens_of(response)
        with self._lock:
            self.calls += 1
            if n is None:
                self.unreported += 1
            else:
                self.tokens += n

    @property
    def generated_tokens(self) -> int | None:
        """Tokens generated under this counter; ``None`` if no call was seen or one did not report them."""
        return None if self.unreported or not self.calls else self.tokens
