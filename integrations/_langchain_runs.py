"""Runs, configs and custom events for the LangChain adapters, through LangChain's public API only.

``Runnable._batch_with_config`` / ``_call_with_config`` are protected helpers that may change in any minor
release; this module does the same job with the documented pieces: :func:`ensure_config`,
:func:`get_config_list`, :func:`patch_config`, ``get_(async_)callback_manager_for_config`` and the callback
managers' ``on_chain_start`` / ``on_chain_end`` / ``on_chain_error`` / ``get_child``. One chain run is
opened per input (so tracing, ``astream_events`` and callbacks see the adapter as one step), the work
itself runs once for the whole batch (so a batch is ONE scorer call).

Custom events go to LangChain's callbacks (``astream_events``: ``on_custom_event``) and, when the adapter
runs inside a LangGraph graph, to its ``stream_mode="custom"`` stream as ``{"name": ..., "data": ...}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config, get_config_list, patch_config
from langchain_core.runnables.config import (
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
)

BatchFn = Callable[[list[Any], list[RunnableConfig]], list[Any]]
"""``(inputs, child configs) -> outputs`` (an output may be an ``Exception`` when exceptions are returned)."""
ABatchFn = Callable[[list[Any], list[RunnableConfig]], Awaitable[list[Any]]]


def _start_kwargs(runnable: Runnable, config: RunnableConfig) -> dict[str, Any]:
    return {"name": config.get("run_name") or runnable.get_name(), "run_id": config.pop("run_id", None)}


def _finish(run_managers: Sequence[Any], outputs: list[Any], return_exceptions: bool) -> list[Any]:
    first: BaseException | None = None
    for rm, out in zip(run_managers, outputs, strict=True):
        if isinstance(out, Exception):
            first = first or out
            rm.on_chain_error(out)
        else:
            rm.on_chain_end(out)
    if first is not None and not return_exceptions:
        raise first
    return outputs


def traced_batch(runnable: Runnable, fn: BatchFn, inputs: list[Any],
                 config: RunnableConfig | list[RunnableConfig] | None, *, return_exceptions: bool = False) -> list[Any]:
    """Run ``fn`` over all ``inputs`` at once, with one chain run per input (public-API ``_batch_with_config``)."""
    if not inputs:
        return []
    configs = get_config_list(config, len(inputs))
    rms = [get_callback_manager_for_config(c).on_chain_start(None, x, **_start_kwargs(runnable, c))
           for x, c in zip(inputs, configs, strict=True)]
    children = [patch_config(c, callbacks=rm.get_child()) for c, rm in zip(configs, rms, strict=True)]
    try:
        outputs = fn(inputs, children)
    except BaseException as e:
        for rm in rms:
            rm.on_chain_error(e)
        if return_exceptions and isinstance(e, Exception):
            return [e for _ in inputs]
        raise
    return _finish(rms, outputs, return_exceptions)


async def atraced_batch(runnable: Runnable, fn: ABatchFn, inputs: list[Any],
                        config: RunnableConfig | list[RunnableConfig] | None, *,
                        return_exceptions: bool = False) -> list[Any]:
    """Async :func:`traced_batch`."""
    if not inputs:
        return []
    configs = get_config_list(config, len(inputs))
    rms = [await get_async_callback_manager_for_config(c).on_chain_start(None, x, **_start_kwargs(runnable, c))
           for x, c in zip(inputs, configs, strict=True)]
    children = [patch_config(c, callbacks=rm.get_child()) for c, rm in zip(configs, rms, strict=True)]
    try:
        outputs = await fn(inputs, children)
    except BaseException as e:
        for rm in rms:
            await rm.on_chain_error(e)
        if return_exceptions and isinstance(e, Exception):
            return [e for _ in inputs]
        raise
    first: BaseException | None = None
    for rm, out in zip(rms, outputs, strict=True):
        if isinstance(out, Exception):
            first = first or out
            await rm.on_chain_error(out)
        else:
            await rm.on_chain_end(out)
    if first is not None and not return_exceptions:
        raise first
    return outputs


def traced_invoke(runnable: Runnable, fn: Callable[[Any, RunnableConfig], Any], input_: Any,
                  config: RunnableConfig | None) -> Any:
    """One input, one chain run (public-API ``_call_with_config``)."""
    return traced_batch(runnable, lambda xs, cs: [fn(xs[0], cs[0])], [input_], ensure_config(config))[0]


async def atraced_invoke(runnable: Runnable, fn: Callable[[Any, RunnableConfig], Awaitable[Any]], input_: Any,
                         config: RunnableConfig | None) -> Any:
    """Async :func:`traced_invoke`."""
    async def one(xs: list[Any], cs: list[RunnableConfig]) -> list[Any]:
        return [await fn(xs[0], cs[0])]
    return (await atraced_batch(runnable, one, [input_], ensure_config(config)))[0]


# ---------------------------------------------------------------------------------------- events
def graph_stream_writer() -> Callable[[Any], None] | None:
    """LangGraph's ``stream_mode="custom"`` writer when called inside a graph run, else ``None``."""
    try:
        from langgraph.config import get_stream_writer
    except ImportError:  # langgraph is optional for the runnables
        return None
    try:
        return get_stream_writer()
    except (RuntimeError, KeyError):  # not inside a runnable, or inside one that no graph runs
        return None


def emit(name: str, data: dict[str, Any], config: RunnableConfig | None,
         writer: Callable[[Any], None] | None = None) -> None:
    """A custom event to the LangGraph custom stream (``writer``, or the current graph's) and to LangChain
    callbacks (``config``, or the current run's; ``RuntimeError`` when there is no run to attach it to)."""
    w = writer or graph_stream_writer()
    if w is not None:
        w({"name": name, "data": data})
    dispatch_custom_event(name, data, config=config)


async def aemit(name: str, data: dict[str, Any], config: RunnableConfig | None,
                writer: Callable[[Any], None] | None = None) -> None:
    """Async :func:`emit`."""
    w = writer or graph_stream_writer()
    if w is not None:
        w({"name": name, "data": data})
    await adispatch_custom_event(name, data, config=config)
