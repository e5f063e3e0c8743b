"""Training data: read → tokenize → reverse (via :mod:`ledom_reason.reverse`) → pack into blocks.

Pretraining
    Each input file becomes documents: a text file splits on blank lines (or lines, or is one
    document); a JSONL row is one document, either ``text`` or a (question, solution) pair.
    A document becomes token ids in the training direction:

    * reverse, text: ``reverse_document(ids, bos_token_id=BOS)`` = ``[BOS] + reverse(ids)``
    * reverse, pair: ``build_reverse_ids(q_ids, s_ids).input_ids`` = ``[BOS] + rev(s) + rev(q)``,
      i.e. exactly the input the scorer builds
    * forward, text: ``[BOS] + ids``; forward, pair: ``build_forward_seq(tok, q, s).input_ids``

    ``[BOS]`` is the configs' ``bos`` layout setting (:class:`ledom_reason.reverse.BosLayout`, the
    scorer's ``ScorerConfig.bos`` for reverse models and ``forward_bos`` for forward twins):
    ``"auto"`` (the tokenizer's BOS, if any), ``"none"``, a token, or ``"tokenizer"`` (each text with
    the tokenizer's own special tokens; a reverse segment drops its leading BOS, no prefix).

    The documents of one input are streamed to a memory-mapped token file (``tokens.bin``, uint16
    or uint32) plus ``doc_starts.npy``, cached by a fingerprint of file, tokenizer and options, so
    corpora larger than RAM work. :class:`PackedBlocks` cuts the token stream into windows of
    ``block_size + 1`` tokens (stride ``block_size``); inside a window, position ids restart at
    every document start (and at the window start), and a target is ignored (``-100``) when it
    belongs to a different document than its input — no loss ever crosses a document boundary.

Fine-tuning
    :func:`build_pair_examples` turns (question, solution) rows into :class:`Example` s (the
    scorer's own layouts) and :func:`collate_examples` pads them on the right with targets only on
    the scored span: the question tokens (reverse) or the solution tokens (forward).

Order
    :class:`ShuffledStream` maps a global sample counter to an item through a per-epoch permutation
    drawn from ``(seed, epoch)``, so the data position of a run is one integer and resuming is exact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ledom_reason.io import iter_jsonl
from ledom_reason.reverse import BosLayout, build_reverse_ids

logger = logging.getLogger(__name__)

IGNORE = -100
Doc = str | tuple[str, str]
"""A document: plain text, or a ``(question, solution)`` pair."""


# ------------------------------------------------------------------------------------ reading
def parse_input_spec(spec: str) -> tuple[str, float]:
    """``"path"`` → ``(path, 1.0)``; ``"path:2.5"`` → ``(path, 2.5)`` (weight after the last colon)."""
    head, sep, tail = spec.rpartition(":")
    if sep and head:
        try:
            w = float(tail)
        except ValueError:
            return spec, 1.0
        if not w > 0:
            raise ValueError(f"`inputs`: weight must be > 0 in {spec!r}")
        return head, w
    return spec, 1.0


def _fields(opts: Any) -> tuple[str, str, list[str]]:
    return (getattr(opts, "text_field", "text"), getattr(opts, "question_field", "question"),
            list(getattr(opts, "solution_fields", ["solution", "answer"])))


def iter_documents(path: str | os.PathLike[str], opts: Any = None, *, doc_split: str = "blank_line",
                   max_docs: int = 0) -> Iterator[Doc]:
    """Stream the documents of one file (``.jsonl`` rows or a text file), skipping empty ones.

    Args:
        path: The file.
        opts: Any object with ``text_field``, ``question_field``, ``solution_fields`` (a config).
        doc_split: Text files only: ``blank_line``, ``line`` or ``file``.
        max_docs: Stop after this many documents (0 = all).

    Raises:
        FileNotFoundError: no such file. ValueError: a JSONL row has neither field set.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input file not found: {p}")
    text_f, q_f, s_fs = _fields(opts)
    n = 0

    def emit(d: Doc) -> bool:
        nonlocal n
        n += 1
        return bool(max_docs) and n >= max_docs

    if p.suffix in (".jsonl", ".ndjson"):
        for ln, row in iter_jsonl(p):
            sol = next((row[k] for k in s_fs if isinstance(row.get(k), str)), None)
            if isinstance(row.get(q_f), str) and sol is not None:
                doc: Doc = (row[q_f], sol)
                if not row[q_f].strip() or not sol.strip():
                    continue
            elif isinstance(row.get(text_f), str):
                text: str = row[text_f]
                if not text.strip():
                    continue
                doc = text
            else:
                raise ValueError(f"{p}:{ln}: row needs `{text_f}` or `{q_f}` + one of {s_fs}")
            yield doc
            if emit(doc):
                return
        return
    with open(p, encoding="utf-8") as f:
        if doc_split == "file":
            text = f.read()
            if text.strip():
                yield text
            return
        buf: list[str] = []
        for line in f:
            if doc_split == "line":
                if line.strip():
                    yield line.rstrip("\n")
                    if emit(line):
                        return
                continue
            if line.strip():
                buf.append(line)
            elif buf:
                yield "".join(buf).rstrip("\n")
                buf = []
                if emit(""):
                    return
        if buf:
            yield "".join(buf).rstrip("\n")


