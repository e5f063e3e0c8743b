"""Pretrain a reverse (LEDOM) or forward causal LM from scratch.

CLI: ``ledom-reason train pretrain --config recipes/tiny_pretrain.yaml [--key value …] [--direction forward]``
or ``python -m ledom_reason.training.pretrain …``; multi-GPU / multi-process:
``torchrun --nproc_per_node N -m ledom_reason.training.pretrain --config …``. A used ``out_dir`` is
refused unless ``--overwrite`` or ``--resume`` (:mod:`ledom_reason.training.rundir`).

Output: ``<out_dir>/`` is a Hugging Face folder (``config.json``, weights, tokenizer) that
``ReverseScorer.from_pretrained`` and ``AutoModelForCausalLM.from_pretrained`` load, plus
``log.jsonl``, ``train_config.json`` and ``checkpoints/``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledom_reason.training.config import PretrainConfig

logger = logging.getLogger(__name__)


def make_batch_fn(data: Any, cfg: PretrainConfig, rank: int, world: int) -> Any:
    """``step -> micro-batches``: step ``s`` uses global samples ``[s·G, (s+1)·G)``, ``G = B·A·W``."""
    b, a = cfg.micro_batch_size, cfg.grad_accum
    g = b * a * world

    def batches(step: int) -> list[dict[str, Any]]:
        return [data.batch(step * g + (m * world + rank) * b, b) for m in range(a)]

    return batches


def pretrain(cfg: PretrainConfig) -> Path:
    """Run pretraining; returns the output folder (the final model lives there)."""
    return run_pretrain(cfg).get("out_dir")  # type: ignore[return-value]


def run_pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    """Like :func:`pretrain` but returns ``{"out_dir", "losses", "stopped_early", "n_params"}`` (for tests)."""
    from ledom_reason.training.data import build_pretrain_data
    from ledom_reason.training.distributed import barrier, cleanup, init_distributed
    from ledom_reason.training.model import build_model, count_params, model_flops_per_token
    from ledom_reason.training.rundir import begin_run, plan_run
    from ledom_reason.training.tokenizer import load_tokenizer
    from ledom_reason.training.trainer import train

    info = init_distributed(cfg.device)
    try:
        plan = plan_run(cfg)  # every process checks before any writes
        barrier(info)
        out = plan.out_dir
        tokenizer = load_tokenizer(cfg.tokenizer)
        if info.is_main:
            begin_run(plan, cfg)
            data = build_pretrain_data(cfg, tokenizer)  # tokenizes once; other ranks reuse the cache
        barrier(info)
        if not info.is_main:
            data = build_pretrain_data(cfg, tokenizer)
        model = build_model(cfg, tokenizer, seed=cfg.seed)
        n_params = count_params(model)
        if info.is_main:
            logger.info("model: %.2fM parameters (%.2fM for FLOPs); %d blocks per epoch", n_params["total"] / 1e6,
                        n_params["flops"] / 1e6, data.stream.epoch_size)

        def save_final(m: Any) -> None:
            m.save_pretrained(out)
            tokenizer.save_pretrained(out)
            logger.info("final model saved to %s", out)

        res = train(cfg, model, make_batch_fn(data, cfg, info.rank, info.world_size), info,
                    resume_from=plan.resume_from, flops_per_token=model_flops_per_token(model, cfg.block_size),
                    save_final=save_final)
        return {"out_dir": out, "losses": res.losses, "stopped_early": res.stopped_early,
                "n_params": n_params["total"]}
    finally:
        cleanup(info)


def make_parser() -> Any:
    """The ``python -m ledom_reason.training.pretrain`` parser (:class:`~ledom_reason.training.parser.RecipeParser`)."""
    from ledom_reason.training.parser import RecipeParser

    return RecipeParser(PretrainConfig, prog="python -m ledom_reason.training.pretrain",
                        description="Pretrain a reverse (or forward) LM from scratch; options override the recipe.")


def main(argv: Sequence[str] | None = None) -> int:
    from ledom_reason.training.parser import run_main

    return run_main(make_parser(), pretrain, argv)


if __name__ == "__main__":
    sys.exit(main())
