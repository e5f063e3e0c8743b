"""Answer extraction, normalisation and grading edge cases; dataset loaders."""

from __future__ import annotations

import pytest

from ledom_reason.answers import extract_answer, extract_boxed, extract_marked_answer, normalize_answer
from ledom_reason.eval.grading import is_equiv, simple_equiv


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18", "18"),
        ("#### 1,000", "1000"),
        ("#### $18.00", "18"),
        ("so $\\boxed{\\dfrac{1}{2}}$", "\\frac{1}{2}"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}} and more text 7", "\\frac{\\sqrt{3}}{2}"),
        ("the total is 1,234 apples, then 56", "56"),
        ("answer: -3.50", "-3.5"),
        ("no number", None),
        ("#### 42 dollars", "42"),
    ],
)
def test_extract_answer(text, want):
    assert extract_answer(text) == want


def test_boxed_nested_and_marked_only():
    assert extract_boxed("x \\boxed{\\frac{a}{b}} y \\boxed{2^{3}}") == "2^{3}"
    assert extract_boxed("\\boxed{unclosed") is None
    assert extract_marked_answer("Step 1: 3 + 4 = 7.") is None  # numbers alone do not finish a step
    assert extract_marked_answer("So #### 7") == "7"


def test_normalize():
    assert normalize_answer("\\left( 3, \\frac{\\pi}{2} \\right)") == "(3,\\frac{\\pi}{2})"
    assert normalize_answer("50\\%") == "50"
    assert normalize_answer("90^\\circ") == "90"
    assert normalize_answer("\\text{(B)}") == "(B)"


@pytest.mark.parametrize(
    ("pred", "gold", "ok"),
    [
        ("1,000", "1000", True),
        ("\\frac{1}{2}", "0.5", True),
        ("\\frac12", "1/2", True),
        ("\\dfrac{3}{4}", "\\frac{3}{4}", True),
        ("18.0", "18", True),
        ("(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
        ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", True),  # symbolic, via math-verify
        ("7", "8", False),
        ("\\frac{1}{3}", "0.33", False),
        (None, "3", False),
    ],
)
def test_is_equiv(pred, gold, ok):
    assert is_equiv(pred, gold) is ok


def test_simple_equiv_without_math_verify():
    assert simple_equiv("$1,000.00", "1000")
    assert simple_equiv("\\frac{-2}{4}", "-0.5")
    assert not simple_equiv("\\sqrt{2}", "1.414")


def test_load_datasets():
    from ledom_reason.eval.datasets import load_dataset

    g = load_dataset("gsm8k", limit=3)
    assert [p.id for p in g] == ["gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2"]
    assert g[0].answer == "18" and "####" in g[0].solution
    m = load_dataset("math500", limit=2)
    assert m[0].answer == "(3,\\frac{\\pi}{2})" and m[0].meta["level"] == 2
    a = load_dataset("amc23", limit=1)
    assert a[0].answer == "27" and a[0].solution is None
    with pytest.raises(ValueError, match="`name`"):
        load_dataset("mmlu")
