"""Training configs: dataclasses with help metadata, YAML loading and ``--key=value`` overrides.

A run is described by one dataclass (:class:`PretrainConfig`, :class:`FinetuneConfig` or
:class:`TokenizerConfig`). ``load_config(cls, yaml_path, overrides)`` reads a recipe
(``recipes/*.yaml``) and applies command-line overrides on top, so recipes and flags parse into the
same object; the resolved config is written to ``<out_dir>/config.json`` with every run.

Example:
    >>> from ledom_reason.training.config import PretrainConfig, apply_overrides
    >>> cfg = apply_overrides(PretrainConfig(out_dir="/tmp/x"), ["--max_steps=10", "--direction=forward"])
    >>> cfg.max_steps, cfg.direction
    (10, 'forward')
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from ledom_reason.reverse import check_bos_setting

Direction = Literal["reverse", "forward"]
DIRECTIONS = ("reverse", "forward")
C = TypeVar("C")


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


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

    out_dir: str = _f("", "output folder: checkpoints/, log.jsonl, config.json and the final HF model")
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
    save_every: int = _f(0, "checkpoint every K steps (0 = only at the end)")
    keep_checkpoints: int = _f(2, "how many recent checkpoints to keep")
    resume: str = _f("", "'latest' (newest checkpoint in out_dir) or a checkpoint folder")
    stop_after: int = _f(0, "end the process after this step without a final save, as if killed "
                          "(for resume tests)")
    peak_flops: float = _f(0.0, "peak FLOP/s per device for MFU; 0 = 989e12 on CUDA (H100 bf16), "
                           "no MFU on CPU")
    tensorboard: bool = _f(False, "also log to TensorBoard (if installed)")
    wandb_project: str = _f("", "also log to this W&B project (if installed)")


def _validate_loop(c: TrainLoop) -> None:
    if not c.out_dir:
        raise ValueError("`out_dir` is required")
    if c.direction not in DIRECTIONS:
        raise ValueError(f"`direction` must be one of {DIRECTIONS}, got {c.direction!r}")
    check_bos_setting(c.bos, "bos")
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
    for name, choices in (("dtype", ("auto", "bfloat16", "float32")), ("compile", ("auto", "true", "false")),
                          ("loss_impl", ("auto", "chunked", "liger", "full")),
                          ("distributed", ("auto", "ddp", "fsdp"))):
        if str(getattr(c, name)) not in choices:
            raise ValueError(f"`{name}` must be one of {choices}, got {getattr(c, name)!r}")


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
        if self.doc_split not in ("blank_line", "line", "file"):
            raise ValueError(f"`doc_split` must be blank_line, line or file, got {self.doc_split!r}")


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
    out_dir: str = _f("", "output tokenizer folder")
    vocab_size: int = _f(8192, "vocabulary size (special tokens included)")
    max_chars: int = _f(0, "read at most N characters in all (0 = everything)")
    min_frequency: int = _f(2, "minimum pair frequency for a merge")

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("`inputs` must list at least one file")
        if not self.out_dir:
            raise ValueError("`out_dir` is required")
        if self.vocab_size < 260:
            raise ValueError(f"`vocab_size` must be >= 260 (256 bytes + specials), got {self.vocab_size}")


# ---------------------------------------------------------------------------------------- parsing
def _coerce(tp: Any, raw: Any, name: str) -> Any:
    """Convert a YAML value or a command-line string to the field type ``tp``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        val = str(raw).lower() if isinstance(raw, bool) else raw
        if val not in choices:
            raise ValueError(f"`{name}` must be one of {choices}, got {raw!r}")
        return val
    if origin in (list, typing.List):  # noqa: UP006
        (inner,) = typing.get_args(tp) or (str,)
        items = raw if isinstance(raw, list) else [s for s in str(raw).split(",") if s]
        return [_coerce(inner, x, name) for x in items]
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        return None if raw in (None, "None", "none", "") else _coerce(inner, raw, name)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        s = str(raw).lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"`{name}` must be a boolean, got {raw!r}")
    if tp in (int, float):
        try:
            v = tp(float(raw)) if tp is int and isinstance(raw, str) and "e" in raw.lower() else tp(raw)
        except (TypeError, ValueError):
            raise ValueError(f"`{name}` must be {tp.__name__}, got {raw!r}") from None
        return v
    return str(raw) if raw is not None else raw


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def config_from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build ``cls`` from a mapping, coercing types; unknown keys raise ``ValueError``."""
    types_ = _field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for {cls.__name__}")
    return cls(**{k: _coerce(types_[k], v, k) for k, v in values.items()})


def parse_overrides(cls: type, overrides: list[str]) -> dict[str, Any]:
    """Parse ``--key=value`` / ``--key value`` / ``--flag`` tokens (dashes or underscores)."""
    types_ = _field_types(cls)
    out: dict[str, Any] = {}
    i = 0
    while i < len(overrides):
        tok = overrides[i]
        if not tok.startswith("--"):
            raise ValueError(f"override {tok!r} must look like --key=value")
        key, eq, val = tok[2:].partition("=")
        key = key.replace("-", "_")
        if key not in types_:
            raise ValueError(f"unknown option --{key} for {cls.__name__}")
        if not eq:
            nxt = overrides[i + 1] if i + 1 < len(overrides) else None
            if types_[key] is bool and (nxt is None or nxt.startswith("--")):
                val = "true"
            elif nxt is None:
                raise ValueError(f"--{key} needs a value")
            else:
                val, i = nxt, i + 1
        out[key] = val
        i += 1
    return out


def apply_overrides(cfg: C, overrides: list[str]) -> C:
    """Return a copy of ``cfg`` with ``--key=value`` overrides applied (and re-validated)."""
    values = dataclasses.asdict(cfg)  # type: ignore[call-overload]
    values.update(parse_overrides(type(cfg), overrides))
    return config_from_dict(type(cfg), values)


def read_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw key/value mapping of a YAML (or ``.json``) recipe."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        values = json.loads(text)
    else:
        from ledom_reason._optional import require

        values = require("yaml", "train").safe_load(text) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{p}: expected a mapping of config keys")
    return values


def load_config(cls: type[C], path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None,
                values: dict[str, Any] | None = None) -> C:
    """Load ``cls`` from a YAML (or JSON) recipe, then apply ``values`` and ``--key=value`` overrides.

    Raises:
        ValueError: unknown keys, bad values, or a config that fails validation.
        FileNotFoundError: ``path`` does not exist.
    """
    merged: dict[str, Any] = read_recipe(path) if path else {}
    merged.update(values or {})
    merged.update(parse_overrides(cls, overrides or []))
    return config_from_dict(cls, merged)


def config_help(cls: type) -> str:
    """One line per field: name, type, default and help (for ``--help``)."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"  --{f.name}={default!r}: {f.metadata.get('help', '')}")
    return "\n".join(lines)


def save_config(cfg: Any, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as JSON (logged in full with each run)."""
    from ledom_reason.io import atomic_open

    with atomic_open(path) as f:
        json.dump(dataclasses.asdict(cfg), f, indent=2)
