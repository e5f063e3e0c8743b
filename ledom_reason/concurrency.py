"""The one bridge from sync code to async code in ledom-reason.

Every sync API that has an async twin (``beam_search`` → ``abeam_search``, ``LedomStepPruner.invoke`` →
``ainvoke``, …) runs the coroutine through :func:`run_sync`, so they all behave the same way: with no event
loop in this thread it uses ``asyncio.run``; inside a running loop (a notebook, an async web handler that
calls a sync API) it runs the coroutine to completion on a fresh loop in a helper thread, with the caller's
context variables (LangChain callbacks and configs travel in them), instead of failing.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def in_running_loop() -> bool:
    """Whether an asyncio event loop is running in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code and return its result (its exception propagates).

    Example:
        >>> async def add(a, b):
        ...     return a + b
        >>> run_sync(add(2, 3))
        5
    """
    if not in_running_loop():
        return asyncio.run(coro)
    # A loop already runs in this thread and cannot be re-entered: use a fresh one in a helper thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledom-run-sync") as ex:
        return ex.submit(contextvars.copy_context().run, asyncio.run, coro).result()
