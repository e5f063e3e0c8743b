"""Bundled model names (e.g. ``"ledom-tiny"``) resolved to folders inside the package, and model metadata.

A model folder may hold ``ledom.json``: machine-readable facts from its model card that code relies on —
its direction, its twin, and the reward setting it was validated with (``{"reward": {"lam", "normalize"}}``).
Calibrations fitted for it live beside it in ``calibration.json`` (:mod:`ledom_reason.calibration`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

METADATA_FILE = "ledom.json"

_HERE = Path(__file__).parent

BUNDLED: dict[str, str] = {
    "ledom-tiny": "ledom-tiny",  # reverse verifier (see MODEL_CARD.md)
    "ledom-tiny-forward": "ledom-tiny-forward",  # its forward twin (same data, size, tokenizer)
}
"""Name → sub-folder of this package holding a Hugging Face model folder."""


def resolve_model_name(name: str) -> Path | None:
    """Return the folder of a bundled model, or ``None`` if ``name`` is not a bundled model."""
    sub = BUNDLED.get(name)
    if sub is None:
        return None
    path = _HERE / sub
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"bundled model {name!r} is missing its files at {path} (broken install?)")
    return path


def model_metadata(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``ledom.json`` metadata of a model folder or bundled name (``{}`` when it has none).

    Raises:
        ValueError: the file exists but is not a JSON object (names the file).
    """
    path = resolve_model_name(str(folder)) or Path(folder)
    f = path / METADATA_FILE
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{f}: expected a JSON object")
    return data


def model_label(name_or_folder: str | os.PathLike[str]) -> str:
    """How calibrations name a model: the bundled name, else the folder's own name."""
    s = str(name_or_folder)
    return s if s in BUNDLED else Path(s).resolve().name
