"""Answer equivalence: ``math-verify`` when installed, else a normalised string/number compare.

Example:
    >>> is_equiv("1,000", "1000")
    True
    >>> is_equiv("\\\\frac{1}{2}", "0.5")
    True
    >>> is_equiv("7", "8")
    False
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from fractions import Fraction

from ledom_reason.answers import normalize_answer

logger = logging.getLogger(__name__)

_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$|^(-?)\\frac(\d)(\d)$|^(-?\d+)/(\d+)$")


def _as_number(s: str) -> Fraction | None:
    s = normalize_answer(s)
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        pass
    m = _FRAC.match(s)
    if not m:
        return None
    try:
        if m.group(2) is not None:
            v = Fraction(int(m.group(2)), int(m.group(3)))
            return -v if m.group(1) else v
        if m.group(5) is not None:
            v = Fraction(int(m.group(5)), int(m.group(6)))
            return -v if m.group(4) else v
        return Fraction(int(m.group(7)), int(m.group(8)))
    except ZeroDivisionError:
        return None


def simple_equiv(pred: str, gold: str, *, rel_tol: float = 1e-6) -> bool:
    """Fallback equivalence: equal numbers (fractions, commas, ``$``, ``%`` handled) or equal normalised strings."""
    a, b = _as_number(pred), _as_number(gold)
    if a is not None and b is not None:
        if a == b:
            return True
        return abs(float(a) - float(b)) <= rel_tol * max(1.0, abs(float(b)))
    return normalize_answer(pred) == normalize_answer(gold)


@functools.lru_cache(maxsize=1)
def _math_verify() -> tuple[object, object] | None:
    try:
        from math_verify import parse, verify
    except ImportError:  # optional extra [eval]
        logger.info("math-verify not installed; using the simple answer comparison")
        return None
    return parse, verify


def _wrap(s: str) -> str:
    s = s.strip()
    return s if "$" in s or "\\boxed" in s else f"${s}$"


@functools.lru_cache(maxsize=65536)
def is_equiv(pred: str | None, gold: str | None) -> bool:
    """Whether ``pred`` equals ``gold`` as a math answer.

    Tries the simple comparison first (fast, exact for plain numbers and simple fractions), then
    ``math-verify`` (symbolic; LaTeX sets, intervals, expressions). ``None`` is never correct.
    """
    if pred is None or gold is None:
        return False
    pred, gold = str(pred), str(gold)
    if simple_equiv(pred, gold):
        return True
    mv = _math_verify()
    if mv is None:
        return False
    parse, verify = mv
    # math-verify's timeouts use SIGALRM, which only works in the main thread
    t = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        g = parse(_wrap(gold), parsing_timeout=t)  # type: ignore[operator]
        p = parse(_wrap(pred), parsing_timeout=t)  # type: ignore[operator]
        return bool(g and p and verify(g, p, timeout_seconds=t))  # type: ignore[operator]
    except Exception as e:  # math-verify raises many kinds on odd LaTeX; documented fallback
        logger.debug("math-verify failed on %r vs %r: %s", pred, gold, e)
        return False
