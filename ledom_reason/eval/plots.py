"""PNG plots with matplotlib's object API (Agg canvas; no pyplot global state, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path


def _figure() -> object:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def line_plot(
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: str | os.PathLike[str],
    *,
    xlabel: str,
    ylabel: str = "accuracy",
    title: str = "",
    log2_x: bool = False,
) -> Path:
    """One line per series (``name -> [(x, y), ...]``), saved as PNG at ``path``."""
    if not series:
        raise ValueError("`series` is empty: nothing to plot")
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)  # type: ignore[attr-defined]
    for name, pts in series.items():
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    if log2_x:
        ax.set_xscale("log", base=2)
        xs = sorted({p[0] for pts in series.values() for p in pts})
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()  # type: ignore[attr-defined]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")  # type: ignore[attr-defined]
    return out
