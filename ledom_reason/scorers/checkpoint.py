"""What a checkpoint folder really holds: a verified tokenizer reload and the facts ``inspect`` reports.

:func:`load_tokenizer` loads a folder's tokenizer and checks it against the folder's own
``tokenizer.json`` and ``tokenizer_config.json`` (transformers 5 goes by the model type and can hand
back a tokenizer that splits text differently from the one the model was trained with).
:func:`checkpoint_facts` gathers what ``ledom-reason inspect`` prints about a loaded model.
:data:`PROBE_TEXTS` are the built-in paragraphs the tokenizer and direction checks read.

Example:
    >>> from ledom_reason.scorers.checkpoint import PROBE_TEXTS
    >>> sorted({kind for kind, _ in PROBE_TEXTS})
    ['english', 'math']
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["PROBE_TEXTS", "CheckpointFacts", "checkpoint_facts", "load_tokenizer", "tokenizer_json_mismatch"]

# Built-in paragraphs (written for this package): plain English and grade-school math, with digits,
# double spaces, newlines and a few non-ASCII characters, so that tokenizer differences show.
PROBE_TEXTS: tuple[tuple[str, str], ...] = (
    ("english", "The old lighthouse keeper climbed the stairs every evening. He lit the lamp, wrote a line "
                "in his logbook and watched the ships pass the rocks until morning came."),
    ("english", "When the rain stopped, the children ran out to the garden. They found snails on the path, "
                "a bird's nest in the hedge and a puddle deep enough to sail a paper boat."),
    ("english", "Good friends listen more than they speak. They remember what matters to you, and they "
                "tell you the truth even when it is hard to hear."),
    ("math", "Tom has 12 apples. He gives 5 apples to his sister and buys 8 more at the market. "
             "How many apples does Tom have now?\n12 - 5 = 7 and 7 + 8 = 15.\n#### 15"),
    ("math", "A train travels 60 miles per hour for 3 hours, then 40 miles per hour for 2 hours. "
             "What distance does it cover?\n60 * 3 = 180 miles and 40 * 2 = 80 miles, so 180 + 80 = 260 miles."
             "\n#### 260"),
    ("math", "Sara buys 4 notebooks at $3 each and a pen for $2.  She pays with a $20 bill. How much change "
             "does she get?\n4 * 3 = 12, 12 + 2 = 14 and 20 - 14 = 6.\n#### 6"),
)
_TOKENIZER_PROBE = "\n".join(t for _, t in PROBE_TEXTS) + (
    "  café — naïve 1234567 ☕\n\n#### 12\nx \n  \n\n  y\t\tz 1,234.56 don't I'LL 3.14159 <<2*3=6>>6 ∑ 東京")


def tokenizer_json_mismatch(tokenizer: Any, folder: str | os.PathLike[str], text: str = _TOKENIZER_PROBE) -> str | None:
    """How ``tokenizer`` splits ``text`` differently from ``folder/tokenizer.json``; ``None`` when identically.

    Also ``None`` when the folder has no ``tokenizer.json`` (nothing to compare with).
    """
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(path)).encode(text, add_special_tokens=False)
    got = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if got == raw.ids:
        return None
    i = next((k for k, (a, b) in enumerate(zip(got, raw.ids, strict=False)) if a != b), min(len(got), len(raw.ids)))
    conv = getattr(tokenizer, "convert_ids_to_tokens", None)
    loaded = conv(got[i : i + 4]) if callable(conv) else got[i : i + 4]
    return (f"{len(got)} vs {len(raw.ids)} tokens on a probe text; first difference at token {i}: "
            f"{loaded} vs tokenizer.json's {raw.tokens[i : i + 4]}")


def _saved_class(folder: Path) -> str | None:
    """The tokenizer class the folder was saved with (``None``: not named, or custom code via ``auto_map``)."""
    path = folder / "tokenizer_config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return None
    name = cfg.get("tokenizer_class")
    return name if isinstance(name, str) and not cfg.get("auto_map") else None


def load_tokenizer(folder: str | os.PathLike[str], *, trust_remote_code: bool = False,
                   use_fast: bool | None = None) -> Any:
    """``AutoTokenizer.from_pretrained(folder)``, checked against what the folder says it holds.

    transformers 5 picks the tokenizer class from the *model* type, not from the folder: a Qwen2
    folder saved from ``PreTrainedTokenizerFast`` comes back as ``Qwen2Tokenizer``, which rebuilds
    Qwen's pre-tokenizer (digits one by one) and adds ``<|endoftext|>``; one saved from
    ``ByT5Tokenizer`` comes back as an empty ``Qwen2Tokenizer``; Mistral and Phi-3 folders with a
    slow tokenizer fail to load. Each would score other token ids than the model was trained on, so
    ``AutoTokenizer``'s tokenizer is kept only when it splits a probe text exactly like the folder's
    ``tokenizer.json`` (or, without one, when it is the class ``tokenizer_config.json`` names);
    otherwise the named class, else ``tokenizer.json`` as saved (``PreTrainedTokenizerFast``), is
    loaded and a warning says so. The tokenizer carries ``ledom_reload_note`` (that warning, or
    ``None``) for ``ledom-reason inspect``.

    Args:
        folder: A local folder with the tokenizer files.
        trust_remote_code: Passed through (off by default). A folder with custom tokenizer code
            (``auto_map``) is left to ``AutoTokenizer``.
        use_fast: Passed through when not ``None`` (transformers 5 ignores it).
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    folder = Path(folder)
    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    if use_fast is not None:
        kwargs["use_fast"] = use_fast
    tok: Any = None
    error: Exception | None = None
    try:
        tok = AutoTokenizer.from_pretrained(folder, **kwargs)
    except (ValueError, OSError, TypeError, AttributeError) as e:  # retried with the saved class below
        error = e
    named = _saved_class(folder)
    want = tokenizer_class_from_name(named) if named else None
    has_json = (folder / "tokenizer.json").is_file()
    got = type(tok).__name__ if tok is not None else None
    other_class = want is not None and got is not None and got.removesuffix("Fast") != want.__name__.removesuffix("Fast")
    diff = tokenizer_json_mismatch(tok, folder) if tok is not None else None
    note = None
    # Keep AutoTokenizer's choice when it agrees with tokenizer.json, or (no tokenizer.json, e.g. a
    # slow tokenizer) when it is the class the folder names.
    if tok is None or diff is not None or (not has_json and other_class):
        candidates = ([want] if want is not None else []) + ([PreTrainedTokenizerFast] if has_json else [])
        for cls in candidates:
            try:
                alt = cls.from_pretrained(folder, local_files_only=True)
            except (ValueError, OSError, TypeError, AttributeError):
                continue
            if tokenizer_json_mismatch(alt, folder) is None:
                why = (f"failed ({type(error).__name__}: {str(error).splitlines()[0]})" if tok is None
                       else f"built {got}, which splits text differently from the folder's tokenizer.json ({diff})"
                       if diff is not None else f"built {got} instead of the {named} the folder names")
                note = f"AutoTokenizer {why}; loaded {cls.__name__} as the folder saved it"
                tok = alt
                break
        if tok is None:
            assert error is not None
            raise error
        if note is None and diff is not None:
            note = f"{got} splits text differently from the folder's tokenizer.json ({diff}); no saved class reproduces tokenizer.json"
        if note:
            logger.warning("%s: %s (pass `tokenizer=` to choose another)", folder, note)
    try:
        tok.ledom_reload_note = note
    except AttributeError:  # a tokenizer class with __slots__: the note is optional
        pass
    return tok


