"""Offline batch scoring of a JSONL or Parquet file of pairs with Ray Data (extra ``ray``).

``score_file(input, output, scorer_factory, num_workers=N)`` reads rows ``{question, candidate, …}``,
splits them into shards of ``shard_rows`` rows and streams the pending shards through
``ray.data`` ``map_batches`` over an actor pool: each actor builds one scorer with ``scorer_factory``
(one model per actor, loaded once) and scores batches of rows. Every input row's other fields are
passed through; the score fields and ``reward`` are added.

Exactly once, resumable: the driver writes each finished shard to ``<output>.parts/shard-NNNNNN.jsonl``
atomically (temp file + rename), so a shard file is complete or absent, and a retried batch (Ray
restarts a killed actor and retries its task) only rewrites its own shard. A run killed at any point is
resumed by running the same command again: finished shards are skipped (a manifest ties them to the
input file, its size and mtime, and the shard size). At the end the shards are joined into ``output``
(JSONL, or Parquet when it ends in ``.parquet``) written atomically, and the parts folder is removed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledom_reason._optional import require
from ledom_reason.io import atomic_open, iter_jsonl
from ledom_reason.reward import NORMALIZE_CHOICES, Normalize, reverse_reward, validate_reward_args
from ledom_reason.types import PairLike, PairScore, Scorer, normalize_pairs

logger = logging.getLogger(__name__)

SCORE_FIELDS = ("reverse_logprob", "question_tokens", "reverse_mean", "forward_logprob", "candidate_tokens",
                "forward_mean", "truncated_tokens", "p_correct")
ScorerFactory = Callable[[], Scorer]
"""A picklable zero-argument callable that builds a scorer inside a worker (e.g. a ``functools.partial``)."""


@dataclass
class OfflineConfig:
    """Settings of :func:`score_file`.

    > Workers
        num_workers: Scorer actors (each loads its own model once).
        gpus_per_worker / cpus_per_worker: Ray resources per actor; CPU actors also cap torch's
            threads at ``cpus_per_worker`` so actors do not oversubscribe the cores.
        batch_size: Rows per ``map_batches`` call (one ``scorer.score`` call).

    > Output
        shard_rows: Rows per shard: the unit written to the parts folder and skipped on resume.
        lam / normalize: The ``reward`` field (see :func:`ledom_reason.reward.reverse_reward`).
        ray_address: Connect to a running cluster (``None``: start or reuse a local Ray).
    """

    num_workers: int = 2
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    batch_size: int = 64
    shard_rows: int = 1024
    lam: float = 1.0
    normalize: Normalize = "sum"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        for name in ("num_workers", "batch_size", "shard_rows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise ValueError("`gpus_per_worker` must be >= 0 and `cpus_per_worker` > 0")
        if self.normalize not in NORMALIZE_CHOICES:
            raise ValueError(f"`normalize` must be one of {NORMALIZE_CHOICES}, got {self.normalize!r}")
        validate_reward_args(self.lam, self.normalize)


# ---------------------------------------------------------------------------- rows in and out
def read_rows(path: str | os.PathLike[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for every row of a JSONL or Parquet file, ``where`` = ``file:line`` / ``file:row``.

    Raises:
        FileNotFoundError / ValueError: no such file, a bad line, or a row without ``question``/``candidate``.
    """
    p = Path(path)
    if p.suffix == ".parquet":
        pq = require("pyarrow.parquet", "ray")
        if not p.is_file():
            raise FileNotFoundError(f"input file not found: {p}")
        rows: Iterator[tuple[str, dict[str, Any]]] = (
            (f"{p}:row {i + 1}", r) for i, r in enumerate(pq.read_table(p).to_pylist()))
    else:
        rows = ((f"{p}:{n}", r) for n, r in iter_jsonl(p))
    for where, row in rows:
        missing = [k for k in ("question", "candidate") if k not in row]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        try:
            normalize_pairs([(row["question"], row["candidate"])])
        except (ValueError, TypeError) as e:
            raise type(e)(f"{where}: {getattr(e, 'reason', e)}") from None
        yield where, row


def scored_row(row: dict[str, Any], s: PairScore, lam: float, normalize: Normalize) -> dict[str, Any]:
    """``row`` with the score fields and ``reward`` added (the ``ledom-reason score`` output format)."""
    out = dict(row)
    out.update({k: getattr(s, k) for k in SCORE_FIELDS if getattr(s, k) is not None})
    out["reward"] = reverse_reward(s, lam=lam, normalize=normalize)
    return out


