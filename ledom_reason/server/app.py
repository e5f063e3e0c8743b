"""The FastAPI app: ``POST /v1/score``, ``GET /v1/info``, ``GET /healthz``, ``GET /metrics``.

Build it with :func:`create_app` and run it with :func:`ledom_reason.server.run.run_server` (or any
ASGI server). Every non-2xx answer is JSON ``{"error": {"type", "message", "details"?}}``; no
traceback ever leaves the process.

Example:
    >>> from fastapi.testclient import TestClient
    >>> from ledom_reason.types import PairScore
    >>> class Fake:
    ...     name = "fake"
    ...     def score(self, pairs):
    ...         return [PairScore.build(-1.0 * len(q), len(q)) for q, _ in pairs]
    ...     async def ascore(self, pairs):
    ...         return self.score(pairs)
    >>> with TestClient(create_app(Fake())) as client:
    ...     r = client.post("/v1/score", json={"pairs": [{"question": "2+2?", "candidate": "4"}]})
    >>> r.status_code, r.json()["scores"][0]["reverse_logprob"], r.json()["model"]
    (200, -4.0, 'fake')
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledom_reason._version import __version__
from ledom_reason.reward import reverse_reward
from ledom_reason.server.batcher import BatcherClosedError, DynamicBatcher, QueueFullError
from ledom_reason.server.config import ServerConfig
from ledom_reason.server.metrics import ServerMetrics
from ledom_reason.server.middleware import (
    BearerAuthMiddleware,
    BodyLimitMiddleware,
    MetricsMiddleware,
    error_body,
)
from ledom_reason.server.schemas import ErrorResponse, Health, ScoreRequest, ScoreResponse
from ledom_reason.types import PairError, Scorer

logger = logging.getLogger(__name__)

ScorerLoader = Callable[[], Any]


class ApiError(Exception):
    """An error with its HTTP status, rendered as the JSON error body."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None,
                 pair_index: int | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers
        self.pair_index = pair_index


class ServerState:
    """What the endpoints share: config, metrics, the scorer and its batcher, readiness."""

    def __init__(self, config: ServerConfig, metrics: ServerMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.scorer: Any | None = None
        self.batcher: DynamicBatcher | None = None
        self.status: str = "loading"
        self.detail: str | None = None
        self.on_fatal: Callable[[], None] | None = None
        """Called when the model fails to load (the runner uses it to stop the server)."""

    @property
    def ready(self) -> bool:
        return self.status == "ok" and self.batcher is not None and self.batcher.running

    @property
    def model_name(self) -> str | None:
        if self.config.model_name:
            return self.config.model_name
        return None if self.scorer is None else str(getattr(self.scorer, "name", type(self.scorer).__name__))

    @property
    def has_forward(self) -> bool | None:
        """Whether λ < 1 can work: ``None`` when the scorer does not say."""
        if self.scorer is None or not hasattr(self.scorer, "forward_model"):
            return None
        return self.scorer.forward_model is not None

    async def start(self, scorer_or_loader: Any) -> None:
        """Load the scorer (in a thread when given a loader), then start the batcher."""
        try:
            if isinstance(scorer_or_loader, Scorer):
                scorer = scorer_or_loader
            else:
                scorer = await asyncio.to_thread(scorer_or_loader)
            batcher = DynamicBatcher(
                scorer, max_batch_tokens=self.config.max_batch_tokens, max_wait_ms=self.config.max_wait_ms,
                max_queue=self.config.max_queue, metrics=self.metrics,
            )
            await batcher.start()
        except Exception as e:
            self.status, self.detail = "error", f"model failed to load: {type(e).__name__}: {e}"
            logger.error("%s", self.detail, exc_info=True)
            if self.on_fatal is not None:
                self.on_fatal()
            return
        self.scorer, self.batcher, self.status = scorer, batcher, "ok"
        logger.info("scorer ready: %s", self.model_name)

    async def stop(self) -> None:
        if self.status == "ok":
            self.status = "stopping"
        if self.batcher is not None:
            await self.batcher.stop()


def _state(request: Request) -> ServerState:
    return request.app.state.ledom


# ---------------------------------------------------------------------- routes
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc}
    for code, desc in [(401, "Missing or wrong bearer token"), (413, "Body or pair count over the limit"),
                       (422, "Invalid input (names the pair)"), (503, "Overloaded or not ready (see Retry-After)")]
}
router = APIRouter()


