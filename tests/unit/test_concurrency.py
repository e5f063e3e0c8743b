"""The one sync-over-async bridge: asyncio.run outside a loop, a helper thread inside one."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from ledom_reason.concurrency import in_running_loop, run_sync

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def _where() -> tuple[str, str]:
    await asyncio.sleep(0)
    return threading.current_thread().name, VAR.get()


def test_outside_a_loop_runs_in_this_thread():
    assert not in_running_loop()
    name, _ = run_sync(_where())
    assert name == threading.current_thread().name


async def test_inside_a_running_loop_uses_a_helper_thread_with_the_callers_context():
    assert in_running_loop()
    VAR.set("caller")
    name, value = run_sync(_where())
    assert name.startswith("ledom-run-sync") and value == "caller"


async def test_exceptions_propagate_unchanged():
    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        run_sync(boom())