def iter_input_texts(inputs: Sequence[str], opts: Any = None) -> Iterator[str]:
    """All texts of the inputs (a pair yields its question and its solution) — for tokenizer training."""
    for spec in inputs:
        path, _ = parse_input_spec(spec)
        for d in iter_documents(path, opts, doc_split=getattr(opts, "doc_split", "blank_line")):
            if isinstance(d, tuple):
                yield from d
            else:
                yield d


# ------------------------------------------------------------------------------ tokenizing
def encode_many(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Batched :func:`ledom_reason.reverse.encode_plain`: no special tokens, same ids."""
    if not texts:
        return []
    return [list(x) for x in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def documents_to_ids(tokenizer: Any, docs: Sequence[Doc], direction: str, *, bos: str = "auto") -> list[list[int]]:
    """Token ids of documents in the training ``direction`` and ``bos`` layout (see module docstring)."""
    if direction not in ("reverse", "forward"):
        raise ValueError(f"`direction` must be reverse or forward, got {direction!r}")
    layout = BosLayout.resolve(tokenizer, bos)
    reverse = direction == "reverse"
    heads = [d[0] if isinstance(d, tuple) else d for d in docs]  # texts and questions
    sols = [d[1] for d in docs if isinstance(d, tuple)]
    # Reverse: every text in the layout's tokenization. Forward: texts and questions as the layout
    # encodes a prompt (BOS kept), solutions plain — as build_forward_seq does.
    head_ids = iter(layout.text_ids(tokenizer, heads, drop_bos=reverse))
    sol_ids = iter(layout.text_ids(tokenizer, sols) if reverse else encode_many(tokenizer, sols))
    out: list[list[int]] = []
    for d in docs:
        if isinstance(d, tuple):
            q, s = next(head_ids), next(sol_ids)
            if not q or not s:
                continue
            if reverse:
                out.append(build_reverse_ids(q, s, bos_token_id=layout.prefix_id).input_ids)
            else:  # == build_forward_seq(tok, q, s, bos=bos).input_ids without a chat template
                out.append(layout.prefix + q + s)
        else:
            x = next(head_ids)
            if not x:
                continue
            out.append(layout.document(x) if reverse else layout.prefix + x)
    return out


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of the vocabulary and special tokens (part of the data-cache key)."""
    h = hashlib.sha256()
    h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(repr((tokenizer.bos_token_id, tokenizer.eos_token_id)).encode())
    return h.hexdigest()[:16]


@dataclass
class TokenFile:
    """A memory-mapped token stream and where its documents start."""

    tokens: np.ndarray  # (N,) uint16/uint32 memmap
    doc_starts: np.ndarray  # (D,) int64, ascending, doc_starts[0] == 0

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> TokenFile:
        d = Path(folder)
        meta = json.loads((d / "meta.json").read_text())
        tokens = np.memmap(d / "tokens.bin", dtype=np.dtype(meta["dtype"]), mode="r", shape=(meta["num_tokens"],))
        return cls(tokens=tokens, doc_starts=np.load(d / "doc_starts.npy"))


def build_token_file(
    path: str | os.PathLike[str],
    tokenizer: Any,
    direction: str,
    cache_dir: str | os.PathLike[str],
    opts: Any = None,
    *,
    doc_split: str = "blank_line",
    max_docs: int = 0,
    chunk_docs: int = 1024,
    bos: str = "auto",
) -> Path:
    """Tokenize one input into ``cache_dir/<fingerprint>/`` (reused when already built); returns it."""
    p = Path(path).resolve()
    st = p.stat()
    key = json.dumps([str(p), st.st_size, st.st_mtime_ns, tokenizer_fingerprint(tokenizer), direction,
                      list(_fields(opts)), doc_split, max_docs] + ([] if bos == "auto" else [bos]))
    out = Path(cache_dir) / f"{p.stem}-{direction}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (out / "meta.json").exists():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if len(tokenizer) <= 65535 else np.uint32
    starts: list[int] = []
    n = 0
    with open(tmp / "tokens.bin", "wb") as fbin:
        buf: list[Doc] = []

        def flush() -> None:
            nonlocal n
            for ids in documents_to_ids(tokenizer, buf, direction, bos=bos):
                starts.append(n)
                np.asarray(ids, dtype=dtype).tofile(fbin)
                n += len(ids)
            buf.clear()

        for doc in iter_documents(p, opts, doc_split=doc_split, max_docs=max_docs):
            buf.append(doc)
            if len(buf) >= chunk_docs:
                flush()
        flush()
    if n < 2:
        raise ValueError(f"`inputs`: {p} holds fewer than 2 tokens after tokenization")
    np.save(tmp / "doc_starts.npy", np.asarray(starts, dtype=np.int64))
    (tmp / "meta.json").write_text(json.dumps({"source": str(p), "direction": direction, "num_tokens": n,
                                               "num_docs": len(starts), "dtype": np.dtype(dtype).name,
                                               "key": key}))
    try:
        os.replace(tmp, out)
    except OSError:  # another process finished first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("tokenized %s: %d documents, %d tokens → %s", p, len(starts), n, out)
    return out


# --------------------------------------------------------------------------------- packing
class PackedBlocks:
    """Fixed-length training blocks over a :class:`TokenFile`, document boundaries respected.

    Block ``k`` reads tokens ``[k·S, (k+1)·S]`` (``S + 1`` tokens): inputs are the first ``S``,
    targets the last ``S``. ``position_ids`` restart at 0 at each document start inside the block
    and at the block start; a target from another document than its input is ``-100``.
    """

    def __init__(self, tf: TokenFile, block_size: int) -> None:
        if block_size < 2:
            raise ValueError(f"`block_size` must be >= 2, got {block_size}")
        self.tf = tf
        self.block_size = block_size
        self.num_blocks = (tf.num_tokens - 1) // block_size
        if self.num_blocks < 1:
            raise ValueError(f"corpus of {tf.num_tokens} tokens is shorter than one block of {block_size}")

    def __len__(self) -> int:
        return self.num_blocks

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input_ids, targets, position_ids)``, each ``(S,)`` int64."""
        if not 0 <= k < self.num_blocks:
            raise IndexError(k)
        s = self.block_size
        a = k * s
        win = np.asarray(self.tf.tokens[a : a + s + 1], dtype=np.int64)  # (S+1,)
        pos = np.arange(a, a + s + 1)
        doc = np.searchsorted(self.tf.doc_starts, pos, side="right") - 1  # doc index of each token
        start = np.maximum(self.tf.doc_starts[doc[:-1]], a)
        targets = np.where(doc[1:] == doc[:-1], win[1:], IGNORE)
        return win[:-1], targets, (pos[:-1] - start)


class ShuffledStream:
    """Global sample counter → item index, through a fresh permutation per epoch.

    Items are ``(source, index)`` pairs; ``weights`` repeat a source's items ``floor(w)`` times per
    epoch plus a seeded fraction ``w - floor(w)`` of them, so ``weight=2`` doubles a source.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float] | None = None, *, seed: int = 0) -> None:
        weights = list(weights) if weights is not None else [1.0] * len(sizes)
        if len(weights) != len(sizes) or not sizes:
            raise ValueError("`weights` must match `sizes` (one per source)")
        rng = np.random.default_rng([seed, 7919])
        parts = []
        for src, (n, w) in enumerate(zip(sizes, weights, strict=True)):
            whole, frac = int(w), w - int(w)
            idx = np.concatenate([np.tile(np.arange(n), whole),
                                  np.sort(rng.permutation(n)[: round(frac * n)])]).astype(np.int64)
            parts.append(np.stack([np.full_like(idx, src), idx], axis=1))
        self.items = np.concatenate(parts)  # (E, 2)
        if len(self.items) == 0:
            raise ValueError("the data mix is empty (weights too small?)")
        self.seed = seed
        self._perm: tuple[int, np.ndarray] | None = None

    @property
    def epoch_size(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, int]:
        epoch, j = divmod(int(i), len(self.items))
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.items)))
        src, idx = self.items[self._perm[1][j]]
        return int(src), int(idx)


