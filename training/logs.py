"""Run metrics: one JSON line per log step in ``<out_dir>/log.jsonl`` plus a readable line on stdout.

One log per run: a fresh run (``start_step=0``) starts a new file; a resumed run keeps the rows up to
its checkpoint's step and drops the later ones (written after the checkpoint by the killed
process, possibly half a line), so the resumed log reads as one uninterrupted run. A tqdm bar is
shown when stderr is a terminal. TensorBoard and W&B are used only when asked for
*and* installed (a warning otherwise); nothing else is required.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)


class MetricsLogger:
    """Write metrics from the main process; other ranks get a silent instance."""

    def __init__(self, out_dir: str | Path, *, enabled: bool = True, total_steps: int = 0, start_step: int = 0,
                 stream: IO[str] | None = None, tensorboard: bool = False, wandb_project: str = "",
                 config: dict[str, Any] | None = None) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stdout
        self._file = None
        self._bar = None
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        path = Path(out_dir) / "log.jsonl"
        if start_step:
            truncate_log(path, start_step)
        self._file = open(path, "a" if start_step else "w", encoding="utf-8")
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(out_dir) / "tb"), purge_step=start_step or None)
            except ImportError:
                logger.warning("tensorboard is not installed: TensorBoard logging is off")
        if wandb_project:
            try:
                import wandb

                self._wandb = wandb.init(project=wandb_project, config=config or {})
            except ImportError:
                logger.warning("wandb is not installed: W&B logging is off")

    def log(self, row: dict[str, Any]) -> None:
        """Record one metrics row (must contain ``step``)."""
        if not self.enabled or self._file is None:
            return
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        line = " ".join(_fmt(k, v) for k, v in row.items())
        if self._bar is not None:
            self._bar.write(line)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()
        if self._tb is not None:
            for k, v in row.items():
                if isinstance(v, int | float) and k != "step":
                    self._tb.add_scalar(k, v, row["step"])
        if self._wandb is not None:
            self._wandb.log(row, step=row["step"])

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        for obj in (self._bar, self._tb, self._file):
            if obj is not None:
                obj.close()
        if self._wandb is not None:
            self._wandb.finish()


def truncate_log(path: Path, step: int) -> None:
    """Keep the rows of ``path`` with ``row["step"] <= step`` (and no torn last line), atomically."""
    if not path.exists():
        return
    from ledom_reason.io import atomic_open

    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by the kill
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    with atomic_open(path) as f:
        f.writelines(kept)


def _fmt(k: str, v: Any) -> str:
    if isinstance(v, float):
        if math.isfinite(v) and (abs(v) >= 1e4 or (0 < abs(v) < 1e-3)):
            return f"{k}={v:.3e}"
        return f"{k}={v:.4f}"
    return f"{k}={v}"
