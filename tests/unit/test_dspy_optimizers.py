"""DSPy optimizers and program plumbing around the ledom-reason modules, with real DSPy objects (DummyLM) and
the real tiny reverse scorer: GEPA with the feedback metric, MIPROv2, Refine, BootstrapFewShot demos,
save/load without the scorer, dspy.BestOfN's deep copies, and thread safety under Parallel / batch."""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import pytest

pytest.importorskip("dspy")

import dspy
from dspy.utils.dummies import DummyLM

from ledom_reason import reverse_reward
from ledom_reason.integrations.dspy import (
    LedomBestOfN,
    LedomStepwiseCoT,
    ScorerNotAttachedError,
    attach_scorer,
    ledom_feedback_metric,
    ledom_metric,
    ledom_reward,
)

Q1 = "Tom has 3 apples and buys 4 more. How many apples does he have?"
Q2 = "A box holds 6 eggs. How many eggs are in 2 boxes?"
ANSWERS = {Q1: {"reasoning": "He starts with 3 apples.\n\nHe buys 4 more.\n\nSo 3 + 4 = 7.", "answer": "7"},
           Q2: {"reasoning": "One box holds 6 eggs.\n\nTwo boxes hold 2 * 6 = 12.", "answer": "12"}}
TRAIN = [dspy.Example(question=q, answer=a["answer"]).with_inputs("question") for q, a in ANSWERS.items()]


def _reward(scorer, q, text, **kw):
    return reverse_reward(scorer.score([(q, text)])[0], normalize="mean", **kw)


def _text(a):
    return f"{a['reasoning']}\n\n{a['answer']}"


class Recording:
    """A scorer that records which object scored (a deep copy would record into its own copy of the list)."""

    def __init__(self, inner):
        self.inner, self.ids = inner, []

    def score(self, pairs):
        self.ids.append(id(self))
        return self.inner.score(pairs)

    async def ascore(self, pairs):
        self.ids.append(id(self))
        return await self.inner.ascore(pairs)


# ---------------------------------------------------------------------------------------- GEPA
def test_feedback_metric_words_and_numbers(scorer, scorer_fwd):
    pred = dspy.Prediction(**ANSWERS[Q1])
    out = ledom_feedback_metric(scorer)(TRAIN[0], pred)
    reward = _reward(scorer, Q1, _text(ANSWERS[Q1]))
    assert out.score == pytest.approx(math.exp(reward), rel=1e-5)
    steps = ANSWERS[Q1]["reasoning"].split("\n\n")
    prefix = [_reward(scorer, Q1, "\n\n".join(steps[:k])) for k in (1, 2, 3)]
    k = min((1, 2), key=lambda j: prefix[j] - prefix[j - 1])  # the step whose addition changed the reward least
    assert f"Weakest step: step {k + 1} of 3 ({steps[k]!r})" in out.feedback
    assert f"from {prefix[k - 1]:.3f} to {prefix[k]:.3f}" in out.feedback
    assert "Reverse term" in out.feedback and "Forward term" not in out.feedback
    mixed = ledom_feedback_metric(scorer_fwd, lam=0.5, score="reward", step_feedback=False)
    out = mixed(TRAIN[0], pred, None, "predict", None)
    s = scorer_fwd.score([(Q1, _text(ANSWERS[Q1]))])[0]
    assert out.score == pytest.approx(reverse_reward(s, lam=0.5, normalize="mean"), abs=1e-5)
    weaker = "reverse" if s.reverse_mean < s.forward_mean else "forward"
    assert "Forward term" in out.feedback and f"the {weaker} term pulls the reward down most" in out.feedback
    assert "predictor `predict`" in out.feedback and "Weakest step" not in out.feedback



def test_feedback_metric_follows_the_scorers_validated_setting_and_calibration():
    """Like ledom_metric: λ/normalisation default to the scorer's recommended setting, and the score is the
    calibrated p_correct (the bundled pair ships a calibration for λ = 0.9, mean)."""
    from ledom_reason import ReverseScorer

    pair = ReverseScorer.default(forward=True, device="cpu")
    pred = dspy.Prediction(**ANSWERS[Q1])
    metric = ledom_feedback_metric(pair)
    assert (metric.lam, metric.normalize) == (pair.recommended_reward.lam, pair.recommended_reward.normalize)
    s = pair.score([(Q1, _text(ANSWERS[Q1]))])[0]
    assert s.p_correct is not None and metric(TRAIN[0], pred).score == pytest.approx(s.p_correct, abs=1e-6)
    # an explicit λ is a different reward than the calibration's: the probability is exp(reward) then
    explicit = ledom_feedback_metric(pair, lam=0.5, normalize="mean", step_feedback=False)
    assert explicit(TRAIN[0], pred).score == pytest.approx(math.exp(reverse_reward(s, lam=0.5, normalize="mean")),
                                                           rel=1e-5)

