"""Bundled model names (e.g. ``"ledom-tiny"``) resolved to folders inside the package."""

from __future__ import annotations

from pathlib import Path

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
