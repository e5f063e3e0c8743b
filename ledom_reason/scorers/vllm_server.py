"""Score through any OpenAI-compatible ``vllm serve`` endpoint (extra ``remote``).

The reversed input is built here, client-side, with the scorer's tokenizer and the local scorer's own
encoder (:class:`~ledom_reason.scorers.encoding.PairEncoder`: same layout, truncation, ids), and sent as a *token-id* prompt
to ``POST /v1/completions`` with ``max_tokens=1``, ``temperature=0`` and ``prompt_logprobs=0``; the
server never sees text and the reversal never moves. vLLM answers one choice per prompt (``index``);
its ``prompt_logprobs`` is a list with ``null`` first and, for every later position, a dict keyed by
token-id strings, ``{"logprob", "rank", "decoded_token"}``, which may hold top-k tokens besides the
prompt's own — the prompt token's entry is taken *by id*. The question positions are summed.

Many prompts go in one request (under a token budget); requests go to the replicas round-robin with
failover and retries (:mod:`ledom_reason.scorers._http`, shared with
:class:`~ledom_reason.scorers.remote.RemoteScorer`). The forward term ``log P_fwd(candidate |
question)``, when configured, goes to a second ``vllm serve`` deployment the same way.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledom_reason.reverse import TruncatePolicy
from ledom_reason.scorers._http import (
    RETRY_STATUS,
    RemoteScorerError,
    RetryableError,
    Transport,
    check_positive_ints,
    check_urls,
    retry_after,
)
from ledom_reason.scorers.config import ScorerConfig
from ledom_reason.scorers.encoding import EncodedPair, PairEncoder
from ledom_reason.types import InvalidPairError, NonFiniteScoreError, PairLike, PairScore, normalize_pairs

__all__ = ["API_KEY_ENV", "COMPLETIONS_PATH", "RemoteScorerError", "Seq", "VLLMEndpoint", "VLLMServerScorer",
           "sum_prompt_logprobs"]

API_KEY_ENV = "VLLM_API_KEY"
"""Environment variable read for the bearer token when ``api_key`` is not given (vLLM's own name)."""
COMPLETIONS_PATH = "/v1/completions"
MODELS_PATH = "/v1/models"
CLAMPED_LOGPROB = -9999.0
"""vLLM writes ``-inf`` log-probs as this value in JSON: treated as non-finite, never summed."""
_CONTEXT_RE = re.compile(r"maximum (?:context|model) length is (\d+)", re.IGNORECASE)
_NO_ROOM_RE = re.compile(r"max_tokens must be at least 1, got 0")  # a prompt of exactly max_model_len


@dataclass(frozen=True, slots=True)
class Seq:
    """One prompt: token ids and the index of the first scored position."""

    ids: list[int]
    score_start: int


@dataclass(frozen=True)
class VLLMEndpoint:
    """A ``vllm serve`` deployment to score on (used for the forward model).

    Attributes:
        base_urls: One base URL (``http://host:8000``) or a list of replicas.
        model: The served model name (``vllm serve … --served-model-name``; default the model path);
            ``None`` = the only model it serves.
        tokenizer: Its tokenizer (object or local folder); ``None`` = the reverse scorer's tokenizer.
        api_key: Bearer token (default: ``$VLLM_API_KEY``).
        max_length: Context limit in tokens; ``None`` = ask the server (``max_model_len`` from
            ``GET /v1/models``).
    """

    base_urls: str | Sequence[str]
    model: str | None = None
    tokenizer: Any = None
    api_key: str | None = None
    max_length: int | None = None


def load_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object as is, or a local folder's tokenizer loaded as the local scorer loads it
    (:func:`ledom_reason.scorers.checkpoint.load_tokenizer`: the one the folder saved; no network)."""
    if isinstance(tokenizer, str | os.PathLike):
        from ledom_reason.scorers.checkpoint import load_tokenizer as load_saved

        return load_saved(tokenizer)
    if tokenizer is None or not callable(tokenizer):
        raise TypeError(f"`tokenizer` must be a tokenizer or a local folder, got {type(tokenizer).__name__}")
    return tokenizer


def _logprob(entry: Any) -> float:
    if isinstance(entry, dict):
        entry = entry.get("logprob")
    if entry is None:  # pydantic writes NaN as null
        return math.nan
    if isinstance(entry, bool) or not isinstance(entry, int | float):
        raise TypeError(f"log-prob entry is {type(entry).__name__}, not a number")
    return float(entry)


def sum_prompt_logprobs(prompt_logprobs: Any, seq: Seq) -> float:
    """Sum the prompt tokens' log-probs over the scored positions of ``seq``.

    Args:
        prompt_logprobs: A choice's ``prompt_logprobs`` from vLLM's JSON: ``None`` first, then one
            dict per position keyed by token-id strings (or ints, as ``ray.data.llm`` returns them);
            each holds the prompt token's entry and possibly top-k others.
        seq: The prompt that was sent.

    Raises:
        ValueError: the list does not match the prompt, or a prompt token's entry is missing.
        FloatingPointError: a scored log-prob is NaN (``null`` in vLLM's JSON), inf, or vLLM's ``-9999.0``
            stand-in for ``-inf``.
    """
    if not isinstance(prompt_logprobs, list) or len(prompt_logprobs) != len(seq.ids):
        n = len(prompt_logprobs) if isinstance(prompt_logprobs, list) else type(prompt_logprobs).__name__
        raise ValueError(f"`prompt_logprobs` has {n} positions for a prompt of {len(seq.ids)} tokens "
                         "(the server needs prompt_logprobs support: vLLM)")
    total = 0.0
    for t in range(seq.score_start, len(seq.ids)):
        entry, tok = prompt_logprobs[t], seq.ids[t]
        own = entry.get(str(tok), entry.get(tok)) if isinstance(entry, dict) else None  # JSON: str keys
        if own is None:
            raise ValueError(f"no log-prob for prompt token {tok} at position {t}")
        lp = _logprob(own)
        if not math.isfinite(lp) or lp <= CLAMPED_LOGPROB:
            raise FloatingPointError(f"log-prob of prompt token {tok} at position {t} is {lp} (non-finite)")
        total += lp
    return total


def _vllm_error(response: Any) -> tuple[str, str]:
    """``(type, message)`` of vLLM's error body (``{"error": {...}}``, or the older flat object)."""
    try:
        data = response.json()
        err = data.get("error", data)
        if isinstance(err, str):  # the auth middleware: {"error": "Unauthorized"}
            return "error", err
        return str(err.get("type", "error")), str(err.get("message", response.text[:500]))
    except (ValueError, AttributeError):
        return "error", (response.text[:500] or response.reason_phrase)


class _Deployment:
    """One ``vllm serve`` deployment: its transport, served model name, tokenizer and context."""

    def __init__(self, urls: str | Sequence[str], model: str | None, tokenizer: Any, api_key: str | None,
                 max_length: int | None, transport_kwargs: dict[str, Any], arg: str) -> None:
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ValueError(f"`{arg}model` must be the served model name (or None), got {model!r}")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 3):
            raise ValueError(f"`{arg}max_length` must be an int >= 3, got {max_length!r}")
        check_urls(urls, f"{arg}base_urls")
        self.model = model
        self.tokenizer = load_tokenizer(tokenizer)
        self.max_length = max_length
        self._probed = False
        self.max_model_len: int | None = None
        """The server's ``max_model_len`` (from ``GET /v1/models``, once asked)."""
        self.transport = Transport(urls, api_key if api_key is not None else os.environ.get(API_KEY_ENV),
                                   user_agent="ledom-reason-vllm", **transport_kwargs)

    # ------------------------------------------------------------------ model check and context
    def _handle_models(self, endpoint: str, response: Any) -> int | None:
        status = response.status_code
        if status != 200:
            kind, message = _vllm_error(response)
            if status in RETRY_STATUS:
                raise RetryableError(endpoint, f"HTTP {status} {kind}: {message}", retry_after(response.headers))
            if status in (401, 403):
                raise PermissionError(f"{endpoint} ({status} {kind}): {message} (set `api_key=` or ${API_KEY_ENV})")
            raise RemoteScorerError(f"{endpoint} ({status} {kind}): {message}", endpoint)
        try:
            cards = {c["id"]: c for c in response.json()["data"]}
        except (ValueError, KeyError, TypeError) as e:
            raise RemoteScorerError(f"{endpoint}: not an OpenAI model list ({type(e).__name__}: {e})",
                                    endpoint) from None
        if self.model is None:
            if len(cards) != 1:
                raise ValueError(f"{endpoint}: serves {sorted(cards)}; pass `model=` to choose one")
            self.model = next(iter(cards))
        if self.model not in cards:
            raise ValueError(f"{endpoint}: model {self.model!r} is not served there (served: {sorted(cards)}); "
                             "pass `model=` as given to `vllm serve --served-model-name`")
        n = cards[self.model].get("max_model_len")
        return int(n) if isinstance(n, int) and not isinstance(n, bool) else None

    def _set_context(self, max_model_len: int | None) -> None:
        self.max_model_len = max_model_len
        if self.max_length is None and max_model_len is not None:
            self.max_length = max_model_len - 1  # one position for the generated token (max_tokens=1)
        self._probed = True

    @property
    def _needs_probe(self) -> bool:
        return (self.max_length is None or self.model is None) and not self._probed

    def context(self) -> int | None:
        """Prompt-length limit: ``max_length``, else the server's ``max_model_len`` minus the 1 generated token.

        Unless both ``model`` and ``max_length`` were given, the first call asks ``GET /v1/models``, which
        also checks that the server serves :attr:`model` (or picks the only model it serves).
        """
        if self._needs_probe:
            self._set_context(self.transport.request("GET", MODELS_PATH, self._handle_models))
        return self.max_length

    async def acontext(self) -> int | None:
        """Async :meth:`context`."""
        if self._needs_probe:
            self._set_context(await self.transport.arequest("GET", MODELS_PATH, self._handle_models))
        return self.max_length

    # ------------------------------------------------------------------ one completions request
    def body(self, seqs: Sequence[Seq]) -> dict[str, Any]:
        return {"model": self.model, "prompt": [s.ids for s in seqs], "max_tokens": 1, "temperature": 0.0,
                "prompt_logprobs": 0, "n": 1, "stream": False, "echo": False}

    def handle(self, endpoint: str, offset: int, seqs: Sequence[Seq], response: Any) -> list[float]:
        """Turn one ``/v1/completions`` answer into per-prompt sums, a retryable failure, or an error."""
        status, n = response.status_code, len(seqs)
        span = f"pairs {offset}..{offset + n - 1}" if n > 1 else f"pair {offset}"
        if status == 200:
            return self._parse(endpoint, offset, seqs, response)
        kind, message = _vllm_error(response)
        where = f"{endpoint} ({status} {kind})"
        if status in RETRY_STATUS:
            raise RetryableError(endpoint, f"HTTP {status} {kind}: {message}", retry_after(response.headers))
        if status in (401, 403):
            raise PermissionError(f"{where}: {message} (set `api_key=` or ${API_KEY_ENV})")
        if status == 404:
            raise ValueError(f"{where}: {message} (is `model={self.model!r}` the served model name?)")
        m = _CONTEXT_RE.search(message)
        limit = int(m.group(1)) if m else self.max_model_len if _NO_ROOM_RE.search(message) else None
        if limit is not None:  # name the first prompt over the server's limit
            for k, s in enumerate(seqs):
                if len(s.ids) + 1 > limit:
                    raise InvalidPairError(
                        f"{len(s.ids)} prompt tokens + 1 generated exceed the server's context of {limit} "
                        f"({where}: {message})", offset + k)
        if 400 <= status < 500:
            raise ValueError(f"{where} [request of {span}]: {message}")
        raise RemoteScorerError(f"{where} [request of {span}]: {message}", endpoint)

    def _parse(self, endpoint: str, offset: int, seqs: Sequence[Seq], response: Any) -> list[float]:
        try:
            choices = response.json()["choices"]
            by_index = {int(c["index"]): c for c in choices}
        except (ValueError, KeyError, TypeError) as e:
            raise RemoteScorerError(f"{endpoint}: malformed completions response ({type(e).__name__}: {e})",
                                    endpoint) from None
        if len(choices) != len(seqs) or sorted(by_index) != list(range(len(seqs))):
            raise RemoteScorerError(f"{endpoint}: {len(choices)} choices (indices {sorted(by_index)[:8]}…) "
                                    f"for {len(seqs)} prompts", endpoint)
        out = []
        for k, s in enumerate(seqs):
            try:
                out.append(sum_prompt_logprobs(by_index[k].get("prompt_logprobs"), s))
            except FloatingPointError as e:
                raise NonFiniteScoreError(f"{endpoint}: {e}", offset + k) from None
            except (ValueError, TypeError) as e:
                raise RemoteScorerError(f"{endpoint}: pair {offset + k}: malformed prompt_logprobs ({e})",
                                        endpoint) from None
        return out


class VLLMServerScorer:
    """Score pairs on ``vllm serve`` endpoints through ``/v1/completions`` prompt log-probs.

    Setup:
        ``pip install 'ledom-reason[remote]'`` (httpx + tenacity) on the client; on the server
        ``vllm serve /models/Reverse-Model-7B-348B --max-logprobs 1 --no-enable-prefix-caching``
        (docs/vllm-serve.md).

    Key init args:
        base_urls: One base URL or a list of replicas of the reverse model (round-robin, failover).
        model: The served model name (``--served-model-name``; by default the path given to ``vllm serve``);
            ``None`` = the only model the server serves.
        tokenizer: The reverse model's tokenizer (object or local folder): ids are built here.
        api_key: Bearer token (``vllm serve --api-key``); default ``$VLLM_API_KEY``.
        forward: A :class:`VLLMEndpoint` serving the forward model, for ``forward_logprob`` (λ < 1).
        truncate / bos / forward_bos / forward_chat_template: As in :class:`~ledom_reason.ScorerConfig`.
        max_length: Prompt-length limit; ``None`` asks the server (``max_model_len`` − 1, room for the
            generated token).
        batch_tokens / max_prompts_per_request: How a list is split into requests.
        max_concurrency: Requests in flight at once (reverse and forward together).
        timeout, connect_timeout, max_attempts, retry_deadline_s, backoff_initial_s, backoff_max_s:
            As in :class:`~ledom_reason.RemoteScorer`.

    Instantiate:
        >>> from ledom_reason.scorers.vllm_server import VLLMServerScorer
        >>> from ledom_reason.models import resolve_model_name
        >>> scorer = VLLMServerScorer(["http://127.0.0.1:8000", "http://127.0.0.1:8001"], model="ledom-tiny",
        ...                           tokenizer=resolve_model_name("ledom-tiny"), max_length=512)
        >>> scorer.urls
        ['http://127.0.0.1:8000', 'http://127.0.0.1:8001']

    Score:
        >>> scores = scorer.score([("What is 2+3?", "2+3 = 5. #### 5")])  # doctest: +SKIP

    Async:
        >>> scores = await scorer.ascore(pairs)  # doctest: +SKIP
    """

    def __init__(
        self,
        base_urls: str | Sequence[str],
        *,
        model: str | None,
        tokenizer: Any,
        api_key: str | None = None,
        forward: VLLMEndpoint | None = None,
        truncate: TruncatePolicy = "candidate_left",
        max_length: int | None = None,
        bos: str = "auto",
        forward_bos: str = "auto",
        forward_chat_template: bool = False,
        batch_tokens: int = 16384,
        max_prompts_per_request: int = 256,
        max_concurrency: int = 8,
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
        max_attempts: int = 8,
        retry_deadline_s: float = 300.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.config = ScorerConfig(truncate=truncate, bos=bos, forward_bos=forward_bos,
                                   forward_chat_template=forward_chat_template)  # validates them
        check_positive_ints(batch_tokens=batch_tokens, max_prompts_per_request=max_prompts_per_request)
        if forward is not None and not isinstance(forward, VLLMEndpoint):
            raise TypeError(f"`forward` must be a VLLMEndpoint, got {type(forward).__name__}")
        kw = {"timeout": timeout, "connect_timeout": connect_timeout, "max_attempts": max_attempts,
              "retry_deadline_s": retry_deadline_s, "backoff_initial_s": backoff_initial_s,
              "backoff_max_s": backoff_max_s, "max_concurrency": max_concurrency}
        self.reverse = _Deployment(base_urls, model, tokenizer, api_key, max_length, kw, "")
        self.forward = None if forward is None else _Deployment(
            forward.base_urls, forward.model,
            forward.tokenizer if forward.tokenizer is not None else self.reverse.tokenizer,
            forward.api_key if forward.api_key is not None else api_key, forward.max_length, kw, "forward.")
        self.urls = self.reverse.transport.urls
        self._encoder: PairEncoder | None = None
        self.batch_tokens = batch_tokens
        self.max_prompts_per_request = max_prompts_per_request
        self.max_concurrency = max_concurrency

    # ------------------------------------------------------------------ public API
    @property
    def name(self) -> str:
        return f"vllm-server:{self.reverse.model or self.urls[0]}"

    @property
    def tokenizer(self) -> Any:
        return self.reverse.tokenizer

    @property
    def stats(self) -> dict[str, int]:
        """HTTP counters of both deployments: attempts, retried attempts, requests failed for good."""
        ts = [self.reverse.transport] + ([self.forward.transport] if self.forward else [])
        return {k: sum(t.stats[k] for t in ts) for k in ("requests", "retries", "failures")}

    @property
    def encoder(self) -> PairEncoder:
        """The local scorer's pair encoder, sized to the servers' contexts (asks them once, see :meth:`encode`)."""
        if self._encoder is None:
            for d in self._deployments():
                d.context()
            fwd = self.forward
            self._encoder = PairEncoder(
                self.reverse.tokenizer, self.config, max_length=self.reverse.max_length,
                forward_tokenizer=None if fwd is None else fwd.tokenizer,
                forward_max_length=None if fwd is None else fwd.max_length)
        return self._encoder

    def encode(self, pairs: Sequence[PairLike]) -> list[EncodedPair]:
        """Validate and tokenize pairs exactly as the local scorer does (the first call may ask ``/v1/models``).

        Raises:
            InvalidPairError / PairTypeError: a bad pair (``.index`` names it).
        """
        return self.encoder.encode(pairs)

    def score(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Score pairs on the server(s); one :class:`PairScore` per pair, in input order.

        Raises:
            TypeError / ValueError: a bad pair (:class:`~ledom_reason.types.PairError` naming it, also when
                the server rejects its length), a model name the server does not serve, or another 4xx.
            PermissionError: missing or wrong API key.
            FloatingPointError: a non-finite log-prob (:class:`NonFiniteScoreError` naming the pair).
            RemoteScorerError: unreachable or failing after all retries (names endpoint and cause).
        """
        pairs = normalize_pairs(pairs)
        if not pairs:
            return []
        encoded = self.encode(pairs)
        jobs = self._jobs(encoded)
        parts = self.reverse.transport.map(lambda j: j[0].transport.request(
            "POST", COMPLETIONS_PATH, lambda ep, r: j[0].handle(ep, j[1], j[2], r), j[0].body(j[2])), jobs)
        return self._assemble(encoded, jobs, parts)

    async def ascore(self, pairs: Sequence[PairLike]) -> list[PairScore]:
        """Async :meth:`score`: requests go out concurrently (at most ``max_concurrency``)."""
        pairs = normalize_pairs(pairs)
        if not pairs:
            return []
        for d in self._deployments():
            await d.acontext()
        encoded = self.encode(pairs)
        jobs = self._jobs(encoded)

        async def run(j: tuple[_Deployment, int, list[Seq]]) -> list[float]:
            d, off, seqs = j
            return await d.transport.arequest("POST", COMPLETIONS_PATH,
                                              lambda ep, r: d.handle(ep, off, seqs, r), d.body(seqs))

        parts = await self.reverse.transport.amap(run, jobs)
        return self._assemble(encoded, jobs, parts)

    def health(self) -> dict[str, bool]:
        """``{url: ready}`` from each replica's ``GET /health`` (vLLM's)."""
        out: dict[str, bool] = {}
        for d in self._deployments():
            out.update(d.transport.health("/health"))
        return out

    def close(self) -> None:
        """Close the sync HTTP clients (the async ones: :meth:`aclose`)."""
        for d in self._deployments():
            d.transport.close()

    async def aclose(self) -> None:
        """Close all HTTP clients."""
        for d in self._deployments():
            await d.transport.aclose()

    def __enter__(self) -> VLLMServerScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> VLLMServerScorer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        auth = ", api_key=***" if self.reverse.transport.has_auth else ""
        fwd = f", forward={self.forward.model!r}" if self.forward else ""
        return f"VLLMServerScorer(urls={self.urls!r}, model={self.reverse.model!r}{fwd}{auth})"

    # ------------------------------------------------------------------ internals
    def _deployments(self) -> list[_Deployment]:
        return [self.reverse] + ([self.forward] if self.forward is not None else [])

    def _chunks(self, seqs: list[Seq]) -> list[tuple[int, list[Seq]]]:
        """``(offset, prompts)`` requests in input order, each under the token and prompt budgets."""
        out: list[tuple[int, list[Seq]]] = []
        cur: list[Seq] = []
        start = size = 0
        for i, s in enumerate(seqs):
            if cur and (len(cur) >= self.max_prompts_per_request or size + len(s.ids) > self.batch_tokens):
                out.append((start, cur))
                cur, start, size = [], i, 0
            cur.append(s)
            size += len(s.ids)
        if cur:
            out.append((start, cur))
        return out

    def _jobs(self, encoded: list[EncodedPair]) -> list[tuple[_Deployment, int, list[Seq]]]:
        rev = [Seq(e.reverse.input_ids, e.reverse.score_start) for e in encoded]
        jobs = [(self.reverse, off, c) for off, c in self._chunks(rev)]
        if self.forward is not None:
            fwd = [Seq(e.forward.input_ids, e.forward.score_start) for e in encoded if e.forward is not None]
            jobs += [(self.forward, off, c) for off, c in self._chunks(fwd)]
        return jobs

    def _assemble(self, encoded: list[EncodedPair], jobs: list[tuple[_Deployment, int, list[Seq]]],
                  parts: list[list[float]]) -> list[PairScore]:
        rev: list[float] = []
        fwd: list[float] | None = None if self.forward is None else []
        for (d, _, _), part in zip(jobs, parts, strict=True):  # jobs are in input order per deployment
            (rev if d is self.reverse or fwd is None else fwd).extend(part)
        out = []
        for i, e in enumerate(encoded):
            r, f = e.reverse, e.forward
            try:
                out.append(PairScore.build(
                    rev[i], r.num_scored,
                    forward_logprob=None if fwd is None else fwd[i],
                    candidate_tokens=None if f is None else len(f.input_ids) - f.score_start,
                    truncated_tokens=r.truncated_tokens,
                    input_tokens=len(r.input_ids) + (0 if f is None else len(f.input_ids)),
                ))
            except FloatingPointError as err:
                raise NonFiniteScoreError(str(err), i) from None
        return out
