"""ledom_reward / ledom_metric inside real DSPy modules and a real optimizer run (DummyLM, tiny real scorer)."""

from __future__ import annotations

import pytest

pytest.importorskip("dspy")

import dspy
from dspy.utils.dummies import DummyLM

from ledom_reason import reverse_reward
from ledom_reason.integrations.dspy import LedomMetric, ledom_metric, ledom_reward

QS = [
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "A box holds 6 eggs. How many eggs are in 2 boxes?",
    "Sara reads 5 pages a day. How many pages does she read in 3 days?",
    "There are 10 birds and 4 fly away. How many birds are left?",
]
SOLS = [
    {"reasoning": "3 + 4 = 7.", "answer": "7"},
    {"reasoning": "2 boxes of 6 eggs: 2 * 6 = 12.", "answer": "12"},
    {"reasoning": "5 pages for 3 days is 15 pages.", "answer": "15"},
    {"reasoning": "10 - 4 = 6 birds stay.", "answer": "6"},
]


def _reward_direct(scorer, q, sol, normalize="mean"):
    s = scorer.score([(q, f"{sol['reasoning']}\n\n{sol['answer']}")])[0]
    return reverse_reward(s, normalize=normalize)


def test_reward_equals_direct_score(scorer):
    r = ledom_reward(scorer)
    pred = dspy.Prediction(**SOLS[0])
    assert r({"question": QS[0]}, pred) == pytest.approx(_reward_direct(scorer, QS[0], SOLS[0]), abs=1e-5)
    # answer only when there is no reasoning field (plain Predict)
    only = ledom_reward(scorer, answer_fields=["answer"])
    s = scorer.score([(QS[0], "7")])[0]
    assert only({"question": QS[0]}, dspy.Prediction(answer="7")) == pytest.approx(s.reverse_mean, abs=1e-5)


def test_reward_plugs_into_dspy_bestofn(scorer):
    answers = [SOLS[1], SOLS[0], {"reasoning": "3 * 4 = 12.", "answer": "12"}]
    expected = max(answers, key=lambda a: _reward_direct(scorer, QS[0], a))
    qa = dspy.ChainOfThought("question -> answer")
    best = dspy.BestOfN(qa, N=3, reward_fn=ledom_reward(scorer), threshold=1.0)  # rewards are <= 0: all N run
    with dspy.context(lm=DummyLM(answers)):
        pred = best(question=QS[0])
    assert pred.answer == expected["answer"]
    assert pred.reasoning == expected["reasoning"]


def test_reward_plugs_into_dspy_refine(scorer):
    qa = dspy.ChainOfThought("question -> answer")
    calls = []
    reward = ledom_reward(scorer)

    def spy(args, pred):
        calls.append(reward(args, pred))
        return calls[-1]

    ref = dspy.Refine(qa, N=2, reward_fn=spy, threshold=-1e9)
    with dspy.context(lm=DummyLM([SOLS[0]])):
        pred = ref(question=QS[0])
    assert pred.answer == "7"
    assert calls and calls[0] == pytest.approx(_reward_direct(scorer, QS[0], SOLS[0]), abs=1e-5)


def test_metric_float_and_bool(scorer):
    m = ledom_metric(scorer, threshold=-3.0)
    ex = dspy.Example(question=QS[1], answer="12").with_inputs("question")
    pred = dspy.Prediction(**SOLS[1])
    r = m(ex, pred)
    assert isinstance(r, float) and r == pytest.approx(_reward_direct(scorer, QS[1], SOLS[1]), abs=1e-5)
    assert m(ex, pred, trace=[]) is (r >= -3.0)
    assert isinstance(ledom_metric(scorer)(ex, pred, trace=[]), float)  # no threshold: the float


def test_metric_inside_bootstrap_fewshot(scorer):
    rewards = [_reward_direct(scorer, q, s) for q, s in zip(QS, SOLS, strict=True)]
    threshold = sorted(rewards)[len(rewards) // 2]  # about half the traces pass
    passing = {q for q, r in zip(QS, rewards, strict=True) if r >= threshold}
    assert 0 < len(passing) < len(QS)
    trainset = [dspy.Example(question=q, answer=s["answer"]).with_inputs("question") for q, s in zip(QS, SOLS, strict=True)]
    lm = DummyLM({q: s for q, s in zip(QS, SOLS, strict=True)})
    opt = dspy.BootstrapFewShot(metric=ledom_metric(scorer, threshold=threshold), max_bootstrapped_demos=4,
                                max_labeled_demos=0, max_rounds=1)
    with dspy.context(lm=lm):
        compiled = opt.compile(dspy.ChainOfThought("question -> answer"), trainset=trainset)
    demos = compiled.predictors()[0].demos
    assert {d["question"] for d in demos} == passing


@pytest.mark.parametrize(
    ("args", "pred", "match"),
    [
        ({"q": QS[0]}, {"answer": "7"}, "`question`"),
        ({"question": ""}, {"answer": "7"}, "`question`"),
        ({"question": QS[0]}, {"other": "7"}, "answer fields"),
        ({"question": QS[0]}, {"answer": "  "}, "answer fields"),
    ],
)
def test_bad_input(scorer, args, pred, match):
    with pytest.raises(ValueError, match=match):
        ledom_reward(scorer)(args, dspy.Prediction(**pred))


def test_bad_config(scorer):
    with pytest.raises(ValueError, match="lam"):
        ledom_reward(scorer, lam=2.0)
    with pytest.raises(ValueError, match="answer_fields"):
        LedomMetric(scorer, answer_fields="answer")
