"""Library calls stay quiet: transformers' per-load "Loading weights" progress bars are hidden while our code
loads a model, unless the user asked for detail.

Long work keeps its own bars (the CLI's scoring/eval bars, on stderr); a one-second model load does not need
one in every library call. Asking for detail = enabling INFO logging for ``ledom_reason`` (``ledom-reason -v``,
or ``logging.getLogger("ledom_reason").setLevel(logging.INFO)``), or passing ``show=True``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def quiet_loading(show: bool | None = None) -> Iterator[None]:
    """Hide transformers' progress bars inside the block (re-entrant and thread-safe; restored after).

    Args:
        show: ``True`` keeps the bars; ``None`` (default) keeps them only when INFO logging is enabled for
            ``ledom_reason``.
    """
    global _depth, _was_enabled
    if show is None:
        show = logging.getLogger("ledom_reason").isEnabledFor(logging.INFO)
    if show:
        yield
        return
    from transformers.utils import logging as hf_logging

    with _lock:
        if _depth == 0:
            _was_enabled = hf_logging.is_progress_bar_enabled()
            if _was_enabled:
                hf_logging.disable_progress_bar()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                hf_logging.enable_progress_bar()
