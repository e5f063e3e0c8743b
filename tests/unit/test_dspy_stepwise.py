"""DSPy LedomStepwiseCoT: step-wise rationale search with DummyLM steps, pruned by the real tiny scorer."""

from __future__ import annotations

import copy
import re

import pytest

pytest.importorskip("dspy")

import dspy
from dspy.utils.dummies import DummyLM

from ledom_reason import ScorerConfig, reverse_reward
from ledom_reason.integrations._common import CandidateScoringError
from ledom_reason.integrations.dspy import LedomStepwiseCoT

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
D0 = ["Tom starts with 3 apples.", "We need to add the apples together.",
      "Let x be the number of apples.", "Multiply 3 by 4 first."]
D1 = ["He buys 4 more apples, so 3 + 4.", "Adding gives 3 + 4 = 7.", "So x = 3 + 4.", "That gives 12 apples."]
D2 = ["The total is 7.\n#### 7", "#### 7", "So he has 7 apples.\n#### 7", "#### 12"]
FINAL = {"answer": "7"}
SO_FAR = re.compile(r"\[\[ ## reasoning_so_far ## \]\]\n(.*?)\n\n(?:\[\[ ## |Respond with)", re.S)


def _lm(*depths: list[str]) -> DummyLM:
    return DummyLM([{"next_step": s} for d in depths for s in d] + [FINAL])


def _chain(trace: list[dict], i: int) -> str:
    steps = []
    while trace[i]["parent"] is not None:
        steps.append(trace[i]["step"])
        i = trace[i]["parent"]
    return "\n\n".join(reversed(steps))


def _reward(scorer, chains: list[str], **kw) -> list[float]:
    return [reverse_reward(s, normalize="mean", **kw) for s in scorer.score([(Q, c) for c in chains])]


def _check_pruning(scorer, pred, k: int, n: int) -> None:
    """At every depth the kept partial rationales are exactly the top-k by the scorer's own rewards."""
    trace = pred.ledom["trace"]
    depths = sorted({t["depth"] for t in trace if t["depth"] >= 0})
    assert depths == [0, 1, 2]
    for d in depths:
        nodes = [t for t in trace if t["depth"] == d]
        assert len(nodes) == k * n  # k kept parents (k root copies at depth 0) x n samples
        rewards = _reward(scorer, [_chain(trace, t["id"]) for t in nodes])
        for t, r in zip(nodes, rewards, strict=True):
            assert t["reward"] == pytest.approx(r, abs=1e-4)
        expected = sorted(range(len(nodes)), key=lambda j: (-rewards[j], nodes[j]["id"]))[:k]
        kept = [t["id"] for t in nodes if t["status"] in ("kept", "finished")]
        assert sorted(kept) == sorted(nodes[j]["id"] for j in expected)
        assert {t["parent"] for t in trace if t["depth"] == d + 1} <= set(kept)
    pool = pred.ledom["chains"]
    assert len(pool) == k and all(c["finished"] for c in pool)
    best = max(pool, key=lambda c: _reward(scorer, [c["text"]])[0])
    assert pred.reasoning == best["text"] == "\n\n".join(pred.ledom["steps"])


def test_forward_keeps_the_top_k_partial_rationales(scorer):
    cot = LedomStepwiseCoT("question -> answer", scorer=scorer, beam_width=2, expansions=2, max_depth=4)
    lm = _lm(D0, D1, D2)
    with dspy.context(lm=lm):
        pred = cot(question=Q)
    _check_pruning(scorer, pred, k=2, n=2)
    assert pred.answer == "7" and pred.ledom["answer"] == pred.reasoning.rsplit("#### ", 1)[1]
    assert pred.ledom["reward"] == pytest.approx(_reward(scorer, [pred.reasoning])[0], abs=1e-4)
    stats = pred.ledom["stats"]
    assert (stats["generator_calls"], stats["scorer_calls"], stats["scored_pairs"]) == (6, 3, 12)
    assert stats["predictor_calls"] == len(lm.history) == 13 and stats["failed_steps"] == 0
    assert len({h["kwargs"]["rollout_id"] for h in lm.history[:-1]}) == 12  # every step sample is distinct
    # every step call saw a kept partial rationale; the answer call saw the chosen rationale
    seen = sorted(SO_FAR.search(h["messages"][-1]["content"]).group(1) for h in lm.history[:-1])
    trace = pred.ledom["trace"]
    parents = [_chain(trace, t["parent"]) if t["parent"] else "" for t in trace if t["depth"] >= 0]
    assert seen == sorted(parents)
    assert f"[[ ## reasoning ## ]]\n{pred.reasoning}\n" in lm.history[-1]["messages"][-1]["content"]


async def test_aforward_equals_forward(scorer):
    kw = {"scorer": scorer, "beam_width": 2, "expansions": 2, "max_depth": 4}
    with dspy.context(lm=_lm(D0, D1, D2)):
        sync = LedomStepwiseCoT("question -> answer", max_workers=1, **kw)(question=Q)  # in a helper thread
    with dspy.context(lm=_lm(D0, D1, D2)):
        pred = await LedomStepwiseCoT("question -> answer", **kw).acall(question=Q)
    _check_pruning(scorer, pred, k=2, n=2)
    assert (pred.reasoning, pred.answer) == (sync.reasoning, sync.answer)
    assert [(t["step"], t["parent"], t["status"]) for t in pred.ledom["trace"]] == \
           [(t["step"], t["parent"], t["status"]) for t in sync.ledom["trace"]]
    assert pred.ledom["reward"] == pytest.approx(sync.ledom["reward"], abs=1e-5)