@router.post("/v1/score", response_model=ScoreResponse, response_model_exclude_none=True, responses=_ERRORS)
async def score(body: ScoreRequest, request: Request) -> dict[str, Any]:
    """Score ``(question, candidate)`` pairs with the reverse model; scores come back in input order.

    An empty ``pairs`` list is answered with an empty ``scores`` list (as the local scorer returns ``[]``).
    """
    t0 = time.perf_counter()
    state = _state(request)
    cfg = state.config
    if len(body.pairs) > cfg.max_pairs_per_request:
        state.metrics.rejected.labels("too_many_pairs").inc()
        raise ApiError(413, "too_many_pairs",
                       f"{len(body.pairs)} pairs is over the limit of {cfg.max_pairs_per_request} per request; "
                       "split the list (RemoteScorer does this for you)")
    for i, p in enumerate(body.pairs):
        for name, text in (("question", p.question), ("candidate", p.candidate)):
            if len(text) > cfg.max_field_chars:
                state.metrics.rejected.labels("field_too_long").inc()
                raise ApiError(422, "field_too_long",
                               f"pair {i}: `{name}` is {len(text)} characters, over the limit of {cfg.max_field_chars}",
                               pair_index=i)
    want_reward = body.lam is not None or body.normalize is not None
    lam = 1.0 if body.lam is None else body.lam
    normalize = body.normalize or "sum"
    if not state.ready or state.batcher is None:
        detail = f" ({state.detail})" if state.detail else ""  # e.g. why the model failed to load
        raise ApiError(503, "not_ready", f"scorer is {state.status}{detail}", {"Retry-After": str(cfg.retry_after_s)})
    if want_reward and lam < 1.0 and state.has_forward is False:
        raise ApiError(422, "forward_model_required",
                       f"lam={lam} < 1 needs a forward model, and this server has none "
                       "(start it with --forward-model, or use lam=1)")
    t1 = time.perf_counter()
    try:
        scores = await state.batcher.submit([(p.question, p.candidate) for p in body.pairs]) if body.pairs else []
    except QueueFullError as e:
        raise ApiError(503, "overloaded", str(e), {"Retry-After": str(cfg.retry_after_s)}) from None
    except BatcherClosedError as e:
        raise ApiError(503, "not_ready", str(e), {"Retry-After": str(cfg.retry_after_s)}) from None
    out = []
    for s in scores:
        d = s.to_dict()
        d.pop("extra", None)
        if want_reward:
            d["reward"] = reverse_reward(s, lam=lam, normalize=normalize)
        out.append(d)
    scoring_s = time.perf_counter() - t1
    used = sum(s.input_tokens for s in scores)
    state.metrics.pairs.inc(len(scores))
    state.metrics.tokens.inc(used)
    stats = {"scored_pairs": len(scores), "scored_tokens": used, "scoring_time_s": scoring_s,
             "wall_time_s": time.perf_counter() - t0}
    return {"scores": out, "model": state.model_name or "unknown", "stats": stats}


@router.get("/v1/info")
async def info(request: Request) -> dict[str, Any]:
    """Model name, server version, whether λ < 1 is available, the calibration behind ``p_correct`` (if any),
    and the request limits."""
    state = _state(request)
    c = state.config
    cal = getattr(state.scorer, "calibration", None)
    return {
        "model": state.model_name, "version": __version__, "status": state.status,
        "forward_model": state.has_forward,
        "calibration": None if cal is None else {"method": cal.method, "lam": cal.lam, "normalize": cal.normalize},
        "limits": {"max_pairs_per_request": c.max_pairs_per_request, "max_field_chars": c.max_field_chars,
                   "max_body_bytes": c.max_body_bytes, "max_batch_tokens": c.max_batch_tokens},
    }


