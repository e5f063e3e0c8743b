"""LedomVerifier: a LangChain runnable over the real tiny reverse scorer (no mocks of our scorer)."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import ConfigurableField, RunnableLambda

from ledom_reason import ScorerConfig, reverse_reward
from ledom_reason.integrations._common import CandidateScoringError
from ledom_reason.integrations.langchain import LedomVerifier, ScoredCandidate

Q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
CANDS = ["He has 3 + 4 = 7 apples.\n#### 7", "He has 3 * 4 = 12 apples.\n#### 12", "The answer is 7."]


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[tuple[str, list[str]]] = []
        self.ends = 0

    def on_chain_start(self, serialized, inputs, *, tags=None, name=None, **kw):  # type: ignore[override]
        self.starts.append((kw.get("name") or name, tags or []))

    def on_chain_end(self, outputs, **kw):  # type: ignore[override]
        self.ends += 1


def test_invoke_matches_direct_scorer(scorer):
    v = LedomVerifier(scorer=scorer)
    out = v.invoke({"question": Q, "candidates": CANDS})
    direct = [reverse_reward(s, normalize="mean") for s in scorer.score([(Q, c) for c in CANDS])]
    assert [r.index for r in out] == sorted(range(3), key=lambda i: -direct[i])
    assert all(isinstance(r, ScoredCandidate) for r in out)
    for r in out:
        assert r.text == CANDS[r.index]
        assert r.reward == pytest.approx(direct[r.index], abs=1e-5)
        assert r.score["question_tokens"] > 0
    assert out[0].reward >= out[-1].reward


async def test_ainvoke_batch_abatch_stream_agree(scorer):
    v = LedomVerifier(scorer=scorer, normalize="sum")
    ref = v.invoke({"question": Q, "candidates": CANDS})
    inputs = [{"question": Q, "candidates": CANDS}, {"question": "What is 2+2?", "candidates": ["4", "2+2 = 4"]}]
    b = v.batch(inputs)
    ab = await v.abatch(inputs)
    a = await v.ainvoke({"question": Q, "candidates": CANDS})
    chunks = list(v.stream({"question": Q, "candidates": CANDS}))
    for got in (a, b[0], ab[0], chunks[-1]):
        assert [(r.index, round(r.reward, 4)) for r in got] == [(r.index, round(r.reward, 4)) for r in ref]
    assert len(b[1]) == 2 and b[1][0].reward >= b[1][1].reward


def test_batch_is_one_scorer_call(scorer):
    calls = []

    class Counting:
        def score(self, pairs):
            calls.append(len(pairs))
            return scorer.score(pairs)

        async def ascore(self, pairs):
            return self.score(pairs)

    v = LedomVerifier(scorer=Counting())
    v.batch([{"question": Q, "candidates": CANDS}] * 3, config={"max_concurrency": 1})
    assert calls == [9]


def test_message_and_string_list_inputs(scorer):
    v = LedomVerifier(scorer=scorer)
    ref = v.invoke({"question": Q, "candidates": CANDS})
    msgs = [HumanMessage(Q), *[AIMessage(c) for c in CANDS]]
    strs = [Q, *CANDS]
    for x in (msgs, strs):
        assert [r.index for r in v.invoke(x)] == [r.index for r in ref]


def test_runnable_config_callbacks_tags_and_lcel(scorer):
    rec = _Recorder()
    chain = RunnableLambda(lambda q: {"question": q, "candidates": CANDS}) | LedomVerifier(scorer=scorer)
    out = chain.invoke(Q, config={"callbacks": [rec], "tags": ["t1"], "max_concurrency": 2})
    assert len(out) == 3
    names = [n for n, _ in rec.starts]
    assert "LedomVerifier" in names
    assert all("t1" in tags for _, tags in rec.starts)
    assert rec.ends == len(rec.starts)
    assert v_schema_ok(LedomVerifier(scorer=scorer))


def v_schema_ok(v: LedomVerifier) -> bool:
    schema = v.get_input_jsonschema()
    return set(schema["required"]) == {"question", "candidates"}


def test_with_retry_retries_then_succeeds(scorer):
    state = {"fail": 1}

    class Flaky:
        def score(self, pairs):
            if state["fail"]:
                state["fail"] -= 1
                raise ConnectionError("replica down")
            return scorer.score(pairs)

        async def ascore(self, pairs):
            return self.score(pairs)

    v = LedomVerifier(scorer=Flaky()).with_retry(
        retry_if_exception_type=(CandidateScoringError,), stop_after_attempt=2, wait_exponential_jitter=False)
    assert len(v.invoke({"question": Q, "candidates": CANDS})) == 3
    assert state["fail"] == 0


def test_configurable_lambda(scorer_fwd):
    v = LedomVerifier(scorer=scorer_fwd).configurable_fields(lam=ConfigurableField(id="ledom_lam"))
    x = {"question": Q, "candidates": CANDS}
    fwd_only = v.with_config(configurable={"ledom_lam": 0.0}).invoke(x)
    rev_only = v.invoke(x)
    s = scorer_fwd.score([(Q, c) for c in CANDS])
    for r in fwd_only:
        assert r.reward == pytest.approx(s[r.index].forward_mean, abs=1e-5)
    for r in rev_only:
        assert r.reward == pytest.approx(s[r.index].reverse_mean, abs=1e-5)


@pytest.mark.parametrize(
    ("bad", "exc", "match"),
    [
        ({"candidates": ["a"]}, ValueError, "`question`"),
        ({"question": Q}, ValueError, "`candidates`"),
        ({"question": Q, "candidates": []}, ValueError, "empty"),
        ({"question": " ", "candidates": ["a"]}, ValueError, "`question` is empty"),
        ({"question": Q, "candidates": ["ok", ""]}, ValueError, r"candidates\[1\]"),
        ({"question": Q, "candidates": "abc"}, TypeError, "list"),
        ({"question": Q, "candidates": ["ok", 3]}, TypeError, r"candidates\[1\]"),
        (42, TypeError, "input must be"),
    ],
)
def test_bad_input(scorer, bad, exc, match):
    with pytest.raises(exc, match=match):
        LedomVerifier(scorer=scorer).invoke(bad)


def test_bad_lambda_rejected(scorer):
    with pytest.raises(ValueError, match="lam"):
        LedomVerifier(scorer=scorer, lam=1.5)
    with pytest.raises(ValueError, match="extra"):
        LedomVerifier(scorer=scorer, unknown=1)


def test_batch_return_exceptions_keeps_good_inputs(scorer):
    out = LedomVerifier(scorer=scorer).batch([{"question": Q}, {"question": Q, "candidates": CANDS}],
                                             return_exceptions=True)
    assert isinstance(out[0], ValueError)
    assert len(out[1]) == 3


def test_scorer_failure_mid_batch_names_candidate(scorer):
    strict = type(scorer)(scorer.model, scorer.tokenizer, config=ScorerConfig(truncate="error", max_length=64))
    long = "step " * 200
    v = LedomVerifier(scorer=strict)
    with pytest.raises(CandidateScoringError, match=r"candidate 2") as ei:
        v.invoke({"question": Q, "candidates": [CANDS[0], CANDS[1], long]})
    assert ei.value.index == 2 and ei.value.candidate == long
    assert isinstance(ei.value.__cause__, ValueError)
    with pytest.raises(CandidateScoringError, match=r"input 1, candidate 0"):
        v.batch([{"question": Q, "candidates": CANDS[:2]}, {"question": Q, "candidates": [long]}])


def test_verifier_request_model_input(scorer):
    from ledom_reason.integrations.langchain import VerifierRequest

    out = LedomVerifier(scorer=scorer).invoke(VerifierRequest(question=Q, candidates=CANDS))
    assert sorted(r.index for r in out) == [0, 1, 2]
