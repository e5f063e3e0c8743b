"""Pure ASGI middleware of the scoring server: metrics, body-size limit, bearer-token auth.

Order (outermost first): :class:`MetricsMiddleware` → :class:`BodyLimitMiddleware` →
:class:`BearerAuthMiddleware` → the FastAPI app. The body limit reads (and bounds) the whole body
before anything else runs, so a refused upload is drained instead of leaving the client writing
into a closed connection.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ledom_reason.server.metrics import ServerMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KNOWN_PATHS = frozenset({"/v1/score", "/v1/info", "/healthz", "/metrics", "/docs", "/openapi.json", "/redoc"})
_DRAIN_CAP = 64 * 2**20  # bytes read and dropped from a refused upload before answering


def error_body(kind: str, message: str, details: list[dict[str, Any]] | None = None,
               pair_index: int | None = None) -> dict[str, Any]:
    """The JSON error shape of every non-2xx response (``pair_index`` when the error is about one pair)."""
    err: dict[str, Any] = {"type": kind, "message": message}
    if details is not None:
        err["details"] = details
    if pair_index is not None:
        err["pair_index"] = pair_index
    return {"error": err}


async def send_json_error(send: Send, status: int, kind: str, message: str,
                          headers: dict[str, str] | None = None) -> None:
    """Send a complete JSON error response from ASGI middleware."""
    body = json.dumps(error_body(kind, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return v
    return None


class MetricsMiddleware:
    """Count requests by route and status, and time them."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        label = path if path in KNOWN_PATHS else "other"
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(label, str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - t0)


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` (declared or streamed) with ``413``; buffer the rest."""

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: ServerMetrics | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    async def _refuse(self, receive: Receive, send: Send, more: bool, seen: int) -> None:
        while more and seen <= _DRAIN_CAP:  # drain, so the client can read our answer
            msg = await receive()
            if msg["type"] != "http.request":
                return
            seen += len(msg.get("body", b""))
            more = bool(msg.get("more_body"))
        if self.metrics is not None:
            self.metrics.rejected.labels("body_too_large").inc()
        await send_json_error(send, 413, "payload_too_large",
                              f"request body is over the limit of {self.max_bytes} bytes; "
                              "send fewer pairs per request")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await send_json_error(send, 400, "bad_request", "invalid Content-Length header")
                return
            if int(declared) > self.max_bytes:
                await self._refuse(receive, send, True, 0)
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # client disconnected
            chunk = msg.get("body", b"")
            total += len(chunk)
            more = bool(msg.get("more_body"))
            if total > self.max_bytes:
                await self._refuse(receive, send, more, total)
                return
            chunks.append(chunk)
            if not more:
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class BearerAuthMiddleware:
    """Require ``Authorization: Bearer <api_key>`` on paths under ``protected_prefix``."""

    def __init__(self, app: ASGIApp, api_key: str, protected_prefix: str = "/v1/",
                 metrics: ServerMetrics | None = None) -> None:
        self.app = app
        self._key = api_key.encode()
        self.prefix = protected_prefix
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        auth = _header(scope, b"authorization") or b""
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            reason = "missing bearer token (send `Authorization: Bearer <key>`)"
        elif not hmac.compare_digest(token.strip(), self._key):
            reason = "invalid bearer token"
        else:
            await self.app(scope, receive, send)
            return
        if self.metrics is not None:
            self.metrics.rejected.labels("unauthorized").inc()
        await send_json_error(send, 401, "unauthorized", reason, {"WWW-Authenticate": "Bearer"})
