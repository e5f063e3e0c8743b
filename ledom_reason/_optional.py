"""Import optional dependencies with an install hint instead of a bare ImportError."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` telling which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{module!r} is needed here but is not installed: pip install 'ledom-reason[{extra}]'"
        ) from e
