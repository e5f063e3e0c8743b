from __future__ import annotations

import re

from ledom_reason.cli import main


def test_demo_runs_with_bundled_model_and_prints_table(capsys):
    assert main(["demo", "--problems", "2", "--variants", "2"]) == 0
    out = capsys.readouterr().out
    assert "NOTE" not in out  # the bundled ledom-tiny is used, not the random placeholder
    assert out.count("chosen answer") == 2
    assert out.count("<- chosen") == 2
    assert "gold" in out and "fwd/token" in out
    m = re.search(r"right answer picked \(of 2 problems.*reward λ=0\.9: (\d), reverse only: (\d), forward only: (\d)", out)
    assert m is not None and all(0 <= int(x) <= 2 for x in m.groups())


def test_demo_lam_option(capsys):
    assert main(["demo", "--problems", "1", "--variants", "2", "--lam", "1"]) == 0
    assert "reward λ=1" in capsys.readouterr().out