class PretrainData:
    """Several packed inputs mixed by weight; ``batch(start, n)`` returns tensors for samples ``start..``."""

    def __init__(self, blocks: Sequence[PackedBlocks], weights: Sequence[float], *, seed: int,
                 doc_mask: bool = True) -> None:
        self.blocks = list(blocks)
        self.stream = ShuffledStream([len(b) for b in self.blocks], weights, seed=seed)
        self.doc_mask = doc_mask

    def batch(self, start: int, n: int) -> dict[str, Any]:
        """Samples ``start .. start + n - 1`` of the global stream as ``input_ids``/``targets``/``position_ids``."""
        import torch

        rows = [self.blocks[s][k] for s, k in (self.stream[i] for i in range(start, start + n))]
        out = {"input_ids": torch.from_numpy(np.stack([r[0] for r in rows])),
               "targets": torch.from_numpy(np.stack([r[1] for r in rows]))}
        if self.doc_mask:
            out["position_ids"] = torch.from_numpy(np.stack([r[2] for r in rows]))
        return out


def build_pretrain_data(cfg: Any, tokenizer: Any) -> PretrainData:
    """Tokenize (or reuse the cache of) every input of a :class:`PretrainConfig` and mix them."""
    cache = Path(cfg.data_cache_dir or Path(cfg.out_dir) / "data")
    blocks, weights = [], []
    for spec in cfg.inputs:
        path, w = parse_input_spec(spec)
        folder = build_token_file(path, tokenizer, cfg.direction, cache, cfg, doc_split=cfg.doc_split,
                                  max_docs=cfg.max_docs_per_input, bos=getattr(cfg, "bos", "auto"))
        blocks.append(PackedBlocks(TokenFile.open(folder), cfg.block_size))
        weights.append(w)
    return PretrainData(blocks, weights, seed=cfg.seed, doc_mask=cfg.doc_mask)


