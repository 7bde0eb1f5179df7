"""The gateway's Prometheus metrics, served on its ``/metrics``: requests, tokens and latency per route
and version, and what the background parts dropped (mirror copies, traffic log rows).

One registry per gateway (not the process-global one), so two gateways in one test process do not
share counters. Buckets: TTFT from 5 ms to 10 s, time per output token from 1 ms to 1 s (CPU vLLM
serves ~10-100 ms per token; GPU replicas ~5-30 ms).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class _Gauges(Collector):
    """Values read when scraped (queue drops, route state): no bookkeeping on the request path."""

    def __init__(self, read: Callable[[], dict[str, tuple[str, float]]]) -> None:
        self.read = read

    def collect(self) -> Any:
        for name, (doc, value) in self.read().items():
            yield GaugeMetricFamily(name, doc, value=value)


class GatewayMetrics:
    def __init__(self, read_gauges: Callable[[], dict[str, tuple[str, float]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("route", "version")
        self.requests = Counter(
            "aire_gateway_requests", "Requests answered, by outcome.", (*labels, "status"), registry=self.registry
        )
        self.tokens = Counter("aire_gateway_tokens", "Tokens, by kind.", (*labels, "kind"), registry=self.registry)
        self.ttft = Histogram(
            "aire_gateway_ttft_seconds", "Time to first token.", labels, buckets=TTFT_BUCKETS, registry=self.registry
        )
        self.tpot = Histogram(
            "aire_gateway_tpot_seconds",
            "Time per output token after the first.",
            labels,
            buckets=TPOT_BUCKETS,
            registry=self.registry,
        )
        self.e2e = Histogram(
            "aire_gateway_e2e_seconds", "Request to last byte.", labels, buckets=TTFT_BUCKETS, registry=self.registry
        )
        self.registry.register(_Gauges(read_gauges))

    def observe(self, row: dict[str, Any]) -> None:
        """One answered request (its traffic-log row)."""
        route, version = row["route"], row.get("version") or ""
        self.requests.labels(route, version, str(row["status"])).inc()
        for kind, key in (("prompt", "prompt_tokens"), ("completion", "completion_tokens")):
            if row.get(key):
                self.tokens.labels(route, version, kind).inc(row[key])
        ttft, e2e, n = row.get("ttft_ms"), row.get("e2e_ms"), row.get("completion_tokens")
        if ttft is not None:
            self.ttft.labels(route, version).observe(ttft / 1000)
        if e2e is not None:
            self.e2e.labels(route, version).observe(e2e / 1000)
            if ttft is not None and n and n >= 2:
                self.tpot.labels(route, version).observe((e2e - ttft) / 1000 / (n - 1))

    def render(self) -> bytes:
        return generate_latest(self.registry)
