"""The optimisation loop shared by pretraining and fine-tuning (nanoGPT-style, one readable function).

Device and dtype are decided once; bf16 autocast on CUDA, fp32 on CPU. AdamW (no decay on norms
and biases), linear warmup then cosine decay to ``min_lr_ratio · lr`` (transformers' scheduler),
gradient accumulation (DDP gradient sync only on the last micro-batch), gradient clipping,
optional ``torch.compile`` of the decoder and activation checkpointing. The batches of optimizer step ``s`` are a pure
function of ``s`` (see :mod:`ledom_reason.training.data`), so the data position is the step
number and ``resume`` reproduces an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch.nn.parallel import DistributedDataParallel

from ledom_reason.training.checkpoint import load_checkpoint, save_checkpoint
from ledom_reason.training.distributed import DistInfo, all_reduce_sum, resolve_device, wrap_model
from ledom_reason.training.logs import MetricsLogger
from ledom_reason.training.loss import LossModule, resolve_loss_impl
from ledom_reason.training.model import base_model

logger = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]
BatchFn = Callable[[int], list[Batch]]
"""``step -> this rank's micro-batches`` (``input_ids``, ``targets``, optional ``position_ids``)."""

H100_BF16_PEAK = 989e12


@dataclass
class TrainResult:
    """What a training run returns."""

    steps_done: int
    losses: dict[int, float] = field(default_factory=dict)  # step → mean loss per target token
    stopped_early: bool = False
    model: torch.nn.Module | None = None  # the trained (unwrapped) model


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: Any) -> torch.optim.lr_scheduler.LambdaLR:
    """transformers' cosine schedule with warmup and a floor (``get_scheduler("cosine_warmup_with_min_lr")``).

    Optimizer step ``s`` (0-based) runs at ``lr · m(s)``: ``m(s) = (s + 1) / W`` during the ``W``
    warmup steps, then ``r + (1 − r) · ½ (1 + cos(π (s − W + 1) / (T − W)))`` with
    ``r = min_lr_ratio``, so the last step (``s = T − 1``) runs at exactly ``r · lr``.
    """
    from transformers import get_cosine_with_min_lr_schedule_with_warmup_lr_rate

    return get_cosine_with_min_lr_schedule_with_warmup_lr_rate(
        optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.max_steps, min_lr_rate=cfg.min_lr_ratio)