# ------------------------------------------------------------------------------- fine-tuning
@dataclass(frozen=True)
class Example:
    """One fine-tuning input: tokens and the first scored position (targets ``score_start..end``)."""

    input_ids: list[int]
    score_start: int


def build_pair_examples(
    pairs: Iterable[tuple[str, str]], tokenizer: Any, direction: str, *, max_length: int | None,
    bos: str = "auto",
) -> list[Example]:
    """(question, solution) pairs → :class:`Example` s in the scorer's exact layouts (``bos``: the layout setting).

    Reverse: :func:`ledom_reason.reverse.build_reverse_ids` (question scored, solution truncated
    from the left to fit); forward: :func:`ledom_reason.scorers.forward.build_forward_seq`
    (solution scored). Pairs that cannot fit are skipped with a warning count.
    """
    from ledom_reason.scorers.forward import build_forward_seq

    pairs = list(pairs)
    layout = BosLayout.resolve(tokenizer, bos)
    out: list[Example] = []
    skipped = 0
    if direction == "reverse":
        ids = layout.text_ids(tokenizer, [t for p in pairs for t in p])
        for i in range(len(pairs)):
            try:
                r = build_reverse_ids(ids[2 * i], ids[2 * i + 1], bos_token_id=layout.prefix_id,
                                      max_length=max_length)
            except ValueError:
                skipped += 1
                continue
            out.append(Example(r.input_ids, r.score_start))
    elif direction == "forward":
        for q, s in pairs:
            try:
                f = build_forward_seq(tokenizer, q, s, max_length=max_length, bos=layout)
            except ValueError:
                skipped += 1
                continue
            out.append(Example(f.input_ids, f.score_start))
    else:
        raise ValueError(f"`direction` must be reverse or forward, got {direction!r}")
    if skipped:
        logger.warning("skipped %d of %d pairs (empty or longer than the context)", skipped, len(pairs))
    return out


def read_pairs(inputs: Sequence[str], opts: Any = None, max_examples: int = 0) -> list[tuple[str, str]]:
    """(question, solution) pairs from JSONL files (``PATH:WEIGHT`` weights are ignored here)."""
    pairs: list[tuple[str, str]] = []
    for spec in inputs:
        path, _ = parse_input_spec(spec)
        for d in iter_documents(path, opts):
            if not isinstance(d, tuple):
                raise ValueError(f"`inputs`: {path} has a row without question/solution fields")
            pairs.append(d)
            if max_examples and len(pairs) >= max_examples:
                return pairs
    return pairs


def collate_examples(examples: Sequence[Example], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest example; ``targets[b, t-1] = ids[t]`` for scored ``t``, else ``-100``.

    With right padding and a causal mask real tokens never attend to padding, so no attention
    mask is needed.
    """
    import torch

    width = max(len(e.input_ids) for e in examples)
    x = torch.full((len(examples), width), pad_id, dtype=torch.long)
    y = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for b, e in enumerate(examples):
        ids = torch.tensor(e.input_ids)
        x[b, : len(ids)] = ids
        y[b, e.score_start - 1 : len(ids) - 1] = ids[e.score_start :]
    return {"input_ids": x, "targets": y}
