"""Beam search and DVTS against plain reference implementations, on the tiny real scorer.

The references below are written independently of ``ledom_reason.search`` (over chain texts, not
trace ids) and score with ``scorer.score`` directly. Each search must send the scorer exactly the
batches its reference sends (so every depth kept the same chains), pick the same final chain, and
account for what it did.
"""

from __future__ import annotations

import asyncio
import itertools
import zlib
from dataclasses import dataclass, field

import pytest

from ledom_reason.answers import extract_marked_answer
from ledom_reason.reward import reverse_reward
from ledom_reason.search import BeamSearchConfig, DVTSConfig, GeneratedSteps, beam_search, dvts

QUESTION = "Tom has 3 apples and gets 4 more. How many apples does he have?"
DELIM = "\n\n"


class Generator:
    """Deterministic steps from ``(partial chain, how often it was asked before, j)``.

    Some steps are blank, some carry a final answer (never at the root). The k copies of the root
    in beam search get different steps, so beams differ from depth 0 on.
    """

    def __init__(self) -> None:
        self.asked: dict[str, int] = {}

    @property
    def calls(self) -> int:
        return sum(self.asked.values())

    def steps(self, chain: str, n: int) -> list[str]:
        copy = self.asked.get(chain, 0)
        self.asked[chain] = copy + 1
        out = []
        for j in range(n):
            h = zlib.crc32(f"{chain}|{copy}|{j}".encode())
            if h % 7 == 0:
                out.append("   ")
            elif chain and h % 4 == 0:
                out.append(f"So he has {h % 10} apples. #### {h % 10}")
            else:
                out.append(f"He adds {h % 50} apples to the {h % 9} he had.")
        return out

    async def __call__(self, question: str, chain: str, n: int) -> list[str]:
        steps = self.steps(chain, n)
        await asyncio.sleep(0)
        return GeneratedSteps(steps, generated_tokens=2 * n)


class RecordingScorer:
    """The real scorer, recording every batch the search sends."""

    def __init__(self, scorer) -> None:
        self.scorer = scorer
        self.batches: list[list[tuple[str, str]]] = []

    async def ascore(self, pairs):
        self.batches.append(list(pairs))
        return await self.scorer.ascore(pairs)


@dataclass
class Chain:
    steps: tuple[str, ...]
    order: int  # creation order (the searches break reward ties by it)
    reward: float | None = None
    tokens: int = 0
    answer: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.answer = extract_marked_answer(self.steps[-1]) if self.steps else None

    @property
    def text(self) -> str:
        return DELIM.join(self.steps)


class Reference:
    """Expansion and one direct ``scorer.score`` call per depth, shared by both references."""

    def __init__(self, scorer, cfg) -> None:
        self.scorer, self.cfg = scorer, cfg
        self.batches: list[list[tuple[str, str]]] = []
        self.counter = itertools.count(1)
        self.generator = Generator()
        self.scored: list[Chain] = []

    def expand(self, parents: list[Chain]) -> list[list[Chain]]:
        """Children per parent, blank steps included (reward ``None``); scores the rest in one call."""
        kids = []
        for p in parents:
            kids.append([Chain((*p.steps, s.strip()), next(self.counter))
                         for s in self.generator.steps(p.text, self.cfg.expansions)])
        todo = [c for ks in kids for c in ks if c.steps[-1]]
        if todo:
            pairs = [(QUESTION, c.text) for c in todo]
            self.batches.append(pairs)
            for c, s in zip(todo, self.scorer.score(pairs), strict=True):
                c.reward = reverse_reward(s, lam=self.cfg.lam, normalize=self.cfg.normalize)
                c.tokens = s.input_tokens
            self.scored += todo
        return kids

    def pick(self, pool: list[Chain]) -> Chain:
        finished = [c for c in pool if c.answer is not None]
        return max(finished or pool, key=lambda c: (c.reward, -c.order))


