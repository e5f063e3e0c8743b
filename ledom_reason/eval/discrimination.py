"""Verifier-discrimination set: gold GSM8K solutions vs. corrupted variants, and its metrics.

A scorer is judged without a generator: for each problem, does it rank the gold solution above
``k`` corrupted ones? Corruptions (each seeded):

* ``number_propagate`` — change the result of one intermediate calculation and recompute every later
  ``<<expr=result>>`` mark and the final answer (a consistent chain from a wrong step).
* ``number_local`` — change one intermediate result where it appears, nothing downstream (an
  inconsistent chain).
* ``swap_operation`` — swap ``+``↔``-`` or ``*``↔``/`` in one calculation, recompute it and propagate.
* ``wrong_final`` — change only the number after ``####``.
* ``truncated`` — drop the final answer line and the last step(s).

Rows of a discrimination file::

    {"id": "gsm8k/test/0", "question": "...", "answer": "18",
     "candidates": ["...", "..."], "labels": [0, 1, 0, 0, 0], "kinds": ["truncated", "gold", ...]}

The gold solution's position is shuffled (seeded), so index-based tie-breaking cannot favour it.
"""

from __future__ import annotations

import ast
import logging
import math
import operator
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ledom_reason.answers import extract_answer
from ledom_reason.eval.stats import bootstrap_ci, pairwise_auc, wilson_ci
from ledom_reason.reward import reverse_reward
from ledom_reason.types import PairScore

logger = logging.getLogger(__name__)

CORRUPTIONS: tuple[str, ...] = ("number_propagate", "number_local", "swap_operation", "wrong_final", "truncated")
_MARK = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
_NUM = re.compile(r"\d+(?:\.\d+)?")
_FINAL = re.compile(r"####\s*(.+)\s*$")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.Mod: operator.mod, ast.FloorDiv: operator.floordiv}
_SWAP = {"+": "-", "-": "+", "*": "/", "/": "*"}


def _safe_eval(expr: str) -> float | None:
    """Evaluate an arithmetic expression (numbers and + - * / ** % // only); ``None`` if not possible."""
    try:
        tree = ast.parse(expr.replace("^", "**").replace("x", "*"), mode="eval")
    except SyntaxError:
        return None

    def ev(n: ast.AST) -> float:
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, int | float):
            return float(n.value)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub | ast.UAdd):
            v = ev(n.operand)
            return -v if isinstance(n.op, ast.USub) else v
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            right = ev(n.right)
            if isinstance(n.op, ast.Pow) and abs(right) > 10:
                raise ValueError("exponent too large")
            return _OPS[type(n.op)](ev(n.left), right)
        raise ValueError("unsupported")

    try:
        v = ev(tree)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return v if math.isfinite(v) else None


