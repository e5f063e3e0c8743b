"""Experiment runner: candidates file + scorer → per-problem JSONL, summary table, plots.

Scoring happens once per (question, candidate) (a :class:`ScoreCache` in the output folder); every
aggregator, N and λ is then computed from the cached scores, so a sweep costs one scoring pass.
Rerunning after an interruption skips problems already in ``per_problem.jsonl`` (no duplicate rows)
and reuses cached scores.

Output folder::

    scores.jsonl        score cache ({"key", "score"})
    per_problem.jsonl   one row per problem (answers, correctness, scores, choice per aggregator)
    summary.json / summary.md   accuracy ± 95% Wilson CI per aggregator, pass@N, greedy, N and λ sweeps,
                        and compute accounting (``stats``, the keys of :class:`~ledom_reason.search.SearchStats`)
    acc_vs_n.png, acc_vs_lambda.png
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ledom_reason.answers import extract_answer
from ledom_reason.eval.grading import is_equiv
from ledom_reason.eval.score_cache import ScoreCache
from ledom_reason.eval.stats import wilson_ci
from ledom_reason.io import append_jsonl, atomic_open, read_resumable
from ledom_reason.reward import Normalize, validate_reward_args
from ledom_reason.search.aggregate import AGGREGATORS, SCORE_FREE_AGGREGATORS
from ledom_reason.search.best_of_n import BestOfNConfig, select_from_scores
from ledom_reason.types import PairScore

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass
class EvalConfig:
    """What to compute.

    > Selection
        aggregators: Subset of ``reward, majority, weighted, random, forward``.
        lam, normalize: Reward used by ``reward``/``weighted`` in the main table.
        temperature: Softmax temperature of ``weighted``.

    > Sweeps
        ns: Candidate counts for the accuracy-vs-N curve: the first N of a seeded permutation of a
            problem's candidates (nested across N; values above the candidate count use all of them).
        seeds: Subsampling repeats averaged per N.
        lams: λ values for the accuracy-vs-λ curve (``reward`` and ``weighted``; λ < 1 needs forward scores).
        seed: Base seed (random aggregator, subsampling).

    > Running
        chunk: Problems whose candidates are scored in one scorer call.
    """

    aggregators: tuple[str, ...] = AGGREGATORS
    lam: float = 1.0
    normalize: Normalize = "sum"
    temperature: float = 1.0
    ns: tuple[int, ...] = (1, 2, 4, 8, 16)
    seeds: int = 5
    lams: tuple[float, ...] = (1.0,)
    seed: int = 0
    chunk: int = 16
    extract: Callable[[str], str | None] = field(default=extract_answer, repr=False)

    def __post_init__(self) -> None:
        bad = [a for a in self.aggregators if a not in AGGREGATORS]
        if bad or not self.aggregators:
            raise ValueError(f"`aggregators` must be a non-empty subset of {AGGREGATORS}, got {self.aggregators}")
        validate_reward_args(self.lam, self.normalize)
        for lam in self.lams:
            validate_reward_args(lam, self.normalize)
        if not self.ns or any(n < 1 for n in self.ns):
            raise ValueError(f"`ns` must be positive ints, got {self.ns}")
        if self.seeds < 1 or self.chunk < 1:
            raise ValueError("`seeds` and `chunk` must be >= 1")

    @property
    def needs_scores(self) -> bool:
        return any(a not in SCORE_FREE_AGGREGATORS for a in self.aggregators) or self.lams != (1.0,)

    @property
    def needs_forward(self) -> bool:
        return "forward" in self.aggregators or self.lam < 1 or any(x < 1 for x in self.lams)

    def selection(self, aggregator: str, lam: float | None = None) -> BestOfNConfig:
        return BestOfNConfig(aggregator=aggregator, lam=self.lam if lam is None else lam,  # type: ignore[arg-type]
                             normalize=self.normalize, temperature=self.temperature, seed=self.seed)


def _problem_row(row: dict[str, Any], cache: ScoreCache | None, cfg: EvalConfig) -> dict[str, Any]:
    q, gold, cands = row["question"], row["gold"], row["candidates"]
    answers = [cfg.extract(c) for c in cands]
    correct = [is_equiv(a, gold) for a in answers]
    scores = [cache.get(q, c) for c in cands] if cache is not None else None
    out: dict[str, Any] = {
        "id": row["id"], "question": q, "gold": gold, "n": len(cands),
        "answers": answers, "correct": correct, "pass_at_n": any(correct),
        "scores": None if scores is None else [s.to_dict() for s in scores],
        "stats": row.get("stats"),  # generation cost, when the candidates file records it
    }
    if row.get("greedy"):
        ga = cfg.extract(row["greedy"])
        out["greedy"] = {"answer": ga, "correct": is_equiv(ga, gold)}
    out["choices"] = {}
    for agg in cfg.aggregators:
        res = select_from_scores(q, cands, scores if agg not in SCORE_FREE_AGGREGATORS else None,
                                 cfg.selection(agg), answers=answers)
        out["choices"][agg] = {"index": res.index, "answer": res.answer, "correct": correct[res.index]}
    return out


def _check_forward(scores: Sequence[PairScore], cfg: EvalConfig) -> None:
    if cfg.needs_forward and scores and scores[0].forward_logprob is None:
        raise ValueError(
            "the `forward` aggregator and λ < 1 need forward log-probs: configure the scorer with a forward "
            "model (--forward-model), or drop `forward` and use --lams 1"
        )


def _choose(q: str, idx: list[int], rec: dict[str, Any], scores: list[PairScore] | None, cfg: EvalConfig,
            agg: str, lam: float | None = None) -> bool:
    answers = [rec["answers"][i] for i in idx]
    sub = None if scores is None or agg in SCORE_FREE_AGGREGATORS else [scores[i] for i in idx]
    res = select_from_scores(q, [str(i) for i in idx], sub, cfg.selection(agg, lam), answers=answers)
    return bool(rec["correct"][idx[res.index]])


def compute_stats(records: Sequence[dict[str, Any]], run: dict[str, float] | None = None) -> dict[str, Any]:
    """Compute accounting of an evaluation, with the keys of :class:`~ledom_reason.search.SearchStats`.

    Pairs and tokens cover every problem (from the recorded scores); ``generated_tokens`` and
    ``generation_time_s`` add up the candidates file's per-problem ``stats`` (``None`` unless every problem has
    them); ``scorer_calls`` (scoring passes, one per chunk of problems with pairs not yet cached),
    ``scoring_time_s`` and ``wall_time_s`` are those of this invocation (``run``), so a resumed run counts only
    the part it scored. ``generator_calls`` is ``None``: a candidates file does not say.
    """
    run = run or {}
    scores = [s for r in records for s in (r.get("scores") or [])]
    gen_tokens: int | None = 0
    gen_s: float | None = 0.0
    for r in records:
        g = r.get("stats")
        if not isinstance(g, dict) or g.get("generated_tokens") is None or gen_tokens is None or gen_s is None:
            gen_tokens = gen_s = None
            continue
        gen_tokens += int(g["generated_tokens"])
        gen_s += float(g.get("generation_time_s", 0.0))
    out: dict[str, Any] = {
        "generator_calls": None,
        "generated_tokens": gen_tokens if records else None,
        "scorer_calls": int(run.get("scorer_calls", 0)),
        "scored_pairs": len(scores),
        "scored_tokens": sum(int(s.get("input_tokens", 0)) for s in scores),
        "wall_time_s": float(run.get("wall_time_s", 0.0)),
        "generation_time_s": gen_s if records else None,
        "scoring_time_s": float(run.get("scoring_time_s", 0.0)),
    }
    return out


def summarize(records: Sequence[dict[str, Any]], cfg: EvalConfig,
              run: dict[str, float] | None = None) -> dict[str, Any]:
    """Accuracy ± 95% Wilson CI per aggregator, pass@N, greedy, accuracy vs N, accuracy vs λ, accounting."""
    n = len(records)
    if n == 0:
        raise ValueError("no problems to summarise")

    def acc(k: float) -> dict[str, Any]:
        lo, hi = wilson_ci(k, n)
        return {"accuracy": k / n, "ci95": [lo, hi], "correct": k, "problems": n}

    table: dict[str, Any] = {}
    parsed = [(r, None if r.get("scores") is None else [PairScore.from_dict(s) for s in r["scores"]]) for r in records]
    for agg in cfg.aggregators:
        table[agg] = acc(sum(_choose(r["question"], list(range(len(r["answers"]))), r, sc, cfg, agg)
                             for r, sc in parsed))
    table["pass@N (oracle)"] = acc(sum(r["pass_at_n"] for r in records))
    if all("greedy" in r for r in records):
        table["greedy"] = acc(sum(r["greedy"]["correct"] for r in records))

    vs_n: dict[str, list[list[float]]] = {a: [] for a in cfg.aggregators}
    vs_n["pass@N (oracle)"] = []
    for big_n in sorted(set(cfg.ns)):
        tot = dict.fromkeys(vs_n, 0.0)
        for r, sc in parsed:
            m = len(r["answers"])
            for s in range(cfg.seeds):
                # nested subsamples: the first N of one seeded permutation per (seed, problem)
                perm = list(range(m))
                random.Random(f"{cfg.seed}:{s}:{r['id']}").shuffle(perm)
                idx = sorted(perm[: min(big_n, m)])
                for agg in cfg.aggregators:
                    tot[agg] += _choose(r["question"], idx, r, sc, cfg, agg)
                tot["pass@N (oracle)"] += any(r["correct"][i] for i in idx)
        for k in vs_n:
            vs_n[k].append([big_n, tot[k] / (n * cfg.seeds)])

    vs_lam: dict[str, list[list[float]]] = {}
    if cfg.needs_scores and parsed[0][1] is not None:
        for agg in ("reward", "weighted"):
            if agg in cfg.aggregators:
                vs_lam[agg] = [[lam, sum(_choose(r["question"], list(range(len(r["answers"]))), r, sc, cfg, agg, lam)
                                         for r, sc in parsed) / n] for lam in cfg.lams]
    return {"config": {k: v for k, v in asdict(cfg).items() if k != "extract"}, "problems": n,
            "max_candidates": max(len(r["answers"]) for r in records),
            "table": table, "accuracy_vs_n": vs_n, "accuracy_vs_lambda": vs_lam,
            "stats": compute_stats(records, run)}


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as markdown tables."""
    cfg = summary["config"]
    lines = [f"Problems: {summary['problems']}, candidates per problem: up to {summary['max_candidates']}, "
             f"λ = {cfg['lam']}, normalise = {cfg['normalize']}", "",
             "| method | accuracy | 95% CI | correct / problems |", "| --- | --- | --- | --- |"]
    for name, t in summary["table"].items():
        lines.append(f"| {name} | {t['accuracy']:.3f} | [{t['ci95'][0]:.3f}, {t['ci95'][1]:.3f}] | "
                     f"{t['correct']} / {t['problems']} |")
    st = summary.get("stats")
    if st:
        def num(v: Any, fmt: str) -> str:
            return "n/a" if v is None else format(v, fmt)
        lines += ["", "Compute: " + ", ".join([
            f"{st['scored_pairs']} pairs / {st['scored_tokens']} tokens scored",
            f"{num(st['generated_tokens'], 'd')} tokens generated in {num(st['generation_time_s'], '.1f')} s",
            f"this run: {st['scorer_calls']} scorer calls, {st['scoring_time_s']:.1f} s scoring, "
            f"{st['wall_time_s']:.1f} s in all"])]
    vs_n = summary["accuracy_vs_n"]
    ns = [int(p[0]) for p in next(iter(vs_n.values()))]
    lines += ["", f"Accuracy vs N (mean over {cfg['seeds']} subsamples)", "",
              "| method | " + " | ".join(f"N={x}" for x in ns) + " |", "| --- |" + " --- |" * len(ns)]
    for name, pts in vs_n.items():
        lines.append(f"| {name} | " + " | ".join(f"{p[1]:.3f}" for p in pts) + " |")
    if summary["accuracy_vs_lambda"]:
        lams = [p[0] for p in next(iter(summary["accuracy_vs_lambda"].values()))]
        lines += ["", "Accuracy vs λ (all candidates)", "",
                  "| method | " + " | ".join(f"λ={x:g}" for x in lams) + " |", "| --- |" + " --- |" * len(lams)]
        for name, pts in summary["accuracy_vs_lambda"].items():
            lines.append(f"| {name} | " + " | ".join(f"{p[1]:.3f}" for p in pts) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(summary: dict[str, Any], out_dir: Path, title: str = "") -> list[Path]:
    """summary.json, summary.md and the PNG plots; returns the written paths."""
    from ledom_reason.eval.plots import line_plot

    paths = []
    with atomic_open(out_dir / "summary.json") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
    paths.append(out_dir / "summary.json")
    with atomic_open(out_dir / "summary.md") as f:
        f.write(summary_markdown(summary))
    paths.append(out_dir / "summary.md")
    series = {k: [(p[0], p[1]) for p in v] for k, v in summary["accuracy_vs_n"].items()}
    paths.append(line_plot(series, out_dir / "acc_vs_n.png", xlabel="N (candidates)", title=title, log2_x=True))
    lam_series = {k: [(p[0], p[1]) for p in v] for k, v in summary["accuracy_vs_lambda"].items()}
    if lam_series and len(summary["config"]["lams"]) > 1:
        paths.append(line_plot(lam_series, out_dir / "acc_vs_lambda.png", xlabel="λ (weight of the reverse term)",
                               title=title))
    else:
        logger.info("accuracy-vs-λ plot skipped: fewer than two λ values (λ < 1 needs a forward model)")
    return paths


def run_eval(
    rows: Sequence[dict[str, Any]],
    scorer: Any,
    config: EvalConfig | None = None,
    out_dir: str | Path = "eval_out",
    *,
    score_fn: Callable[[Any, list[tuple[str, str]]], list[PairScore]] | None = None,
    progress: ProgressFn | None = None,
    title: str = "",
) -> dict[str, Any]:
    """Evaluate candidates (rows of :func:`~ledom_reason.eval.candidates.read_candidates`).

    Args:
        rows: Problems with ``id``, ``question``, ``candidates``, ``gold`` (and optional ``greedy``).
        scorer: Any Scorer (``None`` when only ``majority``/``random`` are asked for).
        config: :class:`EvalConfig`.
        out_dir: Output folder (created; reused for resuming).
        score_fn: ``(scorer, pairs) -> scores`` (default ``scorer.score``), e.g. with a progress bar.
        progress: ``callback(problems_done, problems_total)``.
        title: Plot title.

    Returns:
        The summary dict (also written to ``summary.json``).
    """
    cfg = config or EvalConfig()
    t0 = time.perf_counter()
    run = {"scorer_calls": 0, "scoring_time_s": 0.0, "wall_time_s": 0.0}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_path = out / "per_problem.jsonl"
    done = {r["id"]: r for r in read_resumable(per_path)}
    cache = None
    if cfg.needs_scores:
        if scorer is None:
            raise ValueError("`scorer` is required for the reward/weighted/forward aggregators and λ sweeps")
        cache = ScoreCache(out / "scores.jsonl")
    if cache is not None and any(r.get("scores") is None for r in done.values()):
        raise ValueError(f"{per_path} was written without scores (majority/random only); use a new output folder")
    todo = [r for r in rows if r["id"] not in done]
    if done:
        logger.info("resuming: %d of %d problems already done", len(rows) - len(todo), len(rows))
    with open(per_path, "a", encoding="utf-8") as f:
        for a in range(0, len(todo), cfg.chunk):
            part = todo[a : a + cfg.chunk]
            if cache is not None:
                pairs = [(r["question"], c) for r in part for c in r["candidates"]]
                t1 = time.perf_counter()
                if cache.ensure(scorer, pairs, score_fn):
                    run["scorer_calls"] += 1
                    run["scoring_time_s"] += time.perf_counter() - t1
                _check_forward([cache.get(*pairs[0])], cfg)
            for r in part:
                rec = _problem_row(r, cache, cfg)
                append_jsonl(f, rec)
                done[r["id"]] = rec
            if progress is not None:
                progress(len(rows) - len(todo) + a + len(part), len(rows))
    records = [done[r["id"]] for r in rows]
    run["wall_time_s"] = time.perf_counter() - t0
    summary = summarize(records, cfg, run)
    write_outputs(summary, out, title)
    return summary
