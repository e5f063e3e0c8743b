"""Audit a model folder's tokenizer: vocabulary tokens its own pre-tokenizer can never produce.

A byte-level BPE learns merges under one pre-tokenizer; if the folder's saved tokenizer splits text
with another (transformers 5 rebuilds a Qwen2 folder's tokenizer with Qwen's rules: digits one by
one), tokens learned across those splits — e.g. ``12`` or ``Ġ100`` — become unreachable, and a model
pretrained with them is scored without them. For each folder this counts vocabulary tokens holding
two or more digits and how many of them the saved tokenizer can still produce (the token's own text
encodes back to that single token).

    python benchmarks/tokenizer_audit.py ledom-tiny ledom-tiny-forward --out benchmarks/results/tokenizer_audit.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def audit(name: str) -> dict:
    from ledom_reason.models import resolve_model_name
    from ledom_reason.scorers.checkpoint import load_tokenizer

    folder = Path(name) if Path(name).is_dir() else resolve_model_name(name)
    if folder is None:
        raise SystemExit(f"no such model folder or bundled name: {name}")
    tok = load_tokenizer(folder)
    multi = [(t, i) for t, i in tok.get_vocab().items() if re.search(r"\d\d", tok.convert_tokens_to_string([t]))]
    reachable = [t for t, i in multi if tok(tok.convert_tokens_to_string([t]), add_special_tokens=False)["input_ids"] == [i]]
    pre = json.loads(tok.backend_tokenizer.to_str()).get("pre_tokenizer") if hasattr(tok, "backend_tokenizer") else None
    return {"model": name, "tokenizer_class": type(tok).__name__, "vocab": len(tok),
            "multi_digit_tokens": len(multi), "reachable": len(reachable),
            "examples_unreachable": sorted(t for t, _ in multi if t not in set(reachable))[:10],
            "pre_tokenizer": json.dumps(pre)[:200]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("models", nargs="+", help="model folders or bundled names")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tokenizer_audit.json"))
    a = p.parse_args()
    from importlib.metadata import version

    result = {"date": dt.date.today().isoformat(), "transformers": version("transformers"),
              "tokenizers": version("tokenizers"), "models": [audit(m) for m in a.models]}
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    for m in result["models"]:
        print(f"{m['model']}: {m['tokenizer_class']}, {m['multi_digit_tokens']} multi-digit tokens, "
              f"{m['reachable']} reachable; e.g. unreachable {m['examples_unreachable'][:5]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
