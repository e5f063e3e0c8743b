"""Prometheus metrics of one server app, in their own registry (never the process-global one).

Each :func:`~ledom_reason.server.app.create_app` call builds a :class:`ServerMetrics`, so several
apps (tests, replicas in one process) never share or clash on metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 4096)
_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    """The server's counters, gauges and histograms (prefix ``ledom_``).

    Attributes:
        requests: ``ledom_requests_total{path, status}`` — HTTP requests by route and status code.
        pairs: ``ledom_pairs_total`` — pairs scored.
        tokens: ``ledom_tokens_total`` — tokens run through the model(s).
        batch_requests: ``ledom_batch_requests`` — requests merged into one model pass.
        batch_pairs: ``ledom_batch_pairs`` — pairs in one model pass.
        batch_tokens: ``ledom_batch_tokens`` — reverse-input tokens in one model pass.
        batch_failures: ``ledom_batch_failures_total`` — merged passes that raised and were retried per request.
        queue_depth: ``ledom_queue_depth`` — requests waiting for the model.
        rejected: ``ledom_rejected_total{reason}`` — requests refused before scoring.
        latency: ``ledom_request_latency_seconds{path}`` — wall time per HTTP request.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("ledom_requests", "HTTP requests by route and status", ["path", "status"], registry=r)
        self.pairs = Counter("ledom_pairs", "Pairs scored", registry=r)
        self.tokens = Counter("ledom_tokens", "Tokens run through the model(s)", registry=r)
        self.batch_requests = Histogram("ledom_batch_requests", "Requests merged into one model pass",
                                        buckets=_BATCH_BUCKETS, registry=r)
        self.batch_pairs = Histogram("ledom_batch_pairs", "Pairs in one model pass", buckets=_BATCH_BUCKETS, registry=r)
        self.batch_tokens = Histogram("ledom_batch_tokens", "Reverse-input tokens in one model pass",
                                      buckets=_TOKEN_BUCKETS, registry=r)
        self.batch_failures = Counter("ledom_batch_failures", "Merged passes that failed and were split", registry=r)
        self.queue_depth = Gauge("ledom_queue_depth", "Requests waiting for the model", registry=r)
        self.rejected = Counter("ledom_rejected", "Requests refused before scoring", ["reason"], registry=r)
        self.latency = Histogram("ledom_request_latency_seconds", "Wall time per HTTP request", ["path"],
                                 buckets=_LATENCY_BUCKETS, registry=r)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
