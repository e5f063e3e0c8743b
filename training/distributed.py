"""Process groups under ``torchrun`` and model wrapping: DDP, or FSDP2 (``fully_shard``) when asked.

Single process (no ``WORLD_SIZE`` in the environment) needs nothing: every helper is a no-op.
Backend: NCCL on CUDA, gloo on CPU (the CPU smoke test runs ``torchrun --nproc_per_node 2``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from ledom_reason.training.loss import LossModule

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` → ``cuda:<local_rank>`` when CUDA is available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", info.local_rank)
    return dev


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Join the ``torchrun`` process group if there is one (idempotent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dev = resolve_device(device_name, info)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        logger.info("process group: rank %d of %d", info.rank, info.world_size)
    return info


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (in place) and return it."""
    if info.enabled:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(module: LossModule, info: DistInfo, device: torch.device, mode: str) -> torch.nn.Module:
    """Wrap the loss module for data parallelism.

    Args:
        module: A :class:`~ledom_reason.training.loss.LossModule`.
        info: From :func:`init_distributed`.
        device: This rank's device.
        mode: ``auto``/``ddp`` (DistributedDataParallel) or ``fsdp`` (FSDP2: each decoder layer,
            then the root, sharded with ``torch.distributed.fsdp.fully_shard``).
    """
    if not info.enabled:
        return module
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        from ledom_reason.training.model import base_model

        for layer in base_model(module.model).get_decoder().layers:
            fully_shard(layer)
        fully_shard(module)
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)
