"""Loaders for the evaluation sets in the data folder: GSM8K, MATH-500, AMC23.

File fields (``<data>/<name>/<split>.jsonl``):

* ``gsm8k``: ``question``, ``answer`` (solution with ``<<a*b=c>>`` marks, ending ``#### N``).
* ``math500``: ``problem``, ``solution``, ``answer`` (LaTeX), ``subject``, ``level``, ``unique_id``.
* ``amc23``: ``id``, ``problem``/``question``, ``answer`` (a float such as ``27.0``), ``url``.

Example:
    >>> probs = load_dataset("gsm8k", limit=2)  # doctest: +SKIP
    >>> probs[0].answer  # doctest: +SKIP
    '18'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ledom_reason import paths
from ledom_reason.answers import extract_gsm8k, normalize_answer
from ledom_reason.io import iter_jsonl

DATASETS: tuple[str, ...] = ("gsm8k", "math500", "amc23")


@dataclass
class Problem:
    """One evaluation problem.

    Attributes:
        id: Stable id (``"gsm8k/test/0"``, MATH's ``unique_id``, AMC's ``id``).
        question: The problem statement.
        answer: Gold final answer (normalised string).
        solution: Gold worked solution when the dataset has one (else ``None``).
        meta: Other fields (subject, level, url…).
    """

    id: str
    question: str
    answer: str
    solution: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _fmt_number(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return normalize_answer(str(v))


def _gsm8k(r: dict[str, Any], i: int, split: str) -> Problem:
    gold = extract_gsm8k(r["answer"])
    if gold is None:
        raise ValueError("answer has no `####` line")
    return Problem(f"gsm8k/{split}/{i}", r["question"], normalize_answer(gold), r["answer"])


def _math500(r: dict[str, Any], i: int, split: str) -> Problem:
    return Problem(str(r.get("unique_id", f"math500/{split}/{i}")), r["problem"], normalize_answer(str(r["answer"])),
                   r.get("solution"), {k: r[k] for k in ("subject", "level") if k in r})


def _amc23(r: dict[str, Any], i: int, split: str) -> Problem:
    return Problem(f"amc23/{r.get('id', i)}", r.get("problem") or r["question"], _fmt_number(r["answer"]), None,
                   {k: r[k] for k in ("url",) if k in r})


_PARSERS = {"gsm8k": _gsm8k, "math500": _math500, "amc23": _amc23}


def load_dataset(
    name: str, split: str = "test", *, data_dir: str | os.PathLike[str] | None = None, limit: int | None = None
) -> list[Problem]:
    """Load ``name`` (``gsm8k``, ``math500``, ``amc23``) from ``<data_dir>/<name>/<split>.jsonl``.

    Args:
        name: Dataset name (one of :data:`DATASETS`).
        split: File stem (``test``; GSM8K also has ``train`` and ``test_socratic``).
        data_dir: Data folder (default: :func:`ledom_reason.paths.data_dir`).
        limit: Keep the first ``limit`` problems.

    Raises:
        ValueError: unknown dataset or bad ``limit``, or a bad row (the message starts ``<file>:<line>:``);
            ``FileNotFoundError``: missing file.
    """
    if name not in _PARSERS:
        raise ValueError(f"`name` must be one of {DATASETS}, got {name!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"`limit` must be >= 1, got {limit}")
    path = paths.data_dir(data_dir) / name / f"{split}.jsonl"
    out: list[Problem] = []
    for line, row in iter_jsonl(path):
        if limit is not None and len(out) >= limit:
            break
        try:
            out.append(_PARSERS[name](row, len(out), split))
        except KeyError as e:
            raise ValueError(f"{path}:{line}: missing field {e.args[0]!r}") from None
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}:{line}: {e}") from None
    return out
