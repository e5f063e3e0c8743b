"""With a calibrated scorer, the DSPy reward/metric and the LangChain outputs use P(correct): a threshold of 0.5
means "more likely right than wrong" and dspy.Evaluate's average is a percentage."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("dspy")

import dspy
from dspy.utils.dummies import DummyLM

from ledom_reason import ReverseScorer, reverse_reward
from ledom_reason.calibration import Calibration
from ledom_reason.integrations.dspy import ledom_metric, ledom_reward

QS = ["Tom has 3 apples and buys 4 more. How many apples does he have?",
      "A box holds 6 eggs. How many eggs are in 2 boxes?"]
SOLS = [{"reasoning": "3 + 4 = 7.", "answer": "7"}, {"reasoning": "2 * 6 = 12.", "answer": "12"}]
CAL = Calibration("platt", 1.0, "mean", {"a": 1.5, "b": 9.0})


@pytest.fixture(scope="module")
def calibrated(tiny_model_dir):
    return ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", calibration=CAL)


def _p(scorer, q, sol):
    s = scorer.score([(q, f"{sol['reasoning']}\n\n{sol['answer']}")])[0]
    return 1 / (1 + math.exp(-(1.5 * reverse_reward(s, 1.0, "mean") + 9.0)))


def test_reward_and_metric_return_p_correct_by_default(calibrated, scorer):
    pred = dspy.Prediction(**SOLS[0])
    p = _p(calibrated, QS[0], SOLS[0])
    assert 0 < p < 1
    assert ledom_reward(calibrated)({"question": QS[0]}, pred) == pytest.approx(p, abs=1e-9)
    m = ledom_metric(calibrated, threshold=0.5)
    assert m(dspy.Example(question=QS[0]), pred) == pytest.approx(p, abs=1e-9)
    assert m(dspy.Example(question=QS[0]), pred, trace=[]) is (p >= 0.5)
    # the raw reward when asked for it, or with an explicit λ/normalisation
    raw = reverse_reward(calibrated.score([(QS[0], "3 + 4 = 7.\n\n7")])[0], 1.0, "mean")
    assert ledom_metric(calibrated, value="reward")(dspy.Example(question=QS[0]), pred) == pytest.approx(raw)
    assert ledom_metric(calibrated, lam=1.0)(dspy.Example(question=QS[0]), pred) == pytest.approx(raw)
    # an uncalibrated scorer: the reward (auto), or a clear error (p_correct)
    assert ledom_metric(scorer)(dspy.Example(question=QS[0]), pred) < 0
    with pytest.raises(ValueError, match="calibrat"):
        ledom_metric(scorer, value="p_correct")(dspy.Example(question=QS[0]), pred)


def test_dspy_evaluate_averages_p_correct_as_a_percentage(calibrated):
    devset = [dspy.Example(question=q).with_inputs("question") for q in QS]
    lm = DummyLM({q: s for q, s in zip(QS, SOLS, strict=True)})
    with dspy.context(lm=lm):
        res = dspy.Evaluate(devset=devset, metric=ledom_metric(calibrated), num_threads=1)(
            dspy.ChainOfThought("question -> answer"))
    expected = 100 * sum(_p(calibrated, q, s) for q, s in zip(QS, SOLS, strict=True)) / len(QS)
    assert 0 <= res.score <= 100 and res.score == pytest.approx(expected, abs=0.01)


def test_langchain_outputs_carry_p_correct(calibrated):
    pytest.importorskip("langchain_core")
    from ledom_reason.integrations.langchain import LedomVerifier

    cands = ["3 + 4 = 7.\n#### 7", "3 * 4 = 12.\n#### 12"]
    out = LedomVerifier(scorer=calibrated).invoke({"question": QS[0], "candidates": cands})
    for c in out:
        assert c.p_correct == pytest.approx(CAL(calibrated.score([(QS[0], c.text)])[0]), abs=1e-9)
