"""Training configs: dataclasses with help metadata and validation in ``__post_init__``.

A run is described by one dataclass (:class:`PretrainConfig`, :class:`FinetuneConfig` or
:class:`TokenizerConfig`). Every field becomes a command-line option through transformers'
``HfArgumentParser`` (:mod:`ledom_reason.training.parser`: ``--config recipe.yaml`` plus options,
the options winning); the resolved config is written to ``<out_dir>/train_config.json`` with every
run. This module itself imports neither torch nor transformers.

Example:
    >>> from ledom_reason.training.config import PretrainConfig
    >>> cfg = PretrainConfig(inputs=["corpus.txt"], tokenizer="tok/", out_dir="/tmp/x", max_steps=10)
    >>> cfg.max_steps, cfg.direction
    (10, 'reverse')
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ledom_reason.reverse import check_bos_setting

Direction = Literal["reverse", "forward"]
DIRECTIONS = ("reverse", "forward")


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A field with ``help`` metadata; extra keywords go to ``argparse.add_argument`` (HfArgumentParser)."""
    if isinstance(default, list | dict):
        return field(default_factory=functools.partial(copy.copy, default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def check_field_types(obj: Any) -> None:
    """Raise ``ValueError`` naming the field whose value does not fit its annotation.

    Values from a YAML recipe reach the dataclass without argparse's conversion, so this catches
    e.g. ``max_steps: 1.5`` or ``direction: sideways``. Two harmless YAML readings are normalised:
    an ``int`` for a ``float`` field, and ``true``/``false`` (booleans) for a string choice field.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        tp, v, name = hints[f.name], getattr(obj, f.name), f.name
        origin = typing.get_origin(tp)
        if origin is Literal:
            choices = typing.get_args(tp)
            if isinstance(v, bool) and str(v).lower() in choices:
                setattr(obj, name, str(v).lower())
            elif v not in choices:
                raise ValueError(f"`{name}` must be one of {list(choices)}, got {v!r}")
        elif origin is list:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"`{name}` must be a list of strings, got {v!r}")
        elif tp is bool:
            if not isinstance(v, bool):
                raise ValueError(f"`{name}` must be true or false, got {v!r}")
        elif tp is int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"`{name}` must be an integer, got {v!r}")
        elif tp is float:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"`{name}` must be a number, got {v!r}")
            setattr(obj, name, float(v))
        elif tp is str and not isinstance(v, str):
            raise ValueError(f"`{name}` must be a string, got {v!r}")


@dataclass
class DataFields:
    """JSONL field names shared by the data options of every config."""

    text_field: str = _f("text", "JSONL field holding a plain document")
    question_field: str = _f("question", "JSONL field holding the question of a (question, solution) row")
    solution_fields: list[str] = _f(["solution", "answer"], "JSONL fields tried in order for the solution "  # noqa: RUF009
                                    "(GSM8K rows use `answer`)")


@dataclass
class ModelShape:
    """Architecture of a model built from scratch (Qwen2 or Llama through ``transformers``)."""

    arch: Literal["qwen2", "llama"] = _f("qwen2", "model family: qwen2 or llama")
    hidden_size: int = _f(64, "hidden size d")
    num_layers: int = _f(2, "decoder layers L")
    num_heads: int = _f(2, "attention heads H (head dim = hidden_size / num_heads)")
    num_kv_heads: int = _f(1, "key/value heads (GQA); must divide num_heads")
    intermediate_size: int = _f(0, "MLP width; 0 = round(8/3 · hidden_size) to a multiple of 64")
    max_position_embeddings: int = _f(512, "model context; must be >= block_size")
    rope_theta: float = _f(10000.0, "RoPE base")
    tie_word_embeddings: bool = _f(False, "share the input embedding and the LM head")
    dropout: float = _f(0.0, "attention dropout probability")
    init_std: float = _f(0.02, "initializer range")


@dataclass
class TrainLoop:
    """Optimisation and run-control options shared by pretraining and fine-tuning."""

    out_dir: str = _f("", "output folder: checkpoints/, log.jsonl, train_config.json and the final HF model; "
                      "a used folder is refused unless --overwrite or --resume")
    overwrite: bool = _f(False, "delete a previous run in out_dir and start again")
    resume: str = _f("", "continue the run in out_dir from its newest checkpoint (`--resume` = latest) "
                     "or from this checkpoint folder", nargs="?", const="latest", metavar="latest|DIR")
    direction: Direction = _f("reverse", "reverse (LEDOM) or forward (the matched twin)")  # noqa: RUF009
    bos: str = _f("auto", "first token of each training input: auto (the tokenizer's BOS, if any), none, a token "
                  "such as '<s>', or tokenizer (its own special tokens); score with the same ScorerConfig.bos "
                  "(forward_bos for a forward twin); docs/checkpoints.md")
    seed: int = _f(0, "seed for init, data order and dropout")
    micro_batch_size: int = _f(8, "sequences per forward pass per process")
    grad_accum: int = _f(1, "micro-batches per optimizer step")
    max_steps: int = _f(100, "optimizer steps")
    lr: float = _f(1e-3, "peak learning rate")
    min_lr_ratio: float = _f(0.1, "final learning rate as a fraction of lr (cosine floor)")
    warmup_steps: int = _f(10, "linear warmup steps")
    weight_decay: float = _f(0.1, "AdamW weight decay (not applied to norms and biases)")
    beta1: float = _f(0.9, "AdamW beta1")
    beta2: float = _f(0.95, "AdamW beta2")
    grad_clip: float = _f(1.0, "max gradient norm (0 = off)")
    device: str = _f("auto", "auto, cpu, cuda, cuda:1")
    dtype: Literal["auto", "bfloat16", "float32"] = _f("auto", "autocast dtype: auto = bf16 on GPU, fp32 on CPU")
    compile: Literal["auto", "true", "false"] = _f("auto", "torch.compile the decoder; auto = on for CUDA only")
    activation_checkpointing: bool = _f(False, "recompute decoder layers in backward to save memory")
    loss_impl: Literal["auto", "chunked", "liger", "full"] = _f(
        "auto", "cross-entropy: chunked (never builds full logits), liger (fused, if installed), full; "
        "auto = liger on CUDA when installed, else chunked")
    loss_chunk_tokens: int = _f(4096, "rows of logits computed at once by the chunked loss")
    distributed: Literal["auto", "ddp", "fsdp"] = _f("auto", "under torchrun: ddp (default) or fsdp (FSDP2)")
    log_every: int = _f(10, "log every N steps")
    save_every: int = _f(0, "checkpoint every K steps and after the last one (0 = no checkpoints, "
                         "only the final model)")
    keep_checkpoints: int = _f(2, "how many recent checkpoints to keep")
    stop_after: int = _f(0, "end the process after this step without a final save, as if killed "
                          "(for resume tests)")
    peak_flops: float = _f(0.0, "peak FLOP/s per device for MFU; 0 = 989e12 on CUDA (H100 bf16), "
                           "no MFU on CPU")
    tensorboard: bool = _f(False, "also log to TensorBoard (if installed)")
    wandb_project: str = _f("", "also log to this W&B project (if installed)")


def _validate_loop(c: TrainLoop) -> None:
    check_field_types(c)
    if not c.out_dir:
        raise ValueError("`out_dir` is required")
    check_bos_setting(c.bos, "bos")
    if c.overwrite and c.resume:
        raise ValueError("`overwrite` and `resume` exclude each other: --overwrite deletes the run --resume continues")
    for name in ("micro_batch_size", "grad_accum", "max_steps", "log_every", "loss_chunk_tokens"):
        if getattr(c, name) < 1:
            raise ValueError(f"`{name}` must be >= 1, got {getattr(c, name)}")
    for name in ("warmup_steps", "save_every", "keep_checkpoints", "stop_after"):
        if getattr(c, name) < 0:
            raise ValueError(f"`{name}` must be >= 0, got {getattr(c, name)}")
    if not c.lr > 0:
        raise ValueError(f"`lr` must be > 0, got {c.lr}")
    if not 0 <= c.min_lr_ratio <= 1:
        raise ValueError(f"`min_lr_ratio` must be in [0, 1], got {c.min_lr_ratio}")


@dataclass
class PretrainConfig(TrainLoop, ModelShape, DataFields):
    """Pretrain a reverse (or forward) causal LM from scratch.

    > Data: ``inputs`` (text files, JSONL with ``text`` or ``question`` + ``solution``/``answer``;
    ``PATH:WEIGHT`` to up/down-sample a source), ``tokenizer``, ``block_size``, ``doc_split``.
    > Model: ``arch``, ``hidden_size``, ``num_layers``, ``num_heads``, ``num_kv_heads`` …
    > Training: the :class:`TrainLoop` fields (optimizer, schedule, precision, checkpoints).
    """

    inputs: list[str] = _f([], "input files; `PATH:WEIGHT` sets a mixing weight (default 1)")  # noqa: RUF009
    tokenizer: str = _f("", "tokenizer folder (from `ledom-reason train tokenizer` or any HF tokenizer)")
    block_size: int = _f(256, "tokens per training sequence (documents are packed into blocks)")
    doc_split: Literal["blank_line", "line", "file"] = _f(
        "blank_line", "how a text file splits into documents")
    doc_mask: bool = _f(True, "reset position ids per document so attention stays inside documents "
                        "(transformers builds the packed-sequence mask); false = plain causal over the block")
    data_cache_dir: str = _f("", "where tokenized memory-mapped data goes (default: <out_dir>/data)")
    max_docs_per_input: int = _f(0, "read at most N documents per input (0 = all)")

    def __post_init__(self) -> None:
        _validate_loop(self)
        if not self.inputs:
            raise ValueError("`inputs` must list at least one file")
        if not self.tokenizer:
            raise ValueError("`tokenizer` is required (a folder)")
        if self.block_size < 2:
            raise ValueError(f"`block_size` must be >= 2, got {self.block_size}")
        if self.max_position_embeddings < self.block_size:
            raise ValueError("`max_position_embeddings` must be >= `block_size`")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("`num_heads` must divide `hidden_size` and `num_kv_heads` must divide `num_heads`")


@dataclass
class FinetuneConfig(TrainLoop, DataFields):
    """Fine-tune a reverse checkpoint into a verifier on (question, solution) pairs.

    Reverse: input = ``build_reverse_ids(q, s)``, loss on the question tokens only (the scoring
    objective). Forward: input = ``build_forward_seq(tok, q, s)``, loss on the solution tokens only.

    > Data: ``inputs`` (JSONL), field names, ``max_length``, ``max_examples``.
    > Model: ``model`` (HF folder), ``lora`` / ``lora_r`` / ``lora_alpha`` / ``lora_merge``.
    > Training: the :class:`TrainLoop` fields; defaults differ: ``lr=5e-5``, ``warmup_steps=20``.
    """

    model: str = _f("", "the checkpoint folder to start from (HF folder with tokenizer)")
    inputs: list[str] = _f([], "JSONL files of (question, solution) rows")  # noqa: RUF009
    max_length: int = _f(0, "max tokens per example; 0 = the model's max_position_embeddings")
    max_examples: int = _f(0, "use at most N examples (0 = all)")
    lora: bool = _f(False, "train LoRA adapters (peft) instead of all weights")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    lora_dropout: float = _f(0.0, "LoRA dropout")
    lora_targets: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],  # noqa: RUF009
                                 "module names LoRA wraps")
    lora_merge: bool = _f(True, "merge the adapters and save a plain HF folder (loads in ReverseScorer); "
                          "false = save the adapter only")
    lr: float = _f(5e-5, "peak learning rate")
    warmup_steps: int = _f(20, "linear warmup steps")

    def __post_init__(self) -> None:
        _validate_loop(self)
        if not self.model:
            raise ValueError("`model` is required (a reverse checkpoint folder)")
        if not self.inputs:
            raise ValueError("`inputs` must list at least one JSONL file")
        if self.max_length < 0 or self.max_examples < 0:
            raise ValueError("`max_length` and `max_examples` must be >= 0")
        if self.lora and self.lora_r < 1:
            raise ValueError(f"`lora_r` must be >= 1, got {self.lora_r}")


@dataclass
class TokenizerConfig(DataFields):
    """Train a byte-level BPE tokenizer (BOS/EOS/PAD) on the training inputs."""

    inputs: list[str] = _f([], "text or JSONL files")  # noqa: RUF009
    out_dir: str = _f("", "output tokenizer folder; a used folder is refused unless --overwrite")
    overwrite: bool = _f(False, "replace a tokenizer already in out_dir")
    vocab_size: int = _f(8192, "vocabulary size (special tokens included)")
    max_chars: int = _f(0, "read at most N characters in all (0 = everything)")
    min_frequency: int = _f(2, "minimum pair frequency for a merge")

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.inputs:
            raise ValueError("`inputs` must list at least one file")
        if not self.out_dir:
            raise ValueError("`out_dir` is required")
        if self.vocab_size < 260:
            raise ValueError(f"`vocab_size` must be >= 260 (256 bytes + specials), got {self.vocab_size}")


def save_config(cfg: Any, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as JSON (logged in full with each run)."""
    from ledom_reason.io import atomic_open

    with atomic_open(path) as f:
        json.dump(dataclasses.asdict(cfg), f, indent=2)
