"""Framework-neutral helpers shared by the LangChain and DSPy adapters.

Nothing here imports ``langchain_core`` or ``dspy``: messages and predictions are read by duck typing,
so this module stays importable (and testable) without either framework.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from ledom_reason.reward import RewardSettings
from ledom_reason.types import PairError, PairScore

T = TypeVar("T")


class CandidateScoringError(RuntimeError):
    """The scorer failed on a batch of candidates; no selection was made.

    Attributes:
        index: Index of the failing candidate in the list given to the scorer, when the scorer named
            it (a :class:`~ledom_reason.types.PairError` carries ``index``); else ``None``.
        candidate: The failing candidate's text, when known.
    """

    def __init__(self, message: str, index: int | None = None, candidate: str | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.candidate = candidate


class ScorerNotAttachedError(RuntimeError):
    """A program loaded from disk is used before its scorer was attached again (scorers are never saved)."""


class Shared:
    """Holds an object (a scorer) that copies and deep copies share by reference, and that pickling leaves out.

    DSPy optimizers deep-copy programs, and ``save(path, save_program=True)`` pickles them; a scorer holds a
    model (and a lock) that must neither be duplicated nor written into a program file. An unpickled
    ``Shared`` is empty until :meth:`attach` is called (``attach_scorer`` in the DSPy adapter).
    """

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __copy__(self) -> Shared:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Shared:
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return Shared, (None,)  # saved programs carry no scorer (nor its model weights)

    def get(self, what: str = "scorer") -> Any:
        """The shared object; :class:`ScorerNotAttachedError` when this came from a saved program."""
        if self.obj is None:
            raise ScorerNotAttachedError(
                f"this program was loaded from disk and its {what} is not saved with it: attach one with "
                "`ledom_reason.integrations.dspy.attach_scorer(program, scorer)`")
        return self.obj

    def attach(self, obj: Any) -> None:
        """Set the shared object (after loading a saved program)."""
        self.obj = obj

    def __repr__(self) -> str:
        return f"Shared({self.obj!r})"


def event_data(ev: Any) -> dict[str, Any]:
    """A core :class:`~ledom_reason.search.SearchEvent` as a custom event's data: ``{"kind", "depth", **data}``."""
    return {"kind": ev.kind, "depth": ev.depth, **ev.data}


def pool_chains(result: Any, delimiter: str) -> list[dict[str, Any]]:
    """The final pool of a core step search, best first: ``{"text", "answer", "reward", "finished"}`` each."""
    def key(i: int) -> float:
        r = result.trace[i].reward
        return -(r if r is not None else float("-inf"))
    return [{"text": delimiter.join(result.chain_of(i)), "answer": result.trace[i].answer,
             "reward": result.trace[i].reward, "finished": result.trace[i].status == "finished"}
            for i in sorted(result.candidates, key=key)]


def preview(text: str, width: int = 60) -> str:
    """One-line preview of ``text`` for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def scoring_error(exc: BaseException, candidates: Sequence[str], labels: Sequence[str] | None = None) -> CandidateScoringError:
    """Wrap a scorer exception so that it names the failing candidate (when the scorer said which).

    Args:
        exc: What the scorer raised.
        candidates: The candidate texts in the order they were given to the scorer.
        labels: Optional human label per candidate (e.g. ``"input 2, candidate 0"``); default
            ``"candidate <i>"``.
    """
    i = exc.index if isinstance(exc, PairError) else None
    if i is not None and 0 <= i < len(candidates):
        label = labels[i] if labels is not None else f"candidate {i}"
        msg = f"scoring failed on {label} ({preview(candidates[i])!r}): {type(exc).__name__}: {exc}"
        return CandidateScoringError(msg, index=i, candidate=candidates[i])
    msg = (f"scoring {len(candidates)} candidate(s) failed and the scorer did not name the failing one: "
           f"{type(exc).__name__}: {exc}")
    return CandidateScoringError(msg)


def text_of(obj: Any, what: str = "candidate") -> str:
    """Plain text of a model output: ``str``, a chat message (``.content``: str or text blocks),
    an LLM generation (``.text``), or a mapping with ``content``/``text``.

    Raises:
        TypeError: the object carries no text (e.g. a tool call with empty content, a number).
    """
    if isinstance(obj, str):
        return obj
    content = obj.get("content", obj.get("text")) if isinstance(obj, Mapping) else getattr(obj, "content", None)
    if content is None and not isinstance(obj, Mapping):
        content = getattr(obj, "text", None)
        content = content if isinstance(content, str) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: keep the text ones
        parts = [b if isinstance(b, str) else b.get("text", "") for b in content
                 if isinstance(b, str) or (isinstance(b, Mapping) and b.get("type") == "text")]
        if parts:
            return "".join(parts)
    raise TypeError(f"`{what}` must be text (a str, a message with text content, or a generation), "
                    f"got {type(obj).__name__}: {preview(repr(obj))}")


def check_n(n: Any, name: str = "n") -> int:
    """Validate a sample count (an ``int`` ≥ 1)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"`{name}` must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"`{name}` must be >= 1, got {n}")
    return n


def join_fields(values: Mapping[str, Any] | Any, fields: Sequence[str], what: str = "prediction") -> str:
    """Join the present, non-empty ``fields`` of a prediction into one candidate text.

    Fields are joined with a blank line in the given order (``reasoning`` then ``answer`` by default), so
    the reverse model reads the rationale followed by the answer, as the forward model wrote them.

    Raises:
        ValueError: none of the fields is present and non-empty.
    """
    parts = []
    for f in fields:
        try:
            v = values[f] if isinstance(values, Mapping) else getattr(values, f)
        except (KeyError, AttributeError):
            continue
        if v is None:
            continue
        s = v if isinstance(v, str) else str(v)
        if s.strip():
            parts.append(s.strip())
    if not parts:
        raise ValueError(f"{what} has none of the answer fields {list(fields)} (or they are empty): "
                         "set `answer_fields=` to the output fields of your signature")
    return "\n\n".join(parts)


async def gather_all(calls: Sequence[Callable[[], Awaitable[T]]], limit: int | None = None) -> list[T]:
    """Run ``call()`` for each call concurrently (at most ``limit`` at a time) and return their results in order.

    Unlike ``asyncio.gather``, the first failure cancels the others and is raised as itself, and
    cancelling the caller cancels every pending call: nothing is left running.
    """
    sem = asyncio.Semaphore(limit) if limit else None

    async def gated(call: Callable[[], Awaitable[T]]) -> T:
        if sem is None:
            return await call()
        async with sem:
            return await call()

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(gated(c)) for c in calls]
    except BaseExceptionGroup as eg:
        first = eg.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [t.result() for t in tasks]


def verifier_value(score: PairScore, settings: RewardSettings, value: str = "auto", *, explicit: bool = False) -> float:
    """What a metric or reward function returns for one score.

    ``"p_correct"``: the calibrated P(correct) (a ``ValueError`` when the scorer has no calibration);
    ``"reward"``: the raw reward under ``settings``; ``"auto"``: ``p_correct`` when the score carries one and
    the caller did not set λ/normalisation explicitly (``explicit``), else the raw reward.
    """
    if value not in ("auto", "p_correct", "reward"):
        raise ValueError(f"`value` must be 'auto', 'p_correct' or 'reward', got {value!r}")
    if value == "p_correct" or (value == "auto" and not explicit and score.p_correct is not None):
        if score.p_correct is None:
            raise ValueError("value='p_correct' needs a calibrated scorer (a calibration.json next to the model, "
                             "see `ledom-reason calibrate`), and this score has no p_correct")
        return float(score.p_correct)
    return settings(score)