@router.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "Not ready"}})
async def healthz(request: Request) -> JSONResponse:
    """200 once the model is loaded and the batcher runs; 503 while loading, after a load error, or stopping."""
    state = _state(request)
    depth = state.batcher.queue_depth if state.batcher is not None else 0
    status = "ok" if state.ready else ("loading" if state.status == "ok" else state.status)
    body = Health(status=status, model=state.model_name, queue_depth=depth, detail=state.detail)  # type: ignore[arg-type]
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if state.ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this server's metrics."""
    data, ctype = _state(request).metrics.render()
    return Response(content=data, media_type=ctype)


# ---------------------------------------------------------------------- errors
def _json_error(status: int, kind: str, message: str, details: list[dict[str, Any]] | None = None,
                headers: dict[str, str] | None = None, pair_index: int | None = None) -> JSONResponse:
    return JSONResponse(error_body(kind, message, details, pair_index), status_code=status, headers=headers)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _json_error(exc.status, exc.kind, exc.message, headers=exc.headers, pair_index=exc.pair_index)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Never echo the input back (it may be megabytes); keep location, message and kind.
    details: list[dict[str, Any]] = [
        {"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()[:20]]
    where = ".".join(details[0]["loc"]) if details else ""
    msg = str(details[0]["msg"]) if details else "invalid request"
    _state(request).metrics.rejected.labels("validation").inc()
    return _json_error(422, "validation_error", f"{where}: {msg}" if where else msg, details)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kinds = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
    return _json_error(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail),
                       headers=getattr(exc, "headers", None))


async def _on_value_error(request: Request, exc: Exception) -> JSONResponse:
    _state(request).metrics.rejected.labels("invalid_input").inc()
    return _json_error(422, "invalid_input", str(exc), pair_index=getattr(exc, "index", None)
                       if isinstance(exc, PairError) else None)


async def _on_model_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("model error: %s", exc)
    return _json_error(500, "model_error", str(exc), pair_index=getattr(exc, "index", None)
                       if isinstance(exc, PairError) else None)


async def _on_internal_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s", request.url.path, exc_info=exc)
    return _json_error(500, "internal_error", "internal server error (details are in the server log)")


# ---------------------------------------------------------------------- factory
def create_app(
    scorer: Scorer | ScorerLoader,
    config: ServerConfig | None = None,
    *,
    metrics: ServerMetrics | None = None,
) -> FastAPI:
    """Build the scoring app around a scorer.

    Args:
        scorer: A :class:`~ledom_reason.Scorer` (a loaded
            :class:`~ledom_reason.scorers.local.ReverseScorer` batches best), or a zero-argument
            callable that loads one. A loader runs in a thread after start-up, so the server answers
            ``/healthz`` with 503 ``loading`` until the model is ready.
        config: Limits, batching and auth (:class:`ServerConfig`; defaults when ``None``).
        metrics: A :class:`ServerMetrics` to record into (default: a fresh registry per app).

    Returns:
        A FastAPI app; ``app.state.ledom`` is its :class:`ServerState`.
    """
    if not isinstance(scorer, Scorer) and not callable(scorer):
        raise TypeError(f"`scorer` must be a Scorer or a loader callable, got {type(scorer).__name__}")
    config = config or ServerConfig()
    state = ServerState(config, metrics or ServerMetrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(state.start(scorer), name="ledom-load")
        try:
            yield
        finally:
            if not loading.done():
                loading.cancel()
            await state.stop()

    app = FastAPI(
        title="ledom-reason scoring server",
        version=__version__,
        description="Reverse-LM (LEDOM) scores of (question, candidate) pairs, with dynamic batching.",
        lifespan=lifespan,
    )
    app.state.ledom = state
    app.include_router(router)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ValueError, _on_value_error)
    app.add_exception_handler(TypeError, _on_value_error)
    app.add_exception_handler(FloatingPointError, _on_model_error)
    app.add_exception_handler(Exception, _on_internal_error)
    # add_middleware wraps: the last added is the outermost.
    if config.api_key is not None:
        app.add_middleware(BearerAuthMiddleware, api_key=config.api_key, metrics=state.metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes, metrics=state.metrics)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
