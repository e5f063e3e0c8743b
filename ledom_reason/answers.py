"""Final-answer extraction and normalisation (pure Python, no heavy imports).

The default extractor tries, in order: the GSM8K marker ``#### <answer>``, the last ``\\boxed{…}``,
then the last number in the text. Answers are returned *normalised* (see
:func:`normalize_answer`) so that equal answers compare equal as strings (used for voting).

Example:
    >>> extract_answer("She makes 9 * 2 = $18.\\n#### 18")
    '18'
    >>> extract_answer("so the answer is $\\\\boxed{\\\\dfrac{1}{2}}$.")
    '\\\\frac{1}{2}'
    >>> extract_answer("Total: 1,000 dollars.")
    '1000'
    >>> extract_answer("no digits here") is None
    True
"""

from __future__ import annotations

import re

_GSM8K = re.compile(r"####\s*([^\n]+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_PLAIN_NUMBER = re.compile(r"^-?(?:\d+(?:,\d{3})*|\d+)(?:\.\d+)?$|^-?\.\d+$")


def extract_gsm8k(text: str) -> str | None:
    """The answer after the last ``####`` marker (raw, not normalised), or ``None``."""
    found = _GSM8K.findall(text)
    if not found:
        return None
    ans = found[-1].strip()
    return ans or None


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}`` / ``\\fbox{…}`` (nested braces handled), or ``None``."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        # "\boxed 5" form
        m = re.match(r"\\(?:boxed|fbox)\s+([^\s$]+)", text[start:])
        return m.group(1) if m else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip() or None
    return None


def extract_last_number(text: str) -> str | None:
    """The last number in the text (commas allowed as thousands separators), or ``None``."""
    found = _NUMBER.findall(text)
    return found[-1] if found else None


def _format_number(x: float) -> str:
    if x == int(x) and abs(x) < 1e16:
        return str(int(x))
    return f"{x:.10g}"


def _strip_text_wrappers(s: str) -> str:
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\mbox\{([^{}]*)\}", r"\1", s)
    return s


def normalize_answer(ans: str) -> str:
    """Canonical string form of an answer, for voting and string comparison.

    Strips ``$``, spaces, ``\\left``/``\\right``, ``\\!``, trailing punctuation and degree signs,
    maps ``\\dfrac``/``\\tfrac`` to ``\\frac``, and writes plain numbers canonically
    (``"1,000.00"`` → ``"1000"``, ``"-0.50"`` → ``"-0.5"``).

    Example:
        >>> normalize_answer(" $1,234.50 ")
        '1234.5'
        >>> normalize_answer("\\\\left( 3, \\\\dfrac{\\\\pi}{2} \\\\right)")
        '(3,\\\\frac{\\\\pi}{2})'
    """
    s = ans.strip()
    s = _strip_text_wrappers(s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "").replace("\\ ", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "")
    s = s.replace("$", "").replace(" ", "")
    s = s.rstrip(".").rstrip()
    if s.endswith("\\%"):
        s = s[:-2]
    elif s.endswith("%"):
        s = s[:-1]
    if _PLAIN_NUMBER.match(s):
        try:
            return _format_number(float(s.replace(",", "")))
        except ValueError:  # pragma: no cover - regex guarantees a float
            return s
    # A number followed by units/words ("18 dollars", "5 apples"): keep the number.
    m = re.match(r"^(-?\d[\d,]*(?:\.\d+)?)[a-zA-Z]+$", s)
    if m:
        return _format_number(float(m.group(1).replace(",", "")))
    return s


def extract_answer(text: str) -> str | None:
    """Default extractor: ``####`` answer, else last ``\\boxed{}``, else last number; normalised.

    Returns ``None`` when the text has no final answer.
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be str, got {type(text).__name__}")
    marked = extract_marked_answer(text)
    if marked is not None:
        return marked
    raw = extract_last_number(text)
    return normalize_answer(raw) if raw is not None else None


def extract_marked_answer(text: str) -> str | None:
    """Strict extractor: only an explicit ``####`` or ``\\boxed{}`` answer (no last-number fallback).

    Used as the stop rule of step-level search, where an intermediate step usually contains numbers
    but is not a final answer.
    """
    for fn in (extract_gsm8k, extract_boxed):
        raw = fn(text)
        if raw is not None:
            # "#### $18." or "#### 18 dollars" → the number inside when there is one
            norm = normalize_answer(raw)
            if norm:
                return norm
    return None
