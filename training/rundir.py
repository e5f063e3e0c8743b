"""Who may write to ``out_dir``: a fresh run, ``--overwrite``, or a ``--resume`` that fits.

A folder is *used* when it exists and is not empty. A fresh run refuses a used folder, so a second
command never mixes its model, log and checkpoints with an earlier run's. ``--overwrite`` deletes
the earlier run first, but only from a folder holding ``train_config.json`` (one that
``ledom-reason train`` wrote). ``--resume`` continues from a checkpoint only when the checkpoint's
config fits the command's: the same model, data, batch, optimiser and schedule settings, and
``max_steps`` above the checkpoint's step. Each refusal is a one-line ``ValueError`` naming the
folder and the reason; nothing is written before the checks pass.

Example:
    >>> from ledom_reason.training.rundir import is_used
    >>> is_used("/nonexistent/run")
    False
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledom_reason.training.checkpoint import META, checkpoint_dir, resolve_resume
from ledom_reason.training.config import save_config

logger = logging.getLogger(__name__)

MARKER = "train_config.json"
"""Written first into every run folder; ``--overwrite`` only deletes folders that hold it."""

RESUME_MAY_CHANGE = frozenset({
    # where and how the run executes, how often it logs and saves, and how long it trains;
    # every other field (model, data, batch, optimiser, schedule shape) must equal the checkpoint's
    "out_dir", "overwrite", "resume", "max_steps", "stop_after", "log_every", "save_every", "keep_checkpoints",
    "device", "dtype", "compile", "activation_checkpointing", "loss_impl", "loss_chunk_tokens", "distributed",
    "peak_flops", "tensorboard", "wandb_project", "data_cache_dir",
})


@dataclass(frozen=True)
class RunPlan:
    """What a run will do with its ``out_dir`` (from :func:`plan_run`)."""

    out_dir: Path
    clear: bool = False  # --overwrite of a used folder: delete it before writing
    resume_from: Path | None = None  # the checkpoint to continue from
    start_step: int = 0


def is_used(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` exists and is not an empty folder."""
    p = Path(path)
    if not p.exists():
        return False
    return not p.is_dir() or any(p.iterdir())


def read_checkpoint_meta(ckpt: Path) -> dict[str, Any]:
    """``{"step", "world_size", "config"}`` saved beside a checkpoint."""
    f = ckpt / META
    if not f.is_file():
        raise ValueError(f"cannot resume from {ckpt}: it has no {META} (written by an older version), "
                         "so it cannot be checked against this run")
    meta: dict[str, Any] = json.loads(f.read_text(encoding="utf-8"))
    return meta


def config_mismatches(cfg: Any, saved: dict[str, Any]) -> list[str]:
    """The fields (outside :data:`RESUME_MAY_CHANGE`) whose value differs from the checkpoint's config."""
    now = asdict(cfg)
    out = []
    for k in sorted((set(now) | set(saved)) - RESUME_MAY_CHANGE):
        a, b = now.get(k, "<absent>"), saved.get(k, "<absent>")
        if a != b:
            out.append(f"`{k}` is {a!r} here but {b!r} in the checkpoint")
    return out


def plan_run(cfg: Any, *, what: str = "a training run") -> RunPlan:
    """Check ``cfg.out_dir`` against ``overwrite``/``resume``; read-only, so every process may call it.

    Args:
        cfg: A config with ``out_dir``, ``overwrite`` and (training configs) ``resume``.
        what: What a used folder holds, for the message ("a tokenizer").

    Raises:
        ValueError: the folder may not be used this way (one line saying why and what to pass).
        FileNotFoundError: ``resume`` names a folder that is not a checkpoint.
    """
    out = Path(cfg.out_dir)
    resume = getattr(cfg, "resume", "")
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file, not a folder")
    used = is_used(out)
    if not resume:
        if not used:
            return RunPlan(out)
        if not cfg.overwrite:
            alt = " or --resume to continue it" if hasattr(cfg, "resume") else ""
            raise ValueError(f"out_dir {out} already holds {what}: pass --overwrite to replace it{alt}, "
                             "or choose another out_dir")
        if not (out / MARKER).is_file():
            raise ValueError(f"--overwrite refused: {out} is not empty and has no {MARKER}, so `ledom-reason train` "
                             "did not write it; choose another out_dir")
        return RunPlan(out, clear=True)
    ckpt = resolve_resume(resume, out)
    if ckpt is None:
        if used:
            raise ValueError(f"--resume: {checkpoint_dir(out)} holds no checkpoint to resume from "
                             "(checkpoints need save_every > 0); pass --overwrite to start again")
        logger.info("resume=%s: %s is empty, starting a new run", resume, out)
        return RunPlan(out)
    ckpt = ckpt.resolve()
    if used and ckpt.parent != checkpoint_dir(out).resolve():
        raise ValueError(f"--resume {ckpt}: out_dir {out} already holds another run; "
                         "resume into the checkpoint's own run folder or an empty out_dir")
    meta = read_checkpoint_meta(ckpt)
    step = int(meta["step"])
    problems = config_mismatches(cfg, meta.get("config", {}))
    if cfg.max_steps <= step:
        problems.append(f"`max_steps` ({cfg.max_steps}) must be above the checkpoint's step ({step})")
    if problems:
        raise ValueError(f"cannot resume from {ckpt}: {'; '.join(problems)}")
    old_max = meta.get("config", {}).get("max_steps")
    if old_max is not None and old_max != cfg.max_steps:
        logger.warning("max_steps is %d, the checkpoint's run had %d: the learning-rate schedule after step %d "
                       "follows the new length", cfg.max_steps, old_max, step)
    return RunPlan(out, resume_from=ckpt, start_step=step)


def begin_run(plan: RunPlan, cfg: Any) -> None:
    """On the main process: delete the old run if ``plan.clear``, create ``out_dir``, write the config."""
    if plan.clear:
        logger.warning("--overwrite: deleting the previous run in %s", plan.out_dir)
        shutil.rmtree(plan.out_dir)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, plan.out_dir / MARKER)