def test_lambda_uses_forward_scores_and_dvts(scorer_fwd):
    cot = LedomStepwiseCoT(dspy.ChainOfThought("question -> answer"), scorer=scorer_fwd, method="dvts",
                           beam_width=2, expansions=2, max_depth=2, lam=0.5)
    with dspy.context(lm=_lm(D0, D2)):
        pred = cot(question=Q)
    trace = pred.ledom["trace"]
    assert {t["subtree"] for t in trace if t["depth"] >= 0} == {0, 1}
    for t in trace[1:]:  # every node's reward mixes reverse and forward log-probs
        assert t["reward"] == pytest.approx(_reward(scorer_fwd, [_chain(trace, t["id"])], lam=0.5)[0], abs=1e-4)
    greedy = [max((t for t in trace if t["parent"] == 0 and t["subtree"] == s), key=lambda t: t["reward"])["id"]
              for s in (0, 1)]  # DVTS: each subtree keeps its best first step
    assert {t["parent"] for t in trace if t["depth"] == 1} == set(greedy)
    assert pred.reasoning == max(pred.ledom["chains"], key=lambda c: c["reward"])["text"]


def test_trace_holds_only_the_chosen_chain_and_optimizers_see_both_predictors(scorer):
    events = []
    cot = LedomStepwiseCoT("question -> answer", scorer=scorer, beam_width=2, expansions=2, max_depth=4,
                           on_event=events.append)
    lm = _lm(D0, D1, D2)
    with dspy.context(lm=lm, trace=[]):
        pred = cot(question=Q, config={"max_tokens": 77})
        trace = list(dspy.settings.trace)
    assert all(h["kwargs"]["max_tokens"] == 77 for h in lm.history)  # the call's config reaches every call
    assert [e.kind for e in events] == ["depth_start", "scored", "depth_end"] * 3 + ["finished"]
    assert [e[2].get("next_step", e[2].get("answer")) for e in trace] == [*pred.ledom["steps"], "7"]
    assert [e[0] for e in trace] == [cot.step] * 3 + [cot.answer]
    assert [name for name, _ in cot.named_predictors()] == ["step", "answer"]
    assert copy.deepcopy(cot).scorer is scorer


def test_failed_step_samples_are_skipped_within_fail_count(scorer, caplog):
    ok = [{"next_step": s} for s in D0[:2]]
    bad = [{"wrong_field": "x"}] * 2  # one failed sample: the adapter, then its JSON fallback, cannot parse it
    d2 = [{"next_step": s} for s in D2]
    cot = LedomStepwiseCoT("question -> answer", scorer=scorer, beam_width=2, expansions=2, max_depth=2,
                           max_workers=1)
    with dspy.context(lm=DummyLM([ok[0], *bad, ok[1], *bad, *d2, FINAL])):
        pred = cot(question=Q)
    assert pred.ledom["stats"]["failed_steps"] == 2 and "step sample failed" in caplog.text
    assert [t["step"] for t in pred.ledom["trace"] if t["depth"] == 0] == [D0[0], "", D0[1], ""]
    assert pred.reasoning.split("\n\n")[0] in D0[:2] and pred.answer == "7"
    cot.fail_count = 1
    with dspy.context(lm=DummyLM([ok[0], *bad, ok[1], *bad])), pytest.raises(RuntimeError, match="fail_count=1"):
        cot(question=Q)
    cot.fail_count = None
    with dspy.context(lm=DummyLM(bad * 4)), pytest.raises(RuntimeError, match="no reasoning step"):
        cot(question=Q)


def test_bad_input(scorer):
    with pytest.raises(ValueError, match="`expansions`"):
        LedomStepwiseCoT("question -> answer", scorer=scorer, expansions=0)
    with pytest.raises(TypeError, match="`expansions`"):
        LedomStepwiseCoT("question -> answer", scorer=scorer, expansions=2.5)
    with pytest.raises(ValueError, match="`beam_width`"):
        LedomStepwiseCoT("question -> answer", scorer=scorer, beam_width=0)
    with pytest.raises(ValueError, match="`max_depth`"):
        LedomStepwiseCoT("question -> answer", scorer=scorer, max_depth=0)
    with pytest.raises(ValueError, match="`aggregator`"):
        LedomStepwiseCoT("question -> answer", scorer=scorer, aggregator="best")
    with pytest.raises(ValueError, match="`question_field`"):
        LedomStepwiseCoT("query -> answer", scorer=scorer)
    with pytest.raises(TypeError, match="`signature`"):
        LedomStepwiseCoT(42, scorer=scorer)
    with pytest.raises(TypeError, match="`scorer`"):
        LedomStepwiseCoT("question -> answer", scorer=object())
    lm = _lm(D0)
    cot = LedomStepwiseCoT("question -> answer", scorer=scorer)
    with dspy.context(lm=lm), pytest.raises(ValueError, match="`question`"):
        cot(query=Q)
    with dspy.context(lm=lm), pytest.raises(ValueError, match="`question`"):
        cot(question="  ")
    assert lm.history == []  # failed before any LM call


def test_scorer_failure_names_the_partial_rationale(scorer):
    strict = type(scorer)(scorer.model, scorer.tokenizer, config=ScorerConfig(truncate="error", max_length=64))
    d0 = [D0[0], "step " * 200, D0[1], D0[2]]
    cot = LedomStepwiseCoT("question -> answer", scorer=strict, beam_width=2, expansions=2, max_workers=1)
    with dspy.context(lm=_lm(d0)), pytest.raises(CandidateScoringError, match="partial rationale") as ei:
        cot(question=Q)
    assert ei.value.candidate.startswith("step step")