def test_gepa_compiles_with_the_feedback_metric(scorer):
    task = DummyLM(ANSWERS)
    new = "Solve the problem step by step and restate every quantity."
    reflection = DummyLM([{"new_instruction": new}] * 20, adapter=dspy.JSONAdapter())
    metric = ledom_feedback_metric(scorer)
    seen = []

    def gepa_metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        out = metric(gold, pred, trace, pred_name, pred_trace)
        seen.append((gold.question, pred_name, out))
        return out

    with dspy.context(lm=task):
        gepa = dspy.GEPA(metric=gepa_metric, max_metric_calls=10, reflection_lm=reflection,
                         reflection_minibatch_size=1, use_merge=False, num_threads=1, track_stats=True)
        optimized = gepa.compile(dspy.ChainOfThought("question -> answer"), trainset=TRAIN, valset=TRAIN)
    expected = {q: math.exp(_reward(scorer, q, _text(a))) for q, a in ANSWERS.items()}
    for q, _, out in seen:
        assert out.score == pytest.approx(expected[q], rel=1e-5)
    assert optimized.detailed_results.val_aggregate_scores[0] == pytest.approx(sum(expected.values()) / 2, rel=1e-5)
    assert any(name == "predict" for _, name, _ in seen)  # GEPA asked for per-predictor feedback
    prompts = [h["messages"][-1]["content"] for h in reflection.history]
    assert prompts and all("Reverse term" in p and "Weakest step" in p for p in prompts)  # our words reached it
    assert any(new in h["messages"][0]["content"] for h in task.history)  # its proposal was run and scored


def test_mipro_v2_with_ledom_metric(scorer):
    universal = {**ANSWERS[Q1], "proposed_instruction": "Think step by step.", "program_description": "QA.",
                 "module_description": "Answers.", "observations": "Word problems.", "summary": "Math."}
    metric = ledom_metric(scorer)
    with dspy.context(lm=DummyLM([universal] * 100)):
        mipro = dspy.MIPROv2(metric=metric, auto=None, num_candidates=2, max_bootstrapped_demos=1,
                             max_labeled_demos=0, num_threads=1, verbose=False)
        optimized = mipro.compile(dspy.ChainOfThought("question -> answer"), trainset=TRAIN, valset=TRAIN,
                                  num_trials=2, minibatch=False)
    text = _text(ANSWERS[Q1])  # the DummyLM gives every question this answer
    expected = 100 * sum(_reward(scorer, q, text) for q in ANSWERS) / 2  # dspy.Evaluate reports a percentage
    assert optimized.score == pytest.approx(expected, abs=0.05)


# ---------------------------------------------------------------------------------------- Refine
def test_refine_with_ledom_reward_keeps_the_best_attempt(scorer):
    attempts = [{"reasoning": "3 * 4 = 12.", "answer": "12"}, {"reasoning": "3 + 4 = 7.", "answer": "7"},
                {"reasoning": "4 - 3 = 1.", "answer": "1"}]
    advice = {"discussion": "The arithmetic is off.", "advice": '{"predict": "Add the two amounts."}'}
    script = [attempts[0], advice, attempts[1], advice, attempts[2]]  # Refine asks for advice between attempts
    refine = dspy.Refine(dspy.ChainOfThought("question -> answer"), N=3, reward_fn=ledom_reward(scorer),
                         threshold=1.0)  # a mean log-prob is <= 0: never reached, all 3 attempts run
    assert "class LedomReward" in refine.reward_fn_code  # Refine read the reward's source
    with dspy.context(lm=DummyLM(script)):
        pred = refine(question=Q1)
    best = max(attempts, key=lambda a: _reward(scorer, Q1, _text(a)))
    assert (pred.reasoning, pred.answer) == (best["reasoning"], best["answer"])
    lm = DummyLM(list(attempts))
    with dspy.context(lm=lm):  # a reachable threshold stops at the first attempt, with no advice call
        first = dspy.Refine(dspy.ChainOfThought("question -> answer"), N=3, reward_fn=ledom_reward(scorer),
                            threshold=-1e9)(question=Q1)
    assert first.answer == attempts[0]["answer"] and next(lm.answers) == attempts[1]  # one LM call only


# ---------------------------------------------------------------------------------------- BootstrapFewShot
def _demos(student, answers):
    with dspy.context(lm=DummyLM(answers)):
        compiled = dspy.BootstrapFewShot(metric=lambda ex, pred, trace=None: True, max_bootstrapped_demos=1,
                                         max_labeled_demos=0).compile(student, trainset=TRAIN[:1])
    return [d.toDict() for _, p in compiled.named_predictors() for d in p.demos]


def test_bootstrap_keeps_the_same_demos_as_the_bare_module(scorer):
    a = ANSWERS[Q1]
    bare = _demos(dspy.ChainOfThought("question -> answer"), [a])
    wrapped = _demos(LedomBestOfN(dspy.ChainOfThought("question -> answer"), N=3, scorer=scorer), [a] * 3)
    assert len(bare) == 1 and wrapped == bare


