"""The public API is pinned, and `import ledom_reason` stays light."""

from __future__ import annotations

import subprocess
import sys

import ledom_reason

EXPECTED_ALL = [
    "Pair", "PairScore", "RemoteScorer", "ReverseScorer", "Scorer", "ScorerConfig", "__version__",
    "normalize_pairs", "reverse_reward", "rewards",
]


def test_all_is_pinned():
    assert sorted(ledom_reason.__all__) == sorted(EXPECTED_ALL)
    for name in ("PairScore", "Scorer", "ReverseScorer", "ScorerConfig", "reverse_reward"):
        assert getattr(ledom_reason, name) is not None


def test_import_is_light():
    code = "import sys, ledom_reason; print([m for m in ('torch','transformers','fastapi','dspy','langchain_core','vllm') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
