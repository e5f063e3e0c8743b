"""The candidates file: one JSON object per problem.

Format (``candidates.jsonl``)::

    {"id": "gsm8k/test/0",            # optional; default: the line number ("line-1", ...)
     "question": "Janet's ducks ...",  # required
     "candidates": ["...", "..."],     # required: N sampled solutions (non-empty strings)
     "gold": "18",                     # optional: gold final answer (else looked up by --dataset)
     "greedy": "..."}                  # optional: the greedy (temperature 0) solution, a baseline row

Any generator can write it (vLLM, an API, ``ledom-reason generate``).
"""

from __future__ import annotations

import os
from typing import Any

from ledom_reason.io import iter_jsonl


def read_candidates(
    path: str | os.PathLike[str], *, gold_by_question: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Read and validate a candidates file; fill ``id`` and (from ``gold_by_question``) ``gold``.

    Raises:
        ValueError: a row without candidates, a non-string candidate, duplicate ids, or no gold answer; the
            message starts with ``<file>:<line>:``.
    """
    rows = []
    seen: set[str] = set()
    for n, row in iter_jsonl(path):
        where = f"{path}:{n}"
        missing = [k for k in ("question", "candidates") if k not in row]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        rows.append(row)
        if not isinstance(row["question"], str) or not row["question"].strip():
            raise ValueError(f"{where}: `question` must be a non-empty string")
        cands = row["candidates"]
        if not isinstance(cands, list) or not cands:
            raise ValueError(f"{where}: `candidates` must be a non-empty list")
        bad = next((k for k, c in enumerate(cands) if not (isinstance(c, str) and c.strip())), None)
        if bad is not None:
            raise ValueError(f"{where}: candidates[{bad}] must be a non-empty string")
        if "greedy" in row and row["greedy"] is not None and not isinstance(row["greedy"], str):
            raise ValueError(f"{where}: `greedy` must be a string")
        row["id"] = str(row.get("id", f"line-{n}"))
        if row["id"] in seen:
            raise ValueError(f"{where}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        if row.get("gold") is None and gold_by_question is not None:
            row["gold"] = gold_by_question.get(row["question"].strip())
        if row.get("gold") is None:
            raise ValueError(f"{where}: no gold answer (add `gold` or pass the dataset it comes from)")
        row["gold"] = str(row["gold"])
    return rows