# ---------------------------------------------------------------------------------------- save / load
def _programs(scorer):
    return {"best_of_n": LedomBestOfN(dspy.ChainOfThought("question -> answer"), N=2, scorer=scorer),
            "stepwise": LedomStepwiseCoT("question -> answer", scorer=scorer, beam_width=1, expansions=2,
                                         max_depth=2)}


STEP_ANSWER = {"next_step": "So 3 + 4 = 7.\n#### 7", "answer": "7", "reasoning": "3 + 4 = 7."}


@pytest.mark.parametrize("kind", ["best_of_n", "stepwise"])
def test_save_and_load_leave_the_scorer_out(scorer, tmp_path, kind):
    program = _programs(scorer)[kind]
    for _, p in program.named_predictors():
        p.signature = p.signature.with_instructions("Be exact.")
    with dspy.context(lm=DummyLM([STEP_ANSWER] * 10)):
        ref = program(question=Q1)
    program.save(tmp_path / "state.json")  # state only: load it into a program built with a live scorer
    fresh = _programs(scorer)[kind]
    fresh.load(tmp_path / "state.json")
    assert [p.signature.instructions for _, p in fresh.named_predictors()] == ["Be exact."] * len(
        fresh.named_predictors())
    program.save(tmp_path / "whole", save_program=True)  # failed before: cannot pickle '_thread.lock'
    assert sum(f.stat().st_size for f in Path(tmp_path / "whole").rglob("*")) < 200_000  # no model weights
    loaded = dspy.load(tmp_path / "whole", allow_pickle=True)
    with dspy.context(lm=DummyLM([STEP_ANSWER] * 10)), pytest.raises(ScorerNotAttachedError, match="attach_scorer"):
        loaded(question=Q1)
    attach_scorer(loaded, scorer)
    assert loaded.scorer is scorer
    with dspy.context(lm=DummyLM([STEP_ANSWER] * 10)):
        again = loaded(question=Q1)
    assert again.answer == ref.answer and again.ledom["reward"] == pytest.approx(ref.ledom["reward"], abs=1e-6)
    with pytest.raises(ValueError, match="contains no"):
        attach_scorer(dspy.ChainOfThought("question -> answer"), scorer)


# ---------------------------------------------------------------------------------------- deep copies
def test_dspy_best_of_n_deepcopies_never_copy_the_model(scorer):
    rec = Recording(scorer)
    inner = LedomBestOfN(dspy.ChainOfThought("question -> answer"), N=2, scorer=rec)
    outer = dspy.BestOfN(inner, N=3, reward_fn=ledom_reward(rec), threshold=1.0)  # never reached: 3 attempts
    with dspy.context(lm=DummyLM([ANSWERS[Q1]] * 6)):
        outer(question=Q1)
    # 3 attempts x (LedomBestOfN's own scoring + dspy.BestOfN's reward): all on the one scorer object
    assert rec.ids == [id(rec)] * 6
    t = time.perf_counter()
    for _ in range(10):
        clone = inner.deepcopy()
    per_copy = (time.perf_counter() - t) / 10
    assert clone.scorer is rec and clone.scorer.inner.model is scorer.model
    t = time.perf_counter()
    copy.deepcopy(scorer.model)
    model_copy = time.perf_counter() - t
    assert per_copy < 0.05, f"a program deep copy took {per_copy * 1e3:.1f} ms"
    print(f"program deepcopy {per_copy * 1e3:.2f} ms; deepcopy of the (tiny) model alone {model_copy * 1e3:.2f} ms")


# ---------------------------------------------------------------------------------------- threads
QUESTIONS = [f"Ann has {a} pens and gets {b} more. How many pens does she have?" for a, b in
             [(1, 2), (2, 5), (3, 3), (4, 1), (6, 2), (7, 7)]]


def _answers():
    return {q: {"reasoning": f"Count: {q.split()[2]} plus more.", "answer": str(i), "next_step": f"#### {i}"}
            for i, q in enumerate(QUESTIONS)}


@pytest.mark.parametrize("kind", ["best_of_n", "stepwise"])
def test_parallel_and_batch_equal_sequential_with_one_local_scorer(scorer, kind):
    program = _programs(scorer)[kind]
    examples = [dspy.Example(question=q).with_inputs("question") for q in QUESTIONS]
    with dspy.context(lm=DummyLM(_answers())):
        seq = [program(question=q) for q in QUESTIONS]
        par = dspy.Parallel(num_threads=4)([(program, ex) for ex in examples])
        bat = program.batch(examples, num_threads=4)

    def key(p):
        return p.answer, round(p.ledom["reward"], 6)

    assert [key(p) for p in par] == [key(p) for p in bat] == [key(p) for p in seq]
    assert len({p.ledom["reward"] for p in seq}) == len(QUESTIONS)  # distinct questions, distinct scores
