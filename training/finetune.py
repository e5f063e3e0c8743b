"""Fine-tune a reverse checkpoint into a verifier on (question, solution) pairs.

Reverse direction: input = ``build_reverse_ids(q_ids, s_ids)`` = ``[BOS] + rev(s) + rev(q)``, loss
**only** on the question tokens (target positions ``score_start..end``) — exactly what
:class:`ledom_reason.ReverseScorer` scores. Forward direction (``--direction forward``, the twin):
input = ``build_forward_seq(tok, q, s)``, loss only on the solution tokens. Full fine-tune or LoRA
(peft); with ``lora_merge`` (default) the adapters are merged and ``<out_dir>`` is a plain Hugging
Face folder that ``ReverseScorer.from_pretrained`` loads.

CLI: ``ledom-reason train finetune --config recipes/tiny_finetune.yaml --model DIR --out_dir OUT``. A
used ``out_dir`` is refused unless ``--overwrite`` or ``--resume`` (:mod:`ledom_reason.training.rundir`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledom_reason.training.config import FinetuneConfig

logger = logging.getLogger(__name__)


def load_base(cfg: FinetuneConfig) -> tuple[Any, Any]:
    """The starting model (fp32; autocast supplies bf16) and its tokenizer, local files only."""
    from transformers import AutoModelForCausalLM

    from ledom_reason.training.tokenizer import load_tokenizer

    path = Path(cfg.model)
    if not (path / "config.json").exists():
        from ledom_reason.models import resolve_model_name

        resolved = resolve_model_name(cfg.model)
        if resolved is None:
            raise FileNotFoundError(f"`model`: {path} is not a Hugging Face model folder (no config.json)")
        path = resolved
    import torch

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    model.config.use_cache = False
    return model, load_tokenizer(path)


def apply_lora(model: Any, cfg: FinetuneConfig) -> Any:
    """Wrap ``model`` with LoRA adapters (only they train)."""
    from ledom_reason._optional import require

    peft = require("peft", "train")
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in cfg.lora_targets if t in names]
    if not targets:
        raise ValueError(f"`lora_targets` {cfg.lora_targets} match no module of the model")
    lcfg = peft.LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                           target_modules=targets, task_type="CAUSAL_LM")
    return peft.get_peft_model(model, lcfg)


def run_finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune; returns ``{"out_dir", "losses", "stopped_early", "num_examples"}``."""
    from ledom_reason.training.data import ShuffledStream, build_pair_examples, collate_examples, read_pairs
    from ledom_reason.training.distributed import barrier, cleanup, init_distributed
    from ledom_reason.training.rundir import begin_run, plan_run
    from ledom_reason.training.trainer import train

    info = init_distributed(cfg.device)
    try:
        plan = plan_run(cfg)  # every process checks before any writes
        barrier(info)
        out = plan.out_dir
        model, tokenizer = load_base(cfg)
        max_len = cfg.max_length or int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
        examples = build_pair_examples(read_pairs(cfg.inputs, cfg, cfg.max_examples), tokenizer, cfg.direction,
                                       max_length=max_len, bos=cfg.bos)
        if not examples:
            raise ValueError("`inputs`: no usable (question, solution) pairs")
        if info.is_main:
            begin_run(plan, cfg)
            logger.info("%d examples (%s direction)", len(examples), cfg.direction)
        stream = ShuffledStream([len(examples)], seed=cfg.seed)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        b, a, w = cfg.micro_batch_size, cfg.grad_accum, info.world_size

        def batches(step: int) -> list[dict[str, Any]]:
            g = b * a * w
            out_b = []
            for m in range(a):
                start = step * g + (m * w + info.rank) * b
                out_b.append(collate_examples([examples[stream[i][1]] for i in range(start, start + b)], pad))
            return out_b

        if cfg.lora:
            model = apply_lora(model, cfg)

        def save_final(m: Any) -> None:
            if cfg.lora and cfg.lora_merge:
                m = m.merge_and_unload()
            m.save_pretrained(out)
            tokenizer.save_pretrained(out)
            logger.info("fine-tuned model saved to %s", out)

        res = train(cfg, model, batches, info, resume_from=plan.resume_from, save_final=save_final)
        return {"out_dir": out, "losses": res.losses, "stopped_early": res.stopped_early,
                "num_examples": len(examples)}
    finally:
        cleanup(info)


def finetune(cfg: FinetuneConfig) -> Path:
    """Run fine-tuning; returns the output folder."""
    return run_finetune(cfg)["out_dir"]


def make_parser() -> Any:
    """The ``python -m ledom_reason.training.finetune`` parser (:class:`~ledom_reason.training.parser.RecipeParser`)."""
    from ledom_reason.training.parser import RecipeParser

    return RecipeParser(FinetuneConfig, prog="python -m ledom_reason.training.finetune",
                        description="Fine-tune a reverse model into a verifier; options override the recipe.")


def main(argv: Sequence[str] | None = None) -> int:
    from ledom_reason.training.parser import run_main

    return run_main(make_parser(), finetune, argv)


if __name__ == "__main__":
    sys.exit(main())
