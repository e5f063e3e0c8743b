"""Where the data sets live (GSM8K, MATH-500, AMC23, the Shakespeare corpus).

The repository carries them in its own ``data/`` folder (each with its licence and provenance), so a
checkout anywhere finds them with no setting. An installed wheel has no ``data/``: point
``$LEDOM_DATA_DIR`` (or ``--data-dir``) at a folder with the same layout.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_DATA_DIR = Path(__file__).resolve().parents[1] / "data"
"""``data/`` of the checkout this package is imported from (exists for source and editable installs)."""


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Locate the data folder.

    Order: ``override``, ``$LEDOM_DATA_DIR``, then the repository's own ``data/``. An explicit choice
    that does not exist is an error (it never falls through to another folder).

    Raises:
        FileNotFoundError: the chosen folder does not exist, or no folder was found (the message says
            where it looked and how to choose one).
    """
    for source, value in (("data_dir", override), ("LEDOM_DATA_DIR", os.environ.get("LEDOM_DATA_DIR"))):
        if value:
            path = Path(value)
            if not path.is_dir():
                raise FileNotFoundError(f"data folder {path} (from {source}) does not exist")
            return path
    if (REPO_DATA_DIR / "README.md").is_file():
        return REPO_DATA_DIR
    raise FileNotFoundError(
        f"data folder not found (no {REPO_DATA_DIR}: this is not a source checkout); "
        "set LEDOM_DATA_DIR or pass --data-dir to a folder holding gsm8k/, math500/, amc23/, corpus/"
    )
