"""Step-level beam search and DVTS with a scripted async generator and a deterministic fake scorer."""

from __future__ import annotations

import asyncio

import pytest

from ledom_reason.search import (
    BeamSearchConfig,
    DVTSConfig,
    GeneratedSteps,
    abeam_search,
    advts,
    beam_search,
)
from ledom_reason.types import PairScore


class StepScorer:
    """Reward of a chain = sum of the numbers after 'v' in each step (e.g. 'v3' adds 3)."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []

    @staticmethod
    def value(chain: str) -> float:
        return float(sum(int(tok[1:]) for tok in chain.replace("\n", " ").split() if tok.startswith("v")
                         and tok[1:].lstrip("-").isdigit()))

    async def ascore(self, pairs):
        self.calls.append(list(pairs))
        await asyncio.sleep(0)
        return [PairScore.build(self.value(c), 1, input_tokens=10) for _, c in pairs]

    def score(self, pairs):  # pragma: no cover - searches use ascore
        raise AssertionError("beam search must use ascore")


class ScriptedGenerator:
    """Steps from a function of (chain depth, expansion index, parent chain)."""

    def __init__(self, fn, tokens_per_step: int | None = None) -> None:
        self.fn = fn
        self.tokens = tokens_per_step
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, question: str, chain: str, n: int) -> list[str]:
        self.calls.append((chain, n))
        depth = 0 if not chain else chain.count("\n\n") + 1
        steps = [self.fn(depth, j, chain) for j in range(n)]
        return GeneratedSteps(steps, None if self.tokens is None else self.tokens * n)


def test_one_scorer_call_per_depth_with_k_times_n_chains():
    # never finishes: runs to max_depth; step j of depth d adds value j (+ a tag to keep chains distinct)
    gen = ScriptedGenerator(lambda d, j, c: f"d{d} v{j} t{len(c) % 7}", tokens_per_step=5)
    sc = StepScorer()
    cfg = BeamSearchConfig(beam_width=2, expansions=3, max_depth=3)
    res = beam_search("q", gen, sc, cfg)
    assert len(sc.calls) == 3
    assert all(len(call) == 2 * 3 for call in sc.calls)
    assert res.stats.scorer_calls == 3 and res.stats.scored_pairs == 18 and res.stats.scored_tokens == 180
    assert res.stats.generator_calls == 6 and res.stats.generated_tokens == 6 * 3 * 5
    assert res.finished is False and res.answer is None
    assert len(res.steps) == 3 and res.reward == 6.0  # best path takes v2 three times
    assert res.stats.wall_time_s >= 0


def test_pruning_order_keeps_top_k_and_trace_statuses():
    values = {0: [5, 1, 9], 1: [2, 8, 3]}
    gen = ScriptedGenerator(lambda d, j, c: f"v{values[d][j]}" + (f" after-{c[-2:]}" if c else ""))
    sc = StepScorer()
    res = beam_search("q", gen, sc, BeamSearchConfig(beam_width=2, expansions=3, max_depth=2))
    depth0 = [n for n in res.trace if n.depth == 0]
    assert len(depth0) == 6  # two copies of the root, three steps each
    kept0 = sorted((n for n in depth0 if n.status == "kept"), key=lambda n: n.id)
    assert [n.reward for n in kept0] == [9.0, 9.0]  # the two v9 children (ids in creation order)
    assert all(n.status == "pruned" for n in depth0 if n.reward != 9.0)
    depth1 = [n for n in res.trace if n.depth == 1]
    assert {n.parent for n in depth1} == {kept0[0].id, kept0[1].id}
    assert res.reward == 17.0 and res.steps[0].startswith("v9")


def test_stop_rule_finishes_chain_and_keeps_finished():
    # depth 0: expansion 0 answers at once with a low reward, others continue; depth 1: all answer
    def fn(d, j, c):
        if d == 0:
            return "v1 #### 1" if j == 0 else f"v{j + 4}"
        return f"v{j} #### {j + 10}"

    gen = ScriptedGenerator(fn)
    sc = StepScorer()
    res = beam_search("q", gen, sc, BeamSearchConfig(beam_width=2, expansions=2, max_depth=5))
    assert len(sc.calls) == 2  # stopped after depth 1: every kept chain finished
    assert res.finished and res.answer == "11" and res.reward == 6.0
    assert all(n.status in ("finished", "pruned") for n in res.trace if n.depth == 1)


def test_keep_finished_false_moves_finished_to_pool():
    def fn(d, j, c):
        if d == 0:
            return "v3 a" if j == 0 else "v1 b"
        return "v9 #### 1" if j == 0 else "v2 c"

    sc = StepScorer()
    res = beam_search("q", ScriptedGenerator(fn), sc,
                      BeamSearchConfig(beam_width=2, expansions=2, max_depth=6, keep_finished=False))
    assert len(sc.calls) == 2  # the pool held beam_width finished chains after depth 1
    assert len(res.candidates) == 2 and all(res.trace[i].status == "finished" for i in res.candidates)
    assert res.finished and res.answer == "1" and res.reward == 12.0
    # the beam refilled with the unfinished chains, which are not in the final pool
    assert sorted(n.step for n in res.trace if n.depth == 1 and n.status == "kept") == ["v2 c", "v2 c"]


def test_min_depth_before_prune_ignores_rewards_early():
    values = [1, 9, 8]
    gen = ScriptedGenerator(lambda d, j, c: f"v{values[j]} d{d}")
    sc = StepScorer()
    guarded = beam_search("q", gen, sc, BeamSearchConfig(beam_width=2, expansions=3, max_depth=2,
                                                         min_depth_before_prune=1))
    kept0 = [n for n in guarded.trace if n.depth == 0 and n.status == "kept"]
    assert [n.reward for n in kept0] == [1.0, 1.0]  # round-robin: first step of each beam, not the best
    unguarded = beam_search("q", gen, StepScorer(), BeamSearchConfig(beam_width=2, expansions=3, max_depth=2))
    assert sorted(n.reward for n in unguarded.trace if n.depth == 0 and n.status == "kept") == [9.0, 9.0]


def test_majority_final_pick_and_events():
    answers = {0: "7", 1: "7", 2: "3"}
    gen = ScriptedGenerator(lambda d, j, c: f"v{5 if j == 2 else 1} #### {answers[j]}")
    events = []
    res = beam_search("q", gen, StepScorer(), BeamSearchConfig(beam_width=1, expansions=3, max_depth=2,
                                                               aggregator="majority", keep_finished=False),
                      on_event=events.append)
    assert res.answer == "7" and res.votes["7"]["count"] == 2
    kinds = [e.kind for e in events]
    assert kinds[0] == "depth_start" and kinds[-1] == "finished" and "scored" in kinds and "depth_end" in kinds


async def test_async_api_async_hook_and_sync_wrapper_inside_a_running_loop():
    gen = ScriptedGenerator(lambda d, j, c: f"v{j} #### {j}")
    seen = []

    async def hook(ev):
        seen.append(ev.kind)

    res = await abeam_search("q", gen, StepScorer(), BeamSearchConfig(beam_width=1, expansions=2), on_event=hook)
    assert res.answer == "1" and seen[-1] == "finished"
    # the sync API called from inside a running loop runs on a helper thread (ledom_reason.concurrency)
    sync_seen = []
    again = beam_search("q", gen, StepScorer(), BeamSearchConfig(beam_width=1, expansions=2),
                        on_event=lambda ev: sync_seen.append(ev.kind))
    assert again.answer == res.answer and again.text == res.text and sync_seen == seen


def test_empty_steps_are_not_scored():
    gen = ScriptedGenerator(lambda d, j, c: "  " if j == 0 else f"v{j} #### {j}")
    sc = StepScorer()
    res = beam_search("q", gen, sc, BeamSearchConfig(beam_width=1, expansions=3, max_depth=2))
    assert len(sc.calls[0]) == 2 and sum(n.status == "empty" for n in res.trace) == 1


def test_bad_config_and_generator():
    with pytest.raises(ValueError, match="`beam_width`"):
        BeamSearchConfig(beam_width=0)
    with pytest.raises(ValueError, match="`aggregator`"):
        BeamSearchConfig(aggregator="random")
    with pytest.raises(ValueError, match="`budget`"):
        DVTSConfig(budget=10, expansions=4)

    async def bad(q, c, n):
        return "not a list"

    with pytest.raises(TypeError, match="`generator`"):
        beam_search("q", bad, StepScorer())


def test_dvts_budget_split_and_greedy_subtrees():
    # subtree of a chain is visible through its first step; reward = v-values; answers at depth 1
    def fn(d, j, c):
        return f"v{j} #### {j}" if d == 1 else f"v{j} s"

    gen = ScriptedGenerator(fn)
    sc = StepScorer()
    cfg = DVTSConfig(budget=12, expansions=3, max_depth=4)
    assert cfg.subtrees == 4
    res = asyncio.run(advts("q", gen, sc, cfg))
    assert [len(c) for c in sc.calls] == [12, 12]  # all subtrees' chains in one call per depth
    assert res.stats.generator_calls == 8 and all(n == 3 for _, n in gen.calls)
    subtrees = {n.subtree for n in res.trace if n.depth >= 0}
    assert subtrees == {0, 1, 2, 3}
    for s in subtrees:  # greedy: exactly one kept/finished node per depth and subtree
        for d in (0, 1):
            chosen = [n for n in res.trace if n.subtree == s and n.depth == d and n.status in ("kept", "finished")]
            assert len(chosen) == 1 and chosen[0].reward == max(
                m.reward for m in res.trace if m.subtree == s and m.depth == d)
    assert len(res.candidates) == 4 and res.answer == "2"


def test_beam_with_real_tiny_model(scorer):
    """A real scorer behind the engine: one call per depth, rewards equal the scorer's own numbers."""
    gen = ScriptedGenerator(lambda d, j, c: f"Step {d}.{j}: add {j + 1}." if d < 1 else f"So the total is {j}. #### {j}")
    res = beam_search("Tom has 3 apples and gets 4 more. How many?", gen, scorer,
                      BeamSearchConfig(beam_width=2, expansions=2, max_depth=3))
    assert res.stats.scorer_calls == 2 and res.finished
    best = res.trace[res.candidates[0]]
    direct = scorer.score([("Tom has 3 apples and gets 4 more. How many?", res.text)])[0]
    assert res.reward == pytest.approx(direct.reverse_logprob, abs=1e-4)
    assert best.score is not None and res.stats.scored_tokens > 0
