"""Compute accounting tells the truth: wall time of the whole call, generation and scoring time apart,
generated tokens only when every generator call reported them."""

from __future__ import annotations

import asyncio
import time

from ledom_reason.search import (
    STATS_FIELDS,
    BeamSearchConfig,
    DVTSConfig,
    GeneratedSteps,
    SearchStats,
    abeam_search,
    advts,
    aselect_best_of_n_batch,
)
from ledom_reason.types import PairScore

GEN_S = 0.15
SCORE_S = 0.10


class SlowScorer:
    """Sleeps ``SCORE_S`` per call; reward = minus the candidate length."""

    def __init__(self) -> None:
        self.calls = 0

    async def ascore(self, pairs):
        self.calls += 1
        await asyncio.sleep(SCORE_S)
        return [PairScore.build(-float(len(c)), 1, input_tokens=3) for _, c in pairs]

    def score(self, pairs):  # pragma: no cover - searches use ascore
        raise AssertionError("searches use ascore")


def slow_generator(tokens: int | None):
    calls = []

    async def gen(question: str, chain: str, n: int) -> list[str]:
        calls.append(chain)
        await asyncio.sleep(GEN_S)  # concurrent calls of one depth overlap
        return GeneratedSteps([f"step {len(chain)} {j}" for j in range(n)], tokens)

    gen.calls = calls  # type: ignore[attr-defined]
    return gen


async def test_beam_search_times_generation_and_scoring_separately():
    sc = SlowScorer()
    gen = slow_generator(tokens=4)
    t0 = time.perf_counter()
    res = await abeam_search("q?", gen, sc, BeamSearchConfig(beam_width=3, expansions=2, max_depth=3))
    outside = time.perf_counter() - t0
    st = res.stats
    depths = 3
    # k = 3 concurrent generator calls per depth wait GEN_S together: their span, not a sum (3 * GEN_S)
    assert st.generator_calls == 9 and len(gen.calls) == 9
    assert depths * GEN_S <= st.generation_time_s < depths * 2 * GEN_S
    assert st.scorer_calls == sc.calls == depths
    assert depths * SCORE_S <= st.scoring_time_s
    # the whole call: generation + scoring + bookkeeping, and no more than measured from outside
    assert st.generation_time_s + st.scoring_time_s <= st.wall_time_s <= outside
    assert st.generated_tokens == 9 * 4
    assert list(st.to_dict()) == list(STATS_FIELDS)


async def test_dvts_accounts_like_beam_search():
    res = await advts("q?", slow_generator(tokens=None), SlowScorer(), DVTSConfig(budget=4, expansions=2, max_depth=2))
    st = res.stats
    assert st.generator_calls == 4 and st.generated_tokens is None  # the generator reported no tokens
    assert 2 * GEN_S <= st.generation_time_s and 2 * SCORE_S <= st.scoring_time_s
    assert st.generation_time_s + st.scoring_time_s <= st.wall_time_s


async def test_best_of_n_wall_time_covers_the_call_and_scoring_time_is_the_scorer_call():
    sc = SlowScorer()
    t0 = time.perf_counter()
    res = await aselect_best_of_n_batch(["a?", "b?"], [["x", "yy"], ["zzz", "w"]], sc)
    outside = time.perf_counter() - t0
    assert sc.calls == 1
    for r in res:
        assert r.stats.scorer_calls == 1 and r.stats.scored_pairs == 2 and r.stats.scored_tokens == 6
        assert SCORE_S <= r.stats.scoring_time_s <= r.stats.wall_time_s <= outside
        assert r.stats.generator_calls == 0 and r.stats.generation_time_s == 0.0
        assert r.stats.generated_tokens is None  # nothing generated here


def test_generated_tokens_are_none_unless_every_call_reported():
    st = SearchStats()
    st.add_generation(2, 10, seconds=0.5)
    st.add_generation(1, 5)
    assert st.generated_tokens == 15 and st.generator_calls == 3 and st.generation_time_s == 0.5
    st.add_generation(1, None)
    assert st.generated_tokens is None
    st.add_generation(1, 7)  # a later report does not make the total whole again
    assert st.generated_tokens is None and st.generator_calls == 5
    assert "_unreported" not in st.to_dict()
