"""Run the app with uvicorn: in the foreground with graceful SIGTERM, or in a background thread.

On SIGTERM/SIGINT the server stops accepting connections, lets in-flight requests finish (up to
``ServerConfig.graceful_timeout_s``), stops the batcher, and :func:`run_server` returns ``0``.
(Stock uvicorn re-raises the caught signal after a graceful shutdown, which would make the
process exit with ``-15``; :class:`GracefulServer` does not.)

Example:
    >>> from ledom_reason.server.app import create_app  # doctest: +SKIP
    >>> with ServerThread(create_app(scorer)) as srv:  # doctest: +SKIP
    ...     httpx.post(f"{srv.url}/v1/score", json={"pairs": [...]})
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import uvicorn

from ledom_reason.server.config import ServerConfig

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` whose signal handling ends in a normal return (exit status 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def uvicorn_config(app: Any, config: ServerConfig, *, log_level: str = "info", access_log: bool = False,
                   log_config: Any = uvicorn.config.LOGGING_CONFIG) -> uvicorn.Config:
    """The uvicorn settings for ``app`` under ``config`` (single process, lifespan on)."""
    return uvicorn.Config(
        app, host=config.host, port=config.port, log_level=log_level, access_log=access_log,
        timeout_graceful_shutdown=max(1, math.ceil(config.graceful_timeout_s)), lifespan="on",
        log_config=log_config, server_header=False,
    )


def run_server(app: Any, config: ServerConfig, *, log_level: str = "info", access_log: bool = False) -> int:
    """Serve ``app`` in the foreground until SIGTERM/SIGINT.

    Returns:
        ``0`` after a graceful shutdown, ``1`` when the model failed to load.
    """
    server = GracefulServer(uvicorn_config(app, config, log_level=log_level, access_log=access_log))
    state = getattr(app.state, "ledom", None)
    if state is not None:
        def _fatal() -> None:
            server.should_exit = True
        state.on_fatal = _fatal
    server.run()
    if state is not None and state.status == "error":
        return 1
    return 0


class ServerThread:
    """A real uvicorn server on 127.0.0.1 in a background thread (tests, benchmarks, notebooks).

    Args:
        app: The ASGI app (from :func:`~ledom_reason.server.app.create_app`).
        host: Interface to bind.
        port: Port; ``0`` picks a free one (read :attr:`port` / :attr:`url` after start).
        sock: A socket already bound (not listening) to use instead of ``host``/``port``:
            connections are refused until the server starts, then accepted.
        config: Graceful-shutdown timeout and other server settings (host/port are taken from the
            arguments above).
        log_level: uvicorn's log level (default ``warning``).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None,
                 config: ServerConfig | None = None, log_level: str = "warning") -> None:
        cfg = config or ServerConfig()
        cfg = ServerConfig(**{**cfg.__dict__, "host": host, "port": port})
        self.server = GracefulServer(uvicorn_config(app, cfg, log_level=log_level, log_config=None))
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="ledom-server", daemon=True)
        self._error: BaseException | None = None
        self.port: int | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self._sock] if self._sock is not None else None)
        except BaseException as e:  # surfaced by start()/stop()
            self._error = e

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:51234``."""
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerThread:
        """Start and wait until the socket accepts connections (not until the model is ready)."""
        self._thread.start()
        t_end = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > t_end:
                raise RuntimeError(f"server did not start: {self._error!r}")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self, timeout: float = 30.0, *, force: bool = False) -> None:
        """Graceful stop (finish in-flight requests); ``force=True`` drops them (a crash-like stop)."""
        if force:
            self.server.force_exit = True
        self.server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("server thread did not stop")

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def wait_ready(url: str, timeout: float = 60.0, *, interval: float = 0.05) -> None:
    """Poll ``GET {url}/healthz`` until it answers 200 (raises ``TimeoutError`` otherwise)."""
    import httpx

    t_end = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < t_end:
        try:
            r = httpx.get(f"{url}/healthz", timeout=2.0)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.TransportError as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(interval)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s ({last})")
