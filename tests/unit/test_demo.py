from __future__ import annotations

import re

from ledom_reason.cli import main


def test_demo_runs_and_prints_table(capsys):
    assert main(["demo", "--problems", "2", "--variants", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("chosen answer") == 2
    assert out.count("<- chosen") == 2
    assert "gold" in out
    m = re.search(r"picked the right answer on (\d)/2 problems", out)
    assert m is not None
