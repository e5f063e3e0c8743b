"""JSONL reading with line-numbered errors, atomic writes (never a partial output file), and append-only
JSONL files that survive interruption (a torn last line is dropped on reopen)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(line number, object)`` from a JSONL file, skipping blank lines (files larger than RAM work).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line is not JSON or not an object (the message names the file and line).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input file not found: {p}")
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{n}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{p}:{n}: expected a JSON object, got {type(row).__name__}")
            yield n, row


def read_jsonl(path: str | os.PathLike[str], required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Read a JSONL file of objects; raise ``ValueError`` naming the file and line on bad rows."""
    rows = []
    for n, row in iter_jsonl(path):
        missing = [k for k in required if k not in row]
        if missing:
            raise ValueError(f"{Path(path)}:{n}: missing field(s) {missing}")
        rows.append(row)
    return rows


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; rename it over ``path`` only if the block succeeds."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSONL atomically."""
    with atomic_open(path) as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def append_jsonl(f: IO[str], row: dict[str, Any]) -> None:
    """Append one row and flush (for resumable outputs: each line is complete or absent)."""
    f.write(json.dumps(row, ensure_ascii=False) + "\n")
    f.flush()

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