def reference_beam(scorer, cfg: BeamSearchConfig) -> tuple[Reference, Chain]:
    ref = Reference(scorer, cfg)
    root = Chain((), 0)
    active, carried, pool = [root] * cfg.beam_width, [], []
    for depth in range(cfg.max_depth):
        kids = ref.expand(active)
        if depth < cfg.min_depth_before_prune:  # j-th step of every parent, then the (j+1)-th
            new = [c for col in itertools.zip_longest(*kids) for c in col if c is not None]
        else:
            new = [c for ks in kids for c in ks]
        new = [c for c in new if c.reward is not None]
        cands = carried + new
        if depth >= cfg.min_depth_before_prune:
            cands.sort(key=lambda c: (-c.reward, c.order))
        if not cfg.keep_finished:
            pool += [c for c in cands if c.answer is not None]
            cands = [c for c in cands if c.answer is None]
        beam = cands[: cfg.beam_width]
        carried = [c for c in beam if c.answer is not None]
        active = [c for c in beam if c.answer is None]
        if not active or (not cfg.keep_finished and len(pool) >= cfg.beam_width):
            break
    return ref, ref.pick(carried + pool or active)


def reference_dvts(scorer, cfg: DVTSConfig) -> tuple[Reference, Chain]:
    ref = Reference(scorer, cfg)
    heads = [Chain((), 0)] * cfg.subtrees  # one greedy chain per subtree
    running = list(range(cfg.subtrees))
    for depth in range(cfg.max_depth):
        kids = ref.expand([heads[s] for s in running])
        for s, ks in zip(list(running), kids, strict=True):
            ok = [c for c in ks if c.reward is not None]
            if not ok:
                running.remove(s)
                continue
            heads[s] = ok[0] if depth < cfg.min_depth_before_prune else max(ok, key=lambda c: (c.reward, -c.order))
            if heads[s].answer is not None:
                running.remove(s)
        if not running:
            break
    return ref, ref.pick([h for h in heads if h.steps])


CASES = [
    ("beam", BeamSearchConfig(beam_width=2, expansions=3, max_depth=4)),
    ("beam", BeamSearchConfig(beam_width=3, expansions=2, max_depth=4, keep_finished=False, normalize="mean")),
    ("beam", BeamSearchConfig(beam_width=2, expansions=3, max_depth=4, min_depth_before_prune=2)),
    ("dvts", DVTSConfig(budget=6, expansions=3, max_depth=4)),
    ("dvts", DVTSConfig(budget=4, expansions=2, max_depth=4, min_depth_before_prune=1)),
]


@pytest.mark.parametrize(("method", "cfg"), CASES, ids=[f"{m}-{i}" for i, (m, _) in enumerate(CASES)])
def test_search_matches_reference(scorer, method, cfg):
    rec, gen, events = RecordingScorer(scorer), Generator(), []
    search, reference = (beam_search, reference_beam) if method == "beam" else (dvts, reference_dvts)
    res = search(QUESTION, gen, rec, cfg, on_event=events.append)
    ref, best = reference(scorer, cfg)

    # the same batches in the same order: every depth kept the same chains, one scorer call per depth
    assert rec.batches == ref.batches and len(ref.batches) >= 2
    assert res.text == best.text and res.answer == best.answer
    assert res.reward == pytest.approx(best.reward, abs=1e-4)
    rewards = {c.text: c.reward for c in ref.scored}
    for node in res.trace:
        if node.reward is not None:
            assert node.reward == pytest.approx(rewards[DELIM.join(res.chain_of(node.id))], abs=1e-4)

    # accounting, from what the reference did independently
    st = res.stats
    assert st.scorer_calls == len(ref.batches) and st.scored_pairs == sum(len(b) for b in ref.batches)
    assert st.scored_tokens == sum(c.tokens for c in ref.scored)
    assert st.generator_calls == gen.calls == ref.generator.calls
    assert st.generated_tokens == 2 * cfg.expansions * gen.calls

    # events: per depth depth_start, scored, depth_end; then one finished
    depths = len(ref.batches)
    assert [e.kind for e in events] == ["depth_start", "scored", "depth_end"] * depths + ["finished"]
    assert [e.data["scorer_calls"] for e in events if e.kind == "scored"] == list(range(1, depths + 1))
    assert [e.data["pairs"] for e in events if e.kind == "scored"] == [len(b) for b in ref.batches]
