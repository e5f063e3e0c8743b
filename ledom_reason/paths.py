"""Where the shared data lives (GSM8K, MATH-500, AMC23, the Shakespeare corpus)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Locate the data folder.

    Order: ``override``, ``$LEDOM_DATA_DIR``, then ``../shared/data`` next to the current
    directory or next to the repository checkout this package is imported from.

    Raises:
        FileNotFoundError: no candidate folder exists (the message lists where it looked).
    """
    candidates: list[Path] = []
    if override is not None:
        candidates.append(Path(override))
    if os.environ.get("LEDOM_DATA_DIR"):
        candidates.append(Path(os.environ["LEDOM_DATA_DIR"]))
    candidates.append(Path.cwd().parent / "shared" / "data")
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        "data folder not found; looked in " + ", ".join(str(c) for c in candidates)
        + " (set LEDOM_DATA_DIR or pass --data-dir)"
    )
