"""The learning-rate schedule is transformers' cosine-with-floor; compared with the formula it replaced."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from ledom_reason.training.trainer import make_scheduler


def old_multiplier(s: int, warmup: int, total: int, min_ratio: float) -> float:
    """The hand-written schedule this project used before transformers' (kept here as the reference)."""
    if warmup and s < warmup:
        return (s + 1) / warmup
    progress = min(1.0, (s - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _lrs(lr, warmup, total, ratio):
    """The learning rate each optimizer step runs at, as the trainer steps the scheduler."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_scheduler(opt, SimpleNamespace(warmup_steps=warmup, max_steps=total, min_lr_ratio=ratio))
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out, opt, sched


@pytest.mark.parametrize(("warmup", "total", "ratio"), [(20, 200, 0.1), (10, 100, 0.0), (0, 50, 0.1), (5, 6, 0.5)])
def test_schedule_against_the_old_formula(warmup, total, ratio):
    lr = 3e-3
    new, _, _ = _lrs(lr, warmup, total, ratio)
    old = [lr * old_multiplier(s, warmup, total, ratio) for s in range(total)]
    # warmup: identical, (s + 1) / W · lr — the first step does not run at lr = 0
    assert new[:warmup] == pytest.approx(old[:warmup], rel=1e-12)
    # decay: the one documented difference — transformers' cosine starts one step later in its phase, so
    # step s runs at the old schedule's step s + 1 (the old one ran the peak twice, at W - 1 and at W)
    assert new[warmup:] == pytest.approx([lr * old_multiplier(s + 1, warmup, total, ratio)
                                          for s in range(warmup, total)], rel=1e-12)
    assert new[-1] == pytest.approx(ratio * lr, rel=1e-12, abs=1e-18)  # the last step runs at the floor
    assert max(abs(a - b) for a, b in zip(new, old, strict=True)) <= lr * (1 - ratio) * math.pi / max(1, total - warmup)


def test_a_restored_schedule_continues_where_it_stopped():
    cfg = SimpleNamespace(warmup_steps=4, max_steps=20, min_lr_ratio=0.1)
    full, _, _ = _lrs(1e-3, 4, 20, 0.1)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = make_scheduler(opt, cfg)
    for _ in range(8):
        opt.step()
        sched.step()
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched2 = make_scheduler(opt2, cfg)  # as a resumed run builds it, then loads the checkpoint's state
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    rest = []
    for _ in range(12):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert rest == full[8:]
