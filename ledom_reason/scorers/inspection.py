"""``ledom-reason inspect``: what a checkpoint is and whether it reads text backwards.

:func:`inspect_checkpoint` loads a model folder (or bundled name) the way the scorer does and
reports its facts (:class:`~ledom_reason.scorers.checkpoint.CheckpointFacts`), the direction check
(:func:`~ledom_reason.scorers.direction.direction_check`) and plain-words warnings; with a forward
model it checks that one too. :meth:`InspectReport.render` is the text the CLI prints,
:meth:`InspectReport.to_dict` its ``--json`` object.

Example:
    >>> from ledom_reason.scorers.inspection import inspect_checkpoint
    >>> report = inspect_checkpoint("ledom-tiny", device="cpu")  # doctest: +SKIP
    >>> report.direction.direction, report.direction.best_layout  # doctest: +SKIP
    ('reverse', 'auto')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ledom_reason.scorers.checkpoint import CheckpointFacts, checkpoint_facts
from ledom_reason.scorers.direction import Direction, DirectionCheck, direction_check
from ledom_reason.scorers.encoding import check_vocabulary

__all__ = ["InspectReport", "ModelReport", "inspect_checkpoint", "inspect_model"]


@dataclass
class ModelReport:
    """One model: its facts, its direction check and what is wrong with it."""

    name: str
    role: Direction
    facts: CheckpointFacts
    direction: DirectionCheck
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, **self.facts.to_dict(),
                "direction_check": self.direction.to_dict(), "warnings": list(self.warnings)}


@dataclass
class InspectReport:
    """The reverse model's report, and the forward model's when one was given."""

    model: ModelReport
    forward: ModelReport | None = None

    @property
    def direction(self) -> DirectionCheck:
        """The reverse model's direction check."""
        return self.model.direction

    @property
    def warnings(self) -> list[str]:
        """Every warning, the reverse model's first."""
        return self.model.warnings + (self.forward.warnings if self.forward is not None else [])

    def to_dict(self) -> dict[str, Any]:
        """One JSON object: ``direction`` (the reverse model's verdict), ``best_layout``, ``model``, ``forward_model``."""
        return {"direction": self.direction.direction, "best_layout": self.direction.best_layout,
                "margin": self.direction.margin, "model": self.model.to_dict(),
                "forward_model": self.forward.to_dict() if self.forward is not None else None,
                "warnings": self.warnings}

    def render(self) -> str:
        """Human-readable report (what ``ledom-reason inspect`` prints)."""
        parts = [_render_model(self.model)]
        if self.forward is not None:
            parts.append(_render_model(self.forward))
        if self.warnings:
            parts.append("\n".join(f"WARNING: {w}" for w in self.warnings))
        return "\n\n".join(parts)


def _render_model(r: ModelReport) -> str:
    f, d = r.facts, r.direction
    special = ", ".join(f"{k} {v['token']!r} ({v['id']})" for k, v in f.special_tokens.items() if v) or "none"
    lines = [
        f"{r.role} model: {r.name}",
        f"  architecture      {f.architecture} ({f.model_type}), {f.parameters / 1e6:.1f}M parameters, {f.dtype}",
        f"  vocabulary        len(tokenizer) = {f.tokenizer_len}, embedding rows = {f.embedding_rows}"
        + (f"  ({len(f.ids_outside_table)} token id(s) outside the table)" if f.ids_outside_table else ""),
        f"  tokenizer         {f.tokenizer_class}; adds by itself: {', '.join(f.adds_special_tokens) or 'nothing'}",
        f"  context length    {f.context_length}",
        f"  special tokens    {special}",
        f"  chat template     {'yes' if f.chat_template else 'no'}",
        f"  {d.summary()}",
        "  mean NLL per token (nats)   reversed   reading order",
    ]
    for x in d.layouts:
        first = f" (first token {x.first_token!r})" if x.first_token else " (nothing first)"
        lines.append(f"    bos={x.layout!r:<12}{first:<28} {x.reverse_nll:8.3f}   {x.forward_nll:8.3f}")
    if r.role == "reverse":
        lines.append(f"  lowest reversed NLL: bos={d.best_layout!r} (ScorerConfig(bos=...), --bos)")
    return "\n".join(lines)


def inspect_model(model: Any, tokenizer: Any, *, name: str = "model", role: Direction = "reverse") -> ModelReport:
    """Facts, direction check and warnings for a loaded model (``role``: what it is expected to be)."""
    facts = checkpoint_facts(model, tokenizer)
    check = direction_check(model, tokenizer)
    warnings = []
    msg = check.warning(role)
    if msg:
        warnings.append(f"{name}: {msg}")
    try:
        check_vocabulary(tokenizer, facts.embedding_rows, what=f"{role} model")
    except ValueError as e:
        warnings.append(f"{name}: {e}")
    else:
        if facts.ids_outside_table:
            names = ", ".join(f"{i} {tokenizer.convert_ids_to_tokens(i)!r}" for i in facts.ids_outside_table[:5])
            warnings.append(f"{name}: token(s) {names} are outside the embedding table ({facts.embedding_rows} rows; "
                            f"len(tokenizer) = {facts.tokenizer_len}): a pair whose text contains one is rejected, "
                            "padding avoids them")
    if facts.reload_note:
        warnings.append(f"{name}: {facts.reload_note}")
    return ModelReport(name=name, role=role, facts=facts, direction=check, warnings=warnings)


def inspect_checkpoint(
    model: str | os.PathLike[str],
    *,
    forward_model: str | os.PathLike[str] | None = None,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    use_fast: bool | None = None,
) -> InspectReport:
    """Load ``model`` (and ``forward_model``) as the scorer would and report on them.

    Args:
        model: The reverse model: a local folder or a bundled name (``ledom-tiny``).
        forward_model: Optionally the forward model meant to go with it.
        device / dtype: As for ``ReverseScorer.from_pretrained`` (default CUDA if available, fp32 on CPU).
        trust_remote_code / use_fast: Passed to ``from_pretrained`` (off / library default).
    """
    from ledom_reason.scorers.local import load_causal_lm, resolve_device, resolve_dtype

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    m, tok = load_causal_lm(model, None, dev, dt, trust_remote_code=trust_remote_code, use_fast=use_fast)
    report = InspectReport(inspect_model(m, tok, name=str(model), role="reverse"))
    if forward_model is not None:
        fm, ftok = load_causal_lm(forward_model, None, dev, dt, trust_remote_code=trust_remote_code,
                                  use_fast=use_fast)
        report.forward = inspect_model(fm, ftok, name=str(forward_model), role="forward")
        if ftok.get_vocab() != tok.get_vocab():
            report.forward.warnings.append(f"{forward_model}: its vocabulary differs from the reverse model's "
                                           "(fine for scoring, but not the matched twin LEDOM's reward assumes)")
    return report
