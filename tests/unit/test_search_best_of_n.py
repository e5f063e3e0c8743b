"""Best-of-N selection and the aggregators on crafted cases (fake scorer) and one real tiny model."""

from __future__ import annotations

import pytest

from ledom_reason.search import (
    BestOfNConfig,
    SearchEvent,
    aggregate,
    aselect_best_of_n,
    select_best_of_n,
    select_best_of_n_batch,
    select_from_scores,
)
from ledom_reason.types import PairScore


class TableScorer:
    """Reverse log-prob looked up by candidate text; forward log-prob = -(length); records calls."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls: list[list[tuple[str, str]]] = []

    def score(self, pairs):
        self.calls.append(list(pairs))
        return [PairScore.build(self.table[c], 2, forward_logprob=-float(len(c)), candidate_tokens=len(c),
                                input_tokens=len(q) + len(c)) for q, c in pairs]

    async def ascore(self, pairs):
        return self.score(pairs)


Q = "How many?"
# majority says 5 (three votes), reward says 7 (single best candidate)
CANDS = ["a #### 5", "b #### 5", "c #### 5", "the best #### 7", "e #### 9"]
TABLE = {"a #### 5": -9.0, "b #### 5": -8.0, "c #### 5": -7.0, "the best #### 7": -1.0, "e #### 9": -20.0}


def test_reward_and_majority_disagree():
    sc = TableScorer(TABLE)
    r = select_best_of_n(Q, CANDS, sc)
    assert (r.index, r.answer) == (3, "7")
    assert [c.index for c in r.ranking] == [3, 2, 1, 0, 4]
    assert len(sc.calls) == 1 and len(sc.calls[0]) == 5
    m = select_best_of_n(Q, CANDS, sc, BestOfNConfig(aggregator="majority"))
    assert m.answer == "5" and m.index == 0  # first candidate with the majority answer
    assert m.votes["5"]["count"] == 3 and m.votes["7"]["count"] == 1
    assert len(sc.calls) == 1, "majority must not call the scorer"
    assert m.stats.scorer_calls == 0


def test_majority_with_scores_picks_best_candidate_of_winning_answer():
    sc = TableScorer(TABLE)
    m = select_best_of_n(Q, CANDS, sc, BestOfNConfig(aggregator="majority", score_votes=True))
    assert m.answer == "5" and m.index == 2
    assert m.ranking[0].reward == -7.0


def test_weighted_follows_reward_mass():
    sc = TableScorer(TABLE)
    w = select_best_of_n(Q, CANDS, sc, BestOfNConfig(aggregator="weighted", temperature=1.0))
    assert w.answer == "7"  # exp(-1) dominates three tiny weights
    assert sum(v["weight"] for v in w.votes.values()) == pytest.approx(1.0)
    hot = select_best_of_n(Q, CANDS, sc, BestOfNConfig(aggregator="weighted", temperature=1000.0))
    assert hot.answer == "5"  # near-uniform weights: the vote wins


def test_ties_are_deterministic():
    answers = ["2", "3", "3", "2"]
    # 2 and 3 tie on votes; without rewards the answer seen first wins
    assert aggregate(answers, None, "majority").index == 0
    # with rewards, the tie goes to the answer holding the best reward
    assert aggregate(answers, [0.0, 1.0, 0.0, 0.0], "majority").index == 1
    # equal rewards: the lowest index wins
    assert aggregate(["1", "2"], [0.5, 0.5], "reward").index == 0
    assert aggregate(["1", "2", "3"], [0.0, 3.0, 3.0], "reward").order == [1, 2, 0]


def test_none_answers_do_not_vote():
    c = aggregate([None, None, "4"], None, "majority")
    assert c.index == 2 and None not in c.votes
    assert aggregate([None, None], None, "majority").index == 0


def test_random_is_seeded_and_scorer_free():
    sc = TableScorer(TABLE)
    picks = {select_best_of_n(Q, CANDS, sc, BestOfNConfig(aggregator="random", seed=s)).index for s in range(20)}
    assert len(picks) > 1
    a = select_best_of_n(Q, CANDS, sc, BestOfNConfig(aggregator="random", seed=3))
    b = select_best_of_n(Q, CANDS, sc, BestOfNConfig(aggregator="random", seed=3))
    assert a.index == b.index and sc.calls == []


def test_forward_uses_lambda_zero_and_lam_mixes():
    sc = TableScorer(TABLE)
    f = select_best_of_n(Q, CANDS, sc, BestOfNConfig(aggregator="forward"))
    assert f.index == 0  # shortest candidate wins on -(length), ties by index
    mix = select_best_of_n(Q, CANDS, sc, BestOfNConfig(lam=0.5))
    want = [0.5 * -len(c) + 0.5 * TABLE[c] for c in CANDS]
    assert [r.reward for r in sorted(mix.ranking, key=lambda r: r.index)] == pytest.approx(want)


def test_batch_is_one_scorer_call_and_events():
    sc = TableScorer({**TABLE, "x #### 1": -3.0, "y #### 2": -2.0})
    events: list[SearchEvent] = []
    res = select_best_of_n_batch([Q, "Other?"], [CANDS, ["x #### 1", "y #### 2"]], sc, on_event=events.append)
    assert len(sc.calls) == 1 and len(sc.calls[0]) == 7
    assert [r.answer for r in res] == ["7", "2"]
    assert res[1].stats.scored_pairs == 2
    assert res[1].stats.scored_tokens == sum(len("Other?") + len(c) for c in ["x #### 1", "y #### 2"])
    assert [e.kind for e in events] == ["scored", "finished"] and events[0].data["pairs"] == 7


async def test_async_with_async_hook():
    sc = TableScorer(TABLE)
    seen = []

    async def hook(ev):
        seen.append(ev.kind)

    r = await aselect_best_of_n(Q, CANDS, sc, on_event=hook)
    assert r.answer == "7" and seen == ["scored", "finished"]


def test_select_from_scores_matches_scorer_path():
    sc = TableScorer(TABLE)
    scores = sc.score([(Q, c) for c in CANDS])
    for agg in ("reward", "weighted", "forward"):
        cfg = BestOfNConfig(aggregator=agg)
        assert select_from_scores(Q, CANDS, scores, cfg).index == select_best_of_n(Q, CANDS, sc, cfg).index


def test_bad_input():
    sc = TableScorer(TABLE)
    with pytest.raises(ValueError, match="`candidates`"):
        select_best_of_n(Q, [], sc)
    with pytest.raises(ValueError, match="candidate"):
        select_best_of_n(Q, ["ok", "  "], sc)
    with pytest.raises(ValueError, match="`aggregator`"):
        BestOfNConfig(aggregator="best")
    with pytest.raises(ValueError, match="`lam`"):
        BestOfNConfig(lam=2.0)
    with pytest.raises(TypeError, match="`scorer`"):
        select_best_of_n(Q, CANDS, object())
    with pytest.raises(ValueError, match="`questions`"):
        select_best_of_n_batch([Q], [CANDS, CANDS], sc)


def test_real_tiny_model(scorer, scorer_fwd):
    """The real scorer: ranking equals sorting by the scorer's own numbers, one call, real token counts."""
    cands = ["3 + 4 = 7.\n#### 7", "3 + 4 = 8.\n#### 8", "Seven apples in all.\n#### 7"]
    q = "Tom has 3 apples and gets 4 more. How many apples?"
    r = select_best_of_n(q, cands, scorer)
    direct = [s.reverse_logprob for s in scorer.score([(q, c) for c in cands])]
    assert r.index == max(range(3), key=lambda i: (direct[i], -i))
    assert r.stats.scorer_calls == 1 and r.stats.scored_tokens > 0
    f = select_best_of_n(q, cands, scorer_fwd, BestOfNConfig(aggregator="forward"))
    fwd = [s.forward_logprob for s in scorer_fwd.score([(q, c) for c in cands])]
    assert f.index == max(range(3), key=lambda i: (fwd[i], -i))
    with pytest.raises(ValueError, match="forward"):
        select_best_of_n(q, cands, scorer, BestOfNConfig(lam=0.5))
