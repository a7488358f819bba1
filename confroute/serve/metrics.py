"""Prometheus metrics, one registry per app (so several apps, e.g. in tests, never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Scoring takes milliseconds, upstream calls take seconds: separate bucket ranges.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """The service's counters and histograms, registered in their own CollectorRegistry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("confroute_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("confroute_request_seconds",
                                 "Time to response start by endpoint (streams: headers sent)",
                                 ["endpoint"], buckets=SLOW_BUCKETS, registry=r)
        self.routes = Counter("confroute_routes", "Routing decisions by endpoint and route",
                              ["endpoint", "route"], registry=r)
        self.scoring = Histogram("confroute_score_seconds", "Router scoring time per batch",
                                 buckets=FAST_BUCKETS, registry=r)
        self.batch = Histogram("confroute_score_batch_prompts", "Prompts per scoring call",
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.upstream_latency = Histogram("confroute_upstream_seconds",
                                          "Upstream time to response start", ["upstream"],
                                          buckets=SLOW_BUCKETS, registry=r)
        self.upstream_errors = Counter("confroute_upstream_errors",
                                       "Failed upstream calls by upstream and kind",
                                       ["upstream", "kind"], registry=r)
        self.fallbacks = Counter("confroute_fallbacks",
                                 "Requests answered by the other upstream", ["from_upstream"],
                                 registry=r)
        self.refused = Counter("confroute_refused",
                               "Requests the guard refused before any endpoint (foreign Host "
                               "or Origin, not JSON, bad or slow body), by error code",
                               ["code"], registry=r)
        self.info = Gauge("confroute_router_info", "The loaded router artifact (value 1)",
                          ["variant", "turn", "model_sha256"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
