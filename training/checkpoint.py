"""Resumable checkpoints: model + optimizer + scheduler + RNG states + data position.

Layout: ``<out_dir>/checkpoints/step_00000100/`` holding ``state.pt`` (full, unsharded model and
optimizer state, scheduler, step, data position), ``rng_rank<R>.pt`` per rank and ``meta.json``
(step, process count and the run's config, which ``--resume`` checks against the new command). A
checkpoint is written to a temporary folder and renamed into place, so a killed run never leaves
a half-written one; only the newest ``keep`` are kept. State dicts go through
``torch.distributed.checkpoint.state_dict`` so the same code serves one process, DDP and FSDP2.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from ledom_reason.training.distributed import DistInfo, barrier

logger = logging.getLogger(__name__)
PREFIX = "step_"
META = "meta.json"


def checkpoint_dir(out_dir: str | os.PathLike[str]) -> Path:
    return Path(out_dir) / "checkpoints"


def list_checkpoints(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints in ``out_dir``, oldest first."""
    d = checkpoint_dir(out_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.name.startswith(PREFIX) and (p / "state.pt").exists())


def resolve_resume(resume: str, out_dir: str | os.PathLike[str]) -> Path | None:
    """``""`` → None; ``"latest"`` → newest checkpoint in ``out_dir`` (None when there is none); else a folder."""
    if not resume:
        return None
    if resume in ("latest", "auto", "true"):
        ckpts = list_checkpoints(out_dir)
        return ckpts[-1] if ckpts else None
    p = Path(resume)
    if not (p / "state.pt").exists():
        raise FileNotFoundError(f"`resume`: {p} is not a checkpoint folder (no state.pt)")
    return p


def rng_state() -> dict[str, Any]:
    st: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def save_checkpoint(
    out_dir: str | os.PathLike[str],
    step: int,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    info: DistInfo,
    *,
    extra: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Save a checkpoint after optimizer step ``step`` (a collective call: every rank enters).

    ``config`` (the run's resolved config) goes to ``meta.json`` so that a resume can be checked.
    """
    final = checkpoint_dir(out_dir) / f"{PREFIX}{step:08d}"
    tmp = final.with_name(final.name + ".tmp")
    model_sd, optim_sd = get_state_dict(module, optimizer, options=_FULL)  # collective under FSDP
    if info.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(info)
    torch.save(rng_state(), tmp / f"rng_rank{info.rank}.pt")
    if info.is_main:
        torch.save({"step": step, "model": model_sd, "optimizer": optim_sd, "scheduler": scheduler.state_dict(),
                    "world_size": info.world_size, **(extra or {})}, tmp / "state.pt")
        (tmp / META).write_text(json.dumps({"step": step, "world_size": info.world_size, "config": config or {}},
                                           indent=2), encoding="utf-8")
    barrier(info)
    if info.is_main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in list_checkpoints(out_dir)[:-keep] if keep else []:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("checkpoint saved: %s", final)
    barrier(info)
    return final


def load_checkpoint(
    path: str | os.PathLike[str],
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    info: DistInfo,
) -> dict[str, Any]:
    """Restore everything saved by :func:`save_checkpoint`; returns the saved dict (step, data position…)."""
    p = Path(path)
    state = torch.load(p / "state.pt", map_location="cpu", weights_only=False)
    if state.get("world_size", 1) != info.world_size:
        logger.warning("checkpoint was written with %s processes, resuming with %d: data order differs",
                       state.get("world_size"), info.world_size)
    set_state_dict(module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(state["scheduler"])
    rng_file = p / f"rng_rank{info.rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    logger.info("resumed from %s (step %d)", p, state["step"])
    return state