@dataclass
class CheckpointFacts:
    """What ``ledom-reason inspect`` reports about a loaded model and its tokenizer (JSON-ready)."""

    architecture: str
    model_type: str | None
    parameters: int
    dtype: str
    embedding_rows: int | None
    tokenizer_len: int
    tokenizer_vocab_size: int | None
    tokenizer_class: str
    context_length: int | None
    special_tokens: dict[str, Any]
    adds_special_tokens: list[str]
    chat_template: bool
    ids_outside_table: list[int] = field(default_factory=list)
    reload_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _token(tokenizer: Any, tid: int) -> str:
    conv = getattr(tokenizer, "convert_ids_to_tokens", None)
    name = conv(tid) if callable(conv) else None
    return str(name) if name is not None else f"id {tid}"


def checkpoint_facts(model: Any, tokenizer: Any) -> CheckpointFacts:
    """Architecture, size, dtype, vocabulary vs embedding table, context, special tokens, chat template."""
    from ledom_reason.scorers.encoding import embedding_rows, model_context

    cfg = getattr(model, "config", None)
    archs = getattr(cfg, "architectures", None) or [type(model).__name__]
    params = list(model.parameters())
    rows = embedding_rows(model)
    specials: dict[str, Any] = {}
    for name in ("bos", "eos", "pad", "unk"):
        t = getattr(tokenizer, f"{name}_token", None)
        specials[name] = None if t is None else {"token": str(t), "id": getattr(tokenizer, f"{name}_token_id", None)}
    plain = list(tokenizer("hi", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("hi")["input_ids"])
    adds: list[str] = []  # what the tokenizer adds by itself (the layout never relies on it)
    if full and full[:1] != plain[:1]:
        adds.append(f"{_token(tokenizer, full[0])} first")
    if len(full) > len(plain) and full[-1:] != plain[-1:]:
        adds.append(f"{_token(tokenizer, full[-1])} last")
    vocab = getattr(tokenizer, "vocab_size", None)
    n = len(tokenizer)
    return CheckpointFacts(
        architecture=str(archs[0]), model_type=getattr(cfg, "model_type", None),
        parameters=sum(int(p.numel()) for p in params), dtype=str(params[0].dtype).replace("torch.", "") if params else "?",
        embedding_rows=rows, tokenizer_len=n, tokenizer_vocab_size=vocab if isinstance(vocab, int) else None,
        tokenizer_class=type(tokenizer).__name__, context_length=model_context(model), special_tokens=specials,
        adds_special_tokens=adds, chat_template=bool(getattr(tokenizer, "chat_template", None)),
        ids_outside_table=list(range(rows, n)) if rows is not None and n > rows else [],
        reload_note=getattr(tokenizer, "ledom_reload_note", None),
    )

