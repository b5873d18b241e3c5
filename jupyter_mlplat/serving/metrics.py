"""Prometheus collectors of one serve process, on its own ``CollectorRegistry``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

#: Label value for requests that named no known endpoint (keeps label cardinality bounded).
UNKNOWN = "-"


class ServingMetrics:
    """Request, latency, batch-size, error, shadow and load-failure metrics.

    Parameters
    ----------
    registry : CollectorRegistry, optional
        Where the collectors live; default a new one (never the global default registry).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("mlplat_serving_requests", "Prediction requests answered.",
                                ["endpoint", "model", "version", "code"], registry=r)
        self.latency = Histogram(
            "mlplat_serving_request_seconds", "Time to answer a prediction request.",
            ["endpoint"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.batch_size = Histogram(
            "mlplat_serving_batch_rows", "Rows per model predict call (micro-batching).",
            ["model", "version"], registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.errors = Counter("mlplat_serving_errors", "Prediction requests that failed, by "
                              "kind (client, auth, not_found, unavailable, server).",
                              ["endpoint", "kind"], registry=r)
        self.shadow = Counter("mlplat_serving_shadow", "Shadow predictions by outcome "
                              "(agree, disagree, error, dropped).",
                              ["endpoint", "outcome"], registry=r)
        self.inflight = Gauge("mlplat_serving_inflight", "Prediction requests being handled.",
                              ["endpoint"], registry=r)
        self.load_failures = Counter("mlplat_serving_load_failures",
                                     "Endpoint revisions that could not be loaded.",
                                     ["endpoint"], registry=r)

    def observe_batch(self, model: str, version: int, rows: int) -> None:
        """One predict call of ``rows`` rows (thread-safe: called from worker threads)."""
        self.batch_size.labels(model=model, version=str(version)).observe(rows)

    def observe_request(self, endpoint: str | None, model: str | None, version: int | None,
                        code: int, seconds: float, error_kind: str | None) -> None:
        """One answered prediction request."""
        ep = endpoint or UNKNOWN
        self.requests.labels(endpoint=ep, model=model or UNKNOWN,
                             version=UNKNOWN if version is None else str(version),
                             code=str(code)).inc()
        self.latency.labels(endpoint=ep).observe(seconds)
        if error_kind is not None:
            self.errors.labels(endpoint=ep, kind=error_kind).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
