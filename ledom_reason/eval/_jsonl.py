"""Append-only JSONL files that survive interruption: a torn last line is dropped on reopen."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def read_resumable(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of an append-only JSONL file; a torn (interrupted) last line is cut off the file.

    Returns ``[]`` when the file does not exist. A bad line that is *not* the last one raises
    ``ValueError`` (the file is not one of ours, or it is corrupted).
    """
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    rows: list[dict[str, Any]] = []
    good_end = 0
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = len(data) if nl < 0 else nl + 1
        line = data[pos:end]
        if line.strip():
            try:
                if nl < 0:
                    raise ValueError("no newline")
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
            except ValueError:
                if end < len(data):
                    raise ValueError(f"{p}: corrupted line at byte {pos}") from None
                logger.warning("%s: dropping a torn last line (%d bytes)", p, len(line))
                break
            rows.append(row)
        good_end = end
        pos = end
    if good_end < len(data):
        with open(p, "r+b") as f:
            f.truncate(good_end)
    return rows
