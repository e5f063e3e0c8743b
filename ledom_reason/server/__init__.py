"""HTTP scoring server: a FastAPI app exposing a :class:`~ledom_reason.Scorer` with dynamic batching.

Install with ``pip install 'ledom-reason[server]'``; run with ``ledom-reason serve --model DIR``.
See ``docs/server.md``. Heavy modules (fastapi, uvicorn) load on first use of an attribute.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ledom_reason.server.config import ServerConfig

if TYPE_CHECKING:
    from ledom_reason.server.app import create_app
    from ledom_reason.server.batcher import DynamicBatcher
    from ledom_reason.server.metrics import ServerMetrics
    from ledom_reason.server.run import ServerThread, run_server

_LAZY = {
    "create_app": "ledom_reason.server.app",
    "DynamicBatcher": "ledom_reason.server.batcher",
    "ServerMetrics": "ledom_reason.server.metrics",
    "ServerThread": "ledom_reason.server.run",
    "run_server": "ledom_reason.server.run",
}

__all__ = ["DynamicBatcher", "ServerConfig", "ServerMetrics", "ServerThread", "create_app", "run_server"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from ledom_reason._optional import require

        for dep in ("fastapi", "uvicorn", "prometheus_client"):
            require(dep, "server")
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ledom_reason.server' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
