"""Local reverse scorer on Hugging Face ``transformers`` models (CPU or GPU)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch

from ledom_reason.calibration import Calibration, load_calibrations, model_fingerprint, select_calibration
from ledom_reason.reward import RewardSettings
from ledom_reason.scorers._packed import pick_kernel
from ledom_reason.scorers.config import ScorerConfig
from ledom_reason.scorers.encoding import EncodedPair, PairEncoder
from ledom_reason.scorers.engine import ProgressFn, ScoringSeq, fast_logprobs, reference_logprobs
from ledom_reason.scorers.quiet import quiet_loading
from ledom_reason.types import NonFiniteScoreError, PairLike, PairScore

__all__ = ["EncodedPair", "ReverseScorer", "load_causal_lm", "resolve_device", "resolve_dtype"]

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` → CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` → bf16 on GPU, fp32 on CPU."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"`dtype` must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]


def load_causal_lm(
    path_or_model: str | os.PathLike[str] | torch.nn.Module,
    tokenizer: Any | None,
    device: torch.device,
    dtype: torch.dtype,
    *,
    trust_remote_code: bool = False,
    use_fast: bool | None = None,
) -> tuple[torch.nn.Module, Any]:
    """Load (or adopt) a causal LM and its tokenizer from a local folder, no network.

    Args:
        trust_remote_code: Passed to ``from_pretrained`` of model and tokenizer (off by default:
            only turn it on for a folder whose Python code you have read).
        use_fast: Passed to ``AutoTokenizer.from_pretrained`` when not ``None`` (transformers 4
            honours ``False`` with a slow tokenizer; transformers 5 always builds its fast one).

    A tokenizer folder is loaded with :func:`ledom_reason.scorers.checkpoint.load_tokenizer`, which
    falls back to the folder's ``tokenizer.json`` as saved when the class transformers picks splits
    text differently from it.
    """
    from transformers import AutoModelForCausalLM

    from ledom_reason.scorers.checkpoint import load_tokenizer

    if isinstance(path_or_model, torch.nn.Module):
        if tokenizer is None:
            raise ValueError("`tokenizer` is required when passing a model object")
        model = path_or_model
    else:
        path = Path(path_or_model)
        if not path.is_dir():
            from ledom_reason.models import resolve_model_name

            resolved = resolve_model_name(str(path_or_model))
            if resolved is None:
                raise FileNotFoundError(
                    f"model folder not found: {path_or_model!s} (pass a local Hugging Face folder "
                    "with config.json and weights; hub downloads are not used)"
                )
            path = resolved
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path} has no config.json: not a Hugging Face model folder")
        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True,
                                                         trust_remote_code=trust_remote_code)
        if tokenizer is None:
            tokenizer = path
    model = model.to(device=device, dtype=dtype).eval()
    if isinstance(tokenizer, str | os.PathLike):  # verified against the folder's tokenizer.json
        tokenizer = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code, use_fast=use_fast)
    return model, tokenizer


def model_folder(path_or_model: str | os.PathLike[str] | torch.nn.Module | None) -> Path | None:
    """The folder a model is loaded from (bundled names resolved); ``None`` for a model object."""
    if path_or_model is None or isinstance(path_or_model, torch.nn.Module):
        return None
    from ledom_reason.models import resolve_model_name

    path = Path(path_or_model)
    return path if path.is_dir() else resolve_model_name(str(path_or_model))


CalibrationArg = Calibration | str | os.PathLike[str] | None


def resolve_calibration(calibration: CalibrationArg | Literal["auto"], model: Path | None,
                        forward: Path | None, forward_name: str | None) -> Calibration | None:
    """The calibration to attach: ``"auto"`` = the matching entry of ``<model>/calibration.json`` (if any),
    a path = the matching entry of that file (an error if none matches), a :class:`Calibration` = itself."""
    if calibration is None:
        return None
    if isinstance(calibration, Calibration):
        if calibration.lam < 1 and forward_name is None:
            raise ValueError(f"the calibration needs a forward model (lam={calibration.lam}): pass `forward_model=`")
        return calibration
    auto = isinstance(calibration, str) and calibration == "auto"
    source = model if auto else Path(calibration)
    if source is None:
        return None
    entries = load_calibrations(source)
    if not entries:
        if not auto:
            raise FileNotFoundError(f"no calibration file at {source}")
        return None
    fps = {"model": model_fingerprint(model) if model is not None else None,
           "forward_model": model_fingerprint(forward) if forward is not None else None}
    cal = select_calibration(entries, forward_model=forward_name, fingerprints=fps)
    if cal is None and not auto:
        raise ValueError(f"{source}: no calibration for this scorer (forward model: {forward_name or 'none'})")
    if cal is not None:
        logger.info("calibration attached: %s, λ=%g, %s (p_correct on every score)", cal.method, cal.lam,
                    cal.normalize)
    return cal


def _recommended_reward(model: Path | None, has_forward: bool) -> RewardSettings | None:
    from ledom_reason.models import model_metadata

    if model is None:
        return None
    meta = model_metadata(model)
    spec = meta.get("reward" if has_forward else "reverse_only_reward")
    return None if not isinstance(spec, dict) else RewardSettings(float(spec["lam"]), spec["normalize"])


def _packed_unsupported(model: torch.nn.Module, context: int | None) -> str | None:
    """What in ``model``'s attention the packed kernels (plain causal attention) would ignore, if anything.

    Gemma 2 soft-caps attention logits; a sliding window (Mistral, Gemma 2) matters once an input can
    be longer than it. The padded path runs the model's own attention and handles both.
    """
    cfg = getattr(model, "config", None)
    cap = getattr(cfg, "attn_logit_softcapping", None)
    if cap:
        return f"attention logit soft-capping (attn_logit_softcapping={cap})"
    window = getattr(cfg, "sliding_window", None)
    longest = context or getattr(cfg, "max_position_embeddings", None)
    if window and getattr(cfg, "use_sliding_window", True) and (longest is None or window < longest):
        return f"a sliding attention window (sliding_window={window} < context {longest})"
    return None


class ReverseScorer:
    """Score ``log P_rev(question | candidate)`` with a local reverse LM (and optionally a forward LM).

    Setup:
        ``pip install ledom-reason`` (install CPU torch first on machines without a GPU).

    Key init args:
        model / tokenizer: a loaded causal LM and its tokenizer (use :meth:`from_pretrained`).
        forward_model / forward_tokenizer: optional forward LM for ``log P_fwd(candidate | question)``.
        config: :class:`ScorerConfig` (batch budget, truncation policy, fast/reference path).

    Example:
        >>> from ledom_reason import ReverseScorer  # doctest: +SKIP
        >>> scorer = ReverseScorer.from_pretrained("/models/Reverse-Model-2B-348B")  # doctest: +SKIP
        >>> s = scorer.score([("What is 2+3?", "2+3 = 5. #### 5")])[0]  # doctest: +SKIP
        >>> s.reverse_logprob, s.question_tokens  # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        forward_model: torch.nn.Module | None = None,
        forward_tokenizer: Any | None = None,
        config: ScorerConfig | None = None,
        name: str | None = None,
        calibration: Calibration | None = None,
        recommended_reward: RewardSettings | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.forward_model = forward_model
        self.forward_tokenizer = forward_tokenizer if forward_tokenizer is not None else (
            tokenizer if forward_model is not None else None
        )
        self.config = config or ScorerConfig()
        self.device = next(model.parameters()).device
        # Tokenization, layout, truncation and the token-id/pad checks (vocabulary checked once here).
        self.encoder = PairEncoder.for_models(model, tokenizer, self.config, forward_model=forward_model,
                                              forward_tokenizer=self.forward_tokenizer)
        self.max_length = self.encoder.max_length
        self.forward_max_length = self.encoder.forward_max_length
        self.name = name or getattr(model.config, "_name_or_path", None) or type(model).__name__
        if calibration is not None and calibration.lam < 1 and forward_model is None:
            raise ValueError(f"the calibration needs a forward model (lam={calibration.lam}): pass `forward_model=`")
        self.calibration = calibration
        """Maps each score's reward to ``p_correct`` (``None``: scores carry no ``p_correct``)."""
        self.recommended_reward = recommended_reward
        """The λ/normalisation the model's metadata (``ledom.json``) validates for this setup, if any."""
        self.direction: Any = None  # the load-time direction check (from_pretrained), when it ran
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        path_or_model: str | os.PathLike[str] | torch.nn.Module,
        tokenizer: Any | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        forward_model: str | os.PathLike[str] | torch.nn.Module | None = None,
        forward_tokenizer: Any | None = None,
        config: ScorerConfig | None = None,
        trust_remote_code: bool = False,
        use_fast: bool | None = None,
        calibration: CalibrationArg | Literal["auto"] = "auto",
        check_direction: bool | None = None,
        **config_kwargs: Any,
    ) -> ReverseScorer:
        """Load a reverse scorer from a local Hugging Face causal-LM folder (or a model object).

        Args:
            path_or_model: Folder with ``config.json`` + weights, a bundled model name such as
                ``"ledom-tiny"``, or an already loaded ``PreTrainedModel``.
            tokenizer: Tokenizer or its folder; defaults to the model folder's.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``…; default CUDA when available.
            dtype: ``"float32"``/``"bfloat16"``/``"float16"`` or a torch dtype; default bf16 on
                GPU, fp32 on CPU.
            forward_model: Optional forward LM (folder or object) for the λ < 1 reward.
            forward_tokenizer: Its tokenizer (default: the forward folder's).
            config: A :class:`ScorerConfig`; or pass its fields as keyword arguments (e.g.
                ``bos="none"`` for a checkpoint trained without a BOS; see docs/checkpoints.md).
            trust_remote_code: Let transformers run Python code shipped in the model folder. Off by
                default and passed through explicitly; turn it on only for code you have read.
            use_fast: ``False`` asks for the slow tokenizer (honoured by transformers 4; transformers
                5 always builds the fast one); ``None`` = the library's default.
            calibration: ``"auto"`` (default): attach the model folder's calibration for this setup (reverse
                only, or this forward model) when ``calibration.json`` has one fitted on these weights, so
                every score carries ``p_correct``; a path to a calibration file; a
                :class:`~ledom_reason.calibration.Calibration`; or ``None``.
            check_direction: Read two short built-in paragraphs backwards and forwards and log a
                warning when the reverse model reads like a forward model (or the forward model like
                a reverse one) — one small model pass (docs/checkpoints.md). ``None`` = on unless the
                environment variable ``LEDOM_CHECK_DIRECTION=0``; the result is ``scorer.direction``.
        """
        if config is None:
            config = ScorerConfig(**config_kwargs)
        elif config_kwargs:
            config = replace(config, **config_kwargs)
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        model, tok = load_causal_lm(path_or_model, tokenizer, dev, dt, trust_remote_code=trust_remote_code,
                                    use_fast=use_fast)
        fwd = fwd_tok = None
        if forward_model is not None:
            fwd, fwd_tok = load_causal_lm(forward_model, forward_tokenizer, dev, dt,
                                          trust_remote_code=trust_remote_code, use_fast=use_fast)
        name = str(path_or_model) if not isinstance(path_or_model, torch.nn.Module) else None
        folder, fwd_folder = model_folder(path_or_model), model_folder(forward_model)
        fwd_name = None
        if forward_model is not None:
            from ledom_reason.models import model_label

            fwd_name = model_label(str(forward_model)) if fwd_folder is not None else "<model object>"
        cal = resolve_calibration(calibration, folder, fwd_folder, fwd_name)
        scorer = cls(model, tok, forward_model=fwd, forward_tokenizer=fwd_tok, config=config, name=name,
                     calibration=cal, recommended_reward=_recommended_reward(folder, fwd is not None))
        if check_direction is None:
            check_direction = os.environ.get("LEDOM_CHECK_DIRECTION", "1") != "0"
        if check_direction:
            from ledom_reason.scorers.direction import load_time_check

            scorer.direction = load_time_check(model, tok, bos=config.bos, name=f"reverse model {scorer.name}")
            if fwd is not None:
                load_time_check(fwd, scorer.forward_tokenizer, bos=config.forward_bos, expected="forward",
                                name=f"forward model {forward_model}")
        return scorer

    @classmethod
    def default(cls, forward: bool = False, **kwargs: Any) -> ReverseScorer:
        """The bundled ``ledom-tiny`` verifier, loaded with no network.

        Args:
            forward: Also load its forward twin ``ledom-tiny-forward``, the pair being meant to be used
                together: :attr:`recommended_reward` is then the validated λ = 0.9, ``normalize="mean"`` of its
                metadata (``ledom.json``) and the pair's calibration gives every score a ``p_correct``.
            **kwargs: As for :meth:`from_pretrained`.

        Example:
            >>> scorer = ReverseScorer.default(forward=True)  # doctest: +SKIP
            >>> s = scorer.score([("What is 2+3?", "2+3 = 5. #### 5")])[0]  # doctest: +SKIP
            >>> scorer.recommended_reward(s), s.p_correct  # doctest: +SKIP
        """
        from ledom_reason.models import model_metadata

        if forward:
            kwargs.setdefault("forward_model", model_metadata("ledom-tiny")["forward_twin"])
        return cls.from_pretrained("ledom-tiny", **kwargs)

    # ------------------------------------------------------------------ encoding
    def encode(self, pairs: Sequence[PairLike]) -> list[EncodedPair]:
        """Validate and tokenize pairs (:class:`~ledom_reason.scorers.encoding.PairEncoder`).

        Raises:
            InvalidPairError / PairTypeError: a bad pair (``ValueError`` / ``TypeError``; ``.index`` names it).
        """
        return self.encoder.encode(pairs)

    # ------------------------------------------------------------------ scoring
    def packed_kernel_for(self, model: torch.nn.Module) -> str | None:
        """The packed-attention kernel the fast path uses for ``model`` (``None`` = padded buckets).

        Raises:
            ValueError: a kernel named in ``config.packed_kernel`` cannot run on this device/dtype.
        """
        cfg = self.config
        if cfg.attention == "padded":
            return None
        unsupported = _packed_unsupported(model, self.max_length)
        if unsupported:  # the packed kernels run plain causal attention: they would mis-score these
            logger.info("%s uses %s, which packed attention does not apply: using padded buckets",
                        type(model).__name__, unsupported)
            return None
        p = next(model.parameters())
        kernel = pick_kernel(cfg.packed_kernel, p.device, p.dtype)
        if kernel is None and cfg.attention == "packed":
            logger.info("no packed-attention kernel for %s/%s: using padded buckets", p.device, p.dtype)
        return kernel

    def _logprobs(self, model: torch.nn.Module, seqs: list[ScoringSeq], pad_id: int,
                  progress: ProgressFn | None) -> list[float]:
        if self.config.mode == "reference":
            vals = reference_logprobs(model, seqs, self.device)
            if progress is not None:
                progress(len(seqs), len(seqs))
            return vals
        return fast_logprobs(
            model, seqs, self.device, batch_tokens=self.config.batch_tokens,
            head_chunk_bytes=self.config.head_chunk_bytes, pad_id=pad_id, progress=progress,
            packed_kernel=self.packed_kernel_for(model), compile_model=self.config.compile,
        )

    def score_encoded(self, encoded: Sequence[EncodedPair], *, progress: ProgressFn | None = None) -> list[PairScore]:
        """Score pre-encoded pairs (see :meth:`encode`), in input order."""
        if not encoded:
            return []
        rev_seqs = [ScoringSeq(e.reverse.input_ids, e.reverse.score_start) for e in encoded]
        with self._lock:
            rev = self._logprobs(self.model, rev_seqs, self.encoder.pad_id, progress)
            fwd: list[float] | None = None
            if self.forward_model is not None:
                fwd_seqs = [e.forward for e in encoded if e.forward is not None]
                fwd = self._logprobs(self.forward_model, fwd_seqs, self.encoder.forward_pad_id, None)
        out = []
        for i, e in enumerate(encoded):
            f = e.forward
            try:
                out.append(PairScore.build(
                    rev[i], e.reverse.num_scored,
                    forward_logprob=None if fwd is None else fwd[i],
                    candidate_tokens=None if f is None else len(f.input_ids) - f.score_start,
                    truncated_tokens=e.reverse.truncated_tokens,
                    input_tokens=len(e.reverse.input_ids) + (0 if f is None else len(f.input_ids)),
                ))
            except FloatingPointError as err:
                raise NonFiniteScoreError(str(err), i) from None
        return self.calibration.apply(out) if self.calibration is not None else out

    def score(self, pairs: Sequence[PairLike], *, progress: ProgressFn | None = None) -> list[PairScore]:
        """Score ``(question, candidate)`` pairs; one :class:`PairScore` per pair, in input order.

        Args:
            pairs: ``(question, candidate)`` tuples or ``{"question", "candidate"}`` mappings.
            progress: Optional ``callback(pairs_done, pairs_total)`` called after each model batch.

        Raises:
            TypeError / ValueError: bad input (names the pair index); ``FloatingPointError`` when
            the model produces NaN/inf.
        """
        return self.score_encoded(self.encode(pairs), progress=progress)

    async def ascore(self, pairs: Sequence[PairLike], *, progress: ProgressFn | None = None) -> list[PairScore]:
        """Async :meth:`score`: runs in a worker thread, so the event loop stays free."""
        return await asyncio.to_thread(self.score, pairs, progress=progress)

    def __repr__(self) -> str:
        fwd = ", forward_model=yes" if self.forward_model is not None else ""
        cal = ", calibration=yes" if self.calibration is not None else ""
        return (f"ReverseScorer(name={self.name!r}, device={self.device}, mode={self.config.mode!r}, "
                f"attention={self.config.attention!r}{fwd}{cal})")