def fmt_number(v: float) -> str:
    """Format like GSM8K: integers without a decimal point, else up to 2 decimals."""
    if abs(v - round(v)) < 1e-9:
        return str(round(v))
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _perturb(v: float, rng: random.Random) -> float:
    if v == int(v):
        iv = int(v)
        choices = [iv + d for d in (1, 2, 3, 5, 10) if iv + d != iv] + [iv - d for d in (1, 2, 3) if iv - d >= 0]
        if iv > 3:
            choices += [iv * 2, max(1, iv // 2)]
        choices = [c for c in choices if c != iv]
        return float(rng.choice(choices))
    return round(v + rng.choice([0.5, 1.0, -0.5]), 2)


def _with_commas(num: str) -> str:
    if "." in num or not num.lstrip("-").isdigit():
        return num
    return f"{int(num):,}"


def _num_pattern(num: str) -> str:
    """Regex for ``num`` written with or without thousands commas."""
    return ",?".join(re.escape(ch) for ch in num)


def _replace_number(text: str, old: str, new: str) -> str:
    """Replace whole-number occurrences of ``old`` (also written ``1,234``) by ``new`` (same style)."""

    def sub(m: re.Match[str]) -> str:
        return _with_commas(new) if "," in m.group(0) else new

    return re.sub(rf"(?<![\d.,]){_num_pattern(old)}(?![\d]|\.\d|,\d)", sub, text)


def _lines(solution: str) -> tuple[list[str], str | None]:
    """Reasoning lines and the final answer (``None`` if no ``####`` line)."""
    lines = solution.rstrip("\n").split("\n")
    m = _FINAL.match(lines[-1].strip()) if lines else None
    if m:
        return lines[:-1], m.group(1).strip()
    return lines, None


def _join(lines: list[str], final: str | None) -> str:
    return "\n".join([*lines, f"#### {final}"] if final is not None else lines)


def _marks(lines: list[str]) -> list[tuple[int, re.Match[str]]]:
    return [(i, m) for i, line in enumerate(lines) for m in _MARK.finditer(line)]


def _recompute(lines: list[str], final: str | None, start: int, mapping: dict[str, str]) -> tuple[list[str], str | None]:
    """Substitute changed values into marks after line ``start`` and recompute them (propagation)."""
    out = list(lines)
    for i in range(start + 1, len(out)):
        line = out[i]
        for m in list(_MARK.finditer(line)):
            expr, res = m.group(1), m.group(2)
            new_expr = _NUM.sub(lambda n: mapping.get(n.group(0), n.group(0)), expr)
            if new_expr == expr:
                continue
            v = _safe_eval(new_expr)
            if v is None:
                continue
            new_res = fmt_number(v)
            line = line.replace(m.group(0), f"<<{new_expr}={new_res}>>", 1)
            # visible numbers of this line: operands and the result after the mark
            for old, new in {**mapping, res: new_res}.items():
                line = _replace_number(line, old, new)
            if new_res != res:
                mapping[res] = new_res
        out[i] = line
    if final is not None:
        f = final.replace(",", "")
        final = mapping.get(f, final)
    return out, final


def _corrupt_number(solution: str, rng: random.Random, propagate: bool) -> str | None:
    lines, final = _lines(solution)
    marks = _marks(lines)
    if marks:
        i, m = rng.choice(marks)
        res = m.group(2)
        try:
            v = float(res)
        except ValueError:
            return None
        new = fmt_number(_perturb(v, rng))
        line = lines[i].replace(m.group(0), f"<<{m.group(1)}={new}>>", 1)
        after = line.index(f"={new}>>") + len(f"={new}>>")
        line = line[:after] + _replace_number(line[after:], res, new)
        lines = [*lines[:i], line, *lines[i + 1 :]]
        if propagate:
            lines, final = _recompute(lines, final, i, {res: new})
        return _join(lines, final)
    # no calculator marks: change a number inside one reasoning line
    cands = [(i, n) for i, line in enumerate(lines) for n in _NUM.finditer(line)]
    if not cands:
        return None
    i, n = rng.choice(cands)
    new = fmt_number(_perturb(float(n.group(0)), rng))
    lines = [*lines[:i], lines[i][: n.start()] + new + lines[i][n.end() :], *lines[i + 1 :]]
    return _join(lines, final)


def _swap_operation(solution: str, rng: random.Random) -> str | None:
    lines, final = _lines(solution)
    options = [(i, m, j) for i, m in _marks(lines) for j, ch in enumerate(m.group(1)) if ch in _SWAP and j > 0]
    rng.shuffle(options)
    for i, m, j in options:
        expr, res = m.group(1), m.group(2)
        op = expr[j]
        new_expr = expr[:j] + _SWAP[op] + expr[j + 1 :]
        v = _safe_eval(new_expr)
        if v is None:
            continue
        new_res = fmt_number(v)
        if new_res == res:
            continue
        line = lines[i]
        pre, post = line[: m.start()], line[m.end() :]
        # the visible copy of the expression before the mark, e.g. "16 - 3 - 4 = "
        a, b = expr[:j].split()[-1] if expr[:j].split() else "", expr[j + 1 :].split()[0] if expr[j + 1 :].split() else ""
        a_tok = re.findall(r"[\d.]+", a)[-1:] or [""]
        b_tok = re.findall(r"[\d.]+", b)[:1] or [""]
        if a_tok[0] and b_tok[0]:
            pat = re.compile(rf"({_num_pattern(a_tok[0])}\s*){re.escape(op)}(\s*{_num_pattern(b_tok[0])})")
            pre = pat.sub(rf"\g<1>{_SWAP[op]}\g<2>", pre, count=1)
        post = _replace_number(post, res, new_res)
        lines = [*lines[:i], f"{pre}<<{new_expr}={new_res}>>{post}", *lines[i + 1 :]]
        lines, final = _recompute(lines, final, i, {res: new_res})
        return _join(lines, final)
    return None


def _wrong_final(solution: str, rng: random.Random) -> str | None:
    lines, final = _lines(solution)
    if final is None:
        return None
    try:
        v = float(final.replace(",", ""))
    except ValueError:
        return None
    return _join(lines, fmt_number(_perturb(v, rng)))


def _truncated(solution: str, rng: random.Random) -> str | None:
    lines, _ = _lines(solution)
    if len(lines) >= 2:
        return "\n".join(lines[: rng.randint(1, len(lines) - 1)])
    words = lines[0].split() if lines else []
    if len(words) < 4:
        return None
    return " ".join(words[: rng.randint(2, len(words) - 2)])


def corrupt_solution(solution: str, rng: random.Random, kind: str | None = None) -> tuple[str, str]:
    """Corrupt a GSM8K-style solution.

    Args:
        solution: Gold solution (``<<a*b=c>>`` marks optional, ``#### N`` final line optional).
        rng: Random source (seed it for reproducible sets).
        kind: One of :data:`CORRUPTIONS`; default: a random kind that applies to this solution.

    Returns:
        ``(kind, corrupted_text)``; the text differs from ``solution``.

    Raises:
        ValueError: unknown ``kind``, or no corruption applies to ``solution``.
    """
    if kind is not None and kind not in CORRUPTIONS:
        raise ValueError(f"`kind` must be one of {CORRUPTIONS}, got {kind!r}")
    kinds = [kind] if kind is not None else rng.sample(CORRUPTIONS, len(CORRUPTIONS))
    for k in kinds:
        if k == "number_propagate":
            out = _corrupt_number(solution, rng, propagate=True)
        elif k == "number_local":
            out = _corrupt_number(solution, rng, propagate=False)
        elif k == "swap_operation":
            out = _swap_operation(solution, rng)
        elif k == "wrong_final":
            out = _wrong_final(solution, rng)
        else:
            out = _truncated(solution, rng)
        if out is not None and out.strip() and out != solution:
            return k, out
    raise ValueError(f"no corruption of kind {kind or 'any'} applies to this solution")


def build_discrimination_set(
    problems: Sequence[Any], k: int = 4, seed: int = 0, *, max_tries: int = 30
) -> list[dict[str, Any]]:
    """{gold, ``k`` distinct corrupted variants} per problem, gold position shuffled.

    Args:
        problems: :class:`~ledom_reason.eval.datasets.Problem` s with a ``solution`` (or mappings with
            ``question`` and ``answer`` = solution, as in the GSM8K file).
        k: Corrupted variants per problem (kinds cycle through :data:`CORRUPTIONS` when possible).
        seed: Seed; the same seed gives the same file.
        max_tries: Attempts per problem before keeping fewer than ``k`` variants (logged).
    """
    if k < 1:
        raise ValueError(f"`k` must be >= 1, got {k}")
    rng = random.Random(seed)
    rows = []
    for n, p in enumerate(problems):
        if isinstance(p, Mapping):
            pid, question, solution = str(p.get("id", n)), p["question"], p.get("solution") or p["answer"]
            gold = extract_answer(solution)
        else:
            pid, question, solution, gold = p.id, p.question, p.solution, p.answer
        if not solution:
            raise ValueError(f"problem {pid}: no gold solution to corrupt")
        variants: list[tuple[str, str]] = []
        seen = {solution}
        kinds = rng.sample(CORRUPTIONS, len(CORRUPTIONS))
        for t in range(max_tries):
            if len(variants) >= k:
                break
            want = kinds[t % len(kinds)] if t < 2 * len(kinds) else None
            try:
                kind, text = corrupt_solution(solution, rng, want)
            except ValueError:
                continue
            if text not in seen:
                seen.add(text)
                variants.append((kind, text))
        if len(variants) < k:
            logger.warning("problem %s: only %d of %d corrupted variants", pid, len(variants), k)
        items = [("gold", solution), *variants]
        rng.shuffle(items)
        rows.append({"id": pid, "question": question, "answer": gold,
                     "candidates": [t for _, t in items], "labels": [int(kd == "gold") for kd, _ in items],
                     "kinds": [kd for kd, _ in items]})
    return rows


def evaluate_discrimination(
    rows: Sequence[Mapping[str, Any]],
    scores: Sequence[Sequence[PairScore | Mapping[str, Any]]],
    *,
    lams: Sequence[float] = (1.0,),
    normalizes: Sequence[str] = ("sum",),
    n_boot: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Top-1 accuracy and pairwise AUC of precomputed scores at every (λ, normalisation).

    One scoring pass serves the whole sweep: ``scores[i][j]`` is the :class:`PairScore` (or its dict)
    of candidate ``j`` of row ``i``.

    Returns:
        One dict per (λ, normalisation): ``lam``, ``normalize``, ``problems``, ``top1`` with
        ``top1_ci`` (Wilson 95%), ``auc`` (mean over problems of P(gold > corrupted), ties ½) with
        ``auc_ci`` (bootstrap 95% over problems), and ``by_kind`` (per corruption kind: P(gold > it)).
        Top-1 ties count as wrong unless the gold is the lowest-index maximum (gold position is shuffled).
    """
    if len(rows) != len(scores):
        raise ValueError(f"`scores` has {len(scores)} rows for {len(rows)} problems")
    out = []
    for norm in normalizes:
        for lam in lams:
            per_auc: list[float] = []
            top1 = 0
            by_kind: dict[str, list[float]] = {}
            for row, sc in zip(rows, scores, strict=True):
                if len(sc) != len(row["candidates"]):
                    raise ValueError(f"row {row.get('id')}: {len(sc)} scores for {len(row['candidates'])} candidates")
                r = [reverse_reward(s, lam=lam, normalize=norm) for s in sc]  # type: ignore[arg-type]
                labels = row["labels"]
                pos = [r[j] for j, y in enumerate(labels) if y]
                neg = [r[j] for j, y in enumerate(labels) if not y]
                best = max(range(len(r)), key=lambda j: (r[j], -j))
                top1 += int(bool(labels[best]))
                if pos and neg:
                    per_auc.append(pairwise_auc(pos, neg))
                kinds = row.get("kinds") or ["corrupted"] * len(labels)
                for j, y in enumerate(labels):
                    if not y and pos:
                        by_kind.setdefault(kinds[j], []).append(pairwise_auc(pos, [r[j]]))
            n = len(rows)
            auc = sum(per_auc) / len(per_auc) if per_auc else math.nan
            out.append({
                "lam": lam, "normalize": norm, "problems": n,
                "top1": top1 / n if n else math.nan, "top1_ci": list(wilson_ci(top1, n)),
                "auc": auc,
                "auc_ci": list(bootstrap_ci(per_auc, lambda xs: sum(xs) / len(xs), n_boot=n_boot, seed=seed)),
                "by_kind": {kd: sum(v) / len(v) for kd, v in sorted(by_kind.items())},
            })
    return out


def discrimination_markdown(results: Sequence[Mapping[str, Any]]) -> str:
    """Results of :func:`evaluate_discrimination` as a markdown table."""
    kinds = sorted({k for r in results for k in r["by_kind"]})
    head = "| λ | normalise | problems | top-1 | 95% CI | pairwise AUC | 95% CI | " + " | ".join(
        f"P(gold > {k})" for k in kinds) + " |"
    lines = [head, "|" + " --- |" * (7 + len(kinds))]
    for r in results:
        lines.append(
            f"| {r['lam']:g} | {r['normalize']} | {r['problems']} | {r['top1']:.3f} | "
            f"[{r['top1_ci'][0]:.3f}, {r['top1_ci'][1]:.3f}] | {r['auc']:.3f} | "
            f"[{r['auc_ci'][0]:.3f}, {r['auc_ci'][1]:.3f}] | "
            + " | ".join(f"{r['by_kind'].get(k, float('nan')):.3f}" for k in kinds) + " |")
    return "\n".join(lines) + "\n"