def _write_output(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix == ".parquet":
        pa = require("pyarrow", "ray")
        pq = require("pyarrow.parquet", "ray")
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(pa.Table.from_pylist(rows), tmp)
        os.replace(tmp, path)
        return
    with atomic_open(path) as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")


# ---------------------------------------------------------------------------- the actor
class ScoreActor:
    """Ray Data callable class: one scorer per actor, built once; scores a batch of JSON rows."""

    def __init__(self, scorer_factory: ScorerFactory, lam: float, normalize: Normalize, torch_threads: int) -> None:
        if torch_threads > 0:
            import torch

            torch.set_num_threads(torch_threads)
        self.scorer = scorer_factory()
        self.lam, self.normalize = lam, normalize

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = [json.loads(j) for j in batch["json"]]
        pairs: list[PairLike] = [(r["question"], r["candidate"]) for r in rows]
        scores = self.scorer.score(pairs)
        out = [json.dumps(scored_row(r, s, self.lam, self.normalize), ensure_ascii=False, default=str)
               for r, s in zip(rows, scores, strict=True)]
        return {"row": batch["row"], "json": out}


# ---------------------------------------------------------------------------- resumable shards
class _Parts:
    """The parts folder of one output: finished shards and the manifest that ties them to the input."""

    def __init__(self, output: Path, manifest: dict[str, Any]) -> None:
        self.dir = output.with_name(output.name + ".parts")
        self.dir.mkdir(parents=True, exist_ok=True)
        mpath = self.dir / "manifest.json"
        if mpath.exists():
            old = json.loads(mpath.read_text())
            if old != manifest:
                raise ValueError(f"{self.dir} belongs to another run (input or shard size changed: {old} != "
                                 f"{manifest}); delete it to start over")
        else:
            with atomic_open(mpath) as f:
                f.write(json.dumps(manifest))

    def path(self, shard: int) -> Path:
        return self.dir / f"shard-{shard:06d}.jsonl"

    def done(self, shard: int) -> bool:
        return self.path(shard).exists()

    def write(self, shard: int, lines: list[str]) -> None:
        with atomic_open(self.path(shard)) as f:
            f.write("".join(line + "\n" for line in lines))

    def read(self, shard: int) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.path(shard).read_text(encoding="utf-8").splitlines()]


@dataclass
class OfflineResult:
    """What :func:`score_file` did."""

    output: str
    rows: int
    shards: int
    shards_skipped: int
    """Shards already finished by an earlier (interrupted) run."""
    rows_scored: int
    """Rows scored in this run."""


def _ray_init(ray: Any, address: str | None) -> None:
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)


def score_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    scorer_factory: ScorerFactory,
    config: OfflineConfig | None = None,
    **config_kwargs: Any,
) -> OfflineResult:
    """Score every row of a JSONL/Parquet file with Ray Data scorer actors (see the module docstring).

    Args:
        input_path: JSONL or ``.parquet`` rows with ``question`` and ``candidate`` (other fields pass through).
        output_path: JSONL, or Parquet when it ends in ``.parquet``; written atomically at the end.
        scorer_factory: Picklable zero-argument callable building a :class:`~ledom_reason.Scorer` in each
            actor, e.g. ``functools.partial(ReverseScorer.from_pretrained, "/models/rev", device="cuda")``.
        config: :class:`OfflineConfig`, or its fields as keyword arguments.

    Returns:
        :class:`OfflineResult` (rows, shards, how many were already done).

    Raises:
        ValueError / TypeError / FileNotFoundError: a bad input row (names the file and line), or a parts
            folder left by a different input.
    """
    ray = require("ray", "ray")
    cfg = config or OfflineConfig(**config_kwargs)
    inp, out = Path(input_path), Path(output_path)
    st = inp.stat() if inp.is_file() else None
    rows = [r for _, r in read_rows(inp)]
    shards = [list(range(a, min(a + cfg.shard_rows, len(rows)))) for a in range(0, len(rows), cfg.shard_rows)]
    parts = _Parts(out, {"input": str(inp.resolve()), "size": st.st_size if st else None,
                         "mtime_ns": st.st_mtime_ns if st else None, "rows": len(rows),
                         "shard_rows": cfg.shard_rows, "lam": cfg.lam, "normalize": cfg.normalize})
    pending = [k for k in range(len(shards)) if not parts.done(k)]
    todo = [i for k in pending for i in shards[k]]
    logger.info("%d rows in %d shards; %d shards pending", len(rows), len(shards), len(pending))
    if todo:
        _ray_init(ray, cfg.ray_address)
        items = [{"row": i, "json": json.dumps(rows[i], ensure_ascii=False, default=str)} for i in todo]
        ds = ray.data.from_items(items).map_batches(
            ScoreActor,
            fn_constructor_kwargs={"scorer_factory": scorer_factory, "lam": cfg.lam, "normalize": cfg.normalize,
                                   "torch_threads": 0 if cfg.gpus_per_worker else max(1, int(cfg.cpus_per_worker))},
            compute=ray.data.ActorPoolStrategy(size=cfg.num_workers),
            batch_size=cfg.batch_size, num_cpus=cfg.cpus_per_worker, num_gpus=cfg.gpus_per_worker or None,
            batch_format="numpy",
        )
        shard_of = {i: k for k in pending for i in shards[k]}
        buf: dict[int, dict[int, str]] = {k: {} for k in pending}
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i, line in zip(batch["row"].tolist(), batch["json"].tolist(), strict=True):
                k = shard_of[i]
                buf[k][i] = line  # a retried batch overwrites, never duplicates
                if len(buf[k]) == len(shards[k]):
                    parts.write(k, [buf[k][j] for j in shards[k]])
                    del buf[k]
        if buf:  # every row was yielded or Ray raised: a gap here is a bug, never a silent loss
            raise RuntimeError(f"shards {sorted(buf)} incomplete after the Ray run")
    final = [r for k in range(len(shards)) for r in parts.read(k)]
    if len(final) != len(rows):
        raise RuntimeError(f"{len(final)} output rows for {len(rows)} input rows")
    _write_output(out, final)
    shutil.rmtree(parts.dir)
    return OfflineResult(str(out), len(rows), len(shards), len(shards) - len(pending), len(todo))