def make_optimizer(model: torch.nn.Module, cfg: Any, device: torch.device) -> torch.optim.Optimizer:
    """AdamW over trainable parameters; matrices decay, vectors (norms, biases) do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def _prepare(model: torch.nn.Module, cfg: Any, device: torch.device) -> None:
    model.to(device)
    model.train()
    if cfg.activation_checkpointing:
        base_model(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    use_compile = cfg.compile == "true" or (cfg.compile == "auto" and device.type == "cuda")
    if use_compile:
        compile_decoder_layers(model)


def compile_decoder_layers(model: torch.nn.Module) -> None:
    """``torch.compile`` each decoder layer in place (regional compilation: identical layers share one
    compiled graph, so compile time does not grow with depth; ``state_dict`` keys are unchanged)."""
    layers = base_model(model).get_decoder().layers
    for layer in layers:
        layer.compile()
    logger.info("torch.compile: %d decoder layers compiled", len(layers))


def train(
    cfg: Any,
    model: torch.nn.Module,
    batches: BatchFn,
    info: DistInfo,
    *,
    resume_from: Path | None = None,
    flops_per_token: int = 0,
    save_final: Callable[[torch.nn.Module], None] | None = None,
) -> TrainResult:
    """Run optimizer steps up to ``cfg.max_steps``, from ``resume_from`` when given.

    With ``cfg.save_every`` a checkpoint is written every ``save_every`` steps and after the last
    one (after ``save_final``), so a finished run can later be extended with a larger ``max_steps``.

    Args:
        cfg: A :class:`PretrainConfig` or :class:`FinetuneConfig`.
        model: The causal LM (plain ``transformers`` model or a peft wrapper), on CPU.
        batches: ``step -> micro-batches`` for this rank (``cfg.grad_accum`` of them).
        info: Distributed placement.
        resume_from: A checkpoint folder that :func:`ledom_reason.training.rundir.plan_run` accepted.
        flops_per_token: Training FLOPs per token for MFU (0 = do not report MFU).
        save_final: Called on the main process with the unwrapped model after the last step.
    """
    device = resolve_device(cfg.device, info)
    amp_dtype = resolve_dtype(cfg.dtype, device)
    _prepare(model, cfg, device)
    impl = resolve_loss_impl(cfg.loss_impl, device, base_model(model))
    module = wrap_model(LossModule(model, impl, cfg.loss_chunk_tokens), info, device, cfg.distributed)
    optimizer = make_optimizer(module, cfg, device)
    scheduler = make_scheduler(optimizer, cfg)
    start = 0
    if resume_from is not None:
        start = int(load_checkpoint(resume_from, module, optimizer, scheduler, info)["step"])
    peak = cfg.peak_flops or (H100_BF16_PEAK if device.type == "cuda" else 0.0)
    run_config = dataclasses.asdict(cfg)
    log = MetricsLogger(cfg.out_dir, enabled=info.is_main, total_steps=cfg.max_steps, start_step=start,
                        tensorboard=cfg.tensorboard, wandb_project=cfg.wandb_project, config=run_config)
    logger.info("training on %s (%s autocast), loss=%s, steps %d..%d", device, amp_dtype, impl, start, cfg.max_steps)
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype != torch.float32
                else contextlib.nullcontext())
    result = TrainResult(steps_done=start)
    t0, tokens_since = time.perf_counter(), 0
    try:
        for step in range(start, cfg.max_steps):
            micro = [{k: v.to(device, non_blocking=True) for k, v in b.items()} for b in batches(step)]
            n_local = sum(int((b["targets"] != -100).sum()) for b in micro)
            stats = torch.zeros(2, dtype=torch.float64, device=device)  # (loss sum, targets)
            for i, b in enumerate(micro):
                sync = i == len(micro) - 1 or not info.enabled or cfg.distributed == "fsdp"
                ctx = contextlib.nullcontext() if sync else cast(DistributedDataParallel, module).no_sync()
                with ctx:
                    with autocast:
                        loss_sum, n = module(b["input_ids"], b["targets"], b.get("position_ids"))
                    (loss_sum / max(n_local, 1)).backward()
                stats[0] += loss_sum.detach().double()
                stats[1] += n
            grad_norm = (torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                         if cfg.grad_clip > 0 else None)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            all_reduce_sum(stats, info)
            loss = float(stats[0] / stats[1].clamp(min=1))
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss is {loss} at step {step + 1}")
            result.losses[step + 1] = loss
            result.steps_done = step + 1
            tokens_since += sum(b["input_ids"].numel() for b in micro) * info.world_size
            log.advance()
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.max_steps:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                tps = tokens_since / dt
                row: dict[str, Any] = {"step": done, "loss": loss, "lr": scheduler.get_last_lr()[0],
                                       "tokens_per_s": tps, "target_tokens": int(stats[1])}
                if grad_norm is not None:
                    row["grad_norm"] = float(grad_norm)
                if peak and flops_per_token:
                    row["mfu"] = flops_per_token * tps / (peak * info.world_size)
                if device.type == "cuda":
                    row["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
                log.log(row)
                t0, tokens_since = time.perf_counter(), 0
            if cfg.save_every and done % cfg.save_every == 0 and done < cfg.max_steps:
                save_checkpoint(cfg.out_dir, done, module, optimizer, scheduler, info, extra={"data_position": done},
                                config=run_config, keep=cfg.keep_checkpoints)
            if cfg.stop_after and done >= cfg.stop_after and done < cfg.max_steps:
                logger.warning("stop_after=%d reached: stopping without a final save", cfg.stop_after)
                result.stopped_early = True
                return result
        if save_final is not None:
            _finalize(module, model, info, save_final)
        if cfg.save_every and result.steps_done == cfg.max_steps:
            save_checkpoint(cfg.out_dir, cfg.max_steps, module, optimizer, scheduler, info,
                            extra={"data_position": cfg.max_steps}, config=run_config, keep=cfg.keep_checkpoints)
        result.model = model
        return result
    finally:
        log.close()


def _finalize(module: torch.nn.Module, model: torch.nn.Module, info: DistInfo,
              save_final: Callable[[torch.nn.Module], None]) -> None:
    """Call ``save_final`` on the main process with a model holding the full weights."""
    if info.enabled and not isinstance(module, DistributedDataParallel):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        sd = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if info.is_main:
            from transformers import AutoModelForCausalLM

            full = AutoModelForCausalLM.from_config(model.config)
            full.load_state_dict({k.removeprefix("model."): v for k, v in sd.items()})
            save_final(full)
        return
    if info.is_main:
        save_final(model)


def final_dir(cfg: Any) -> Path:
    """Where the final Hugging Face folder goes: ``out_dir`` itself."""
    return Path(cfg.out_dir)
