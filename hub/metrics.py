"""Prometheus metrics of one hub.

The hot path (every message, every delivery) bumps plain numbers: the hub
mutates them from its one event-loop thread, so prometheus_client's per-update
locks would be pure cost. A custom collector turns them into Prometheus
families at scrape time. Each hub has its own registry (several hubs per
process in tests).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector


class Counter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class Gauge(Counter):
    __slots__ = ()

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


M = TypeVar("M", bound=Counter)


class Labeled(Generic[M]):
    """Counters or gauges by one label; ``labels()`` children are created once."""

    def __init__(self, kind: type[M], label: str) -> None:
        self._kind = kind
        self.label = label
        self.children: dict[str, M] = {}

    def labels(self, value: str) -> M:
        child = self.children.get(value)
        if child is None:
            child = self.children[value] = self._kind()
        return child


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class HubMetrics:
    content_type = CONTENT_TYPE_PLAIN_0_0_4

    def __init__(self) -> None:
        self.connections_opened = Labeled(Counter, "subprotocol")
        self.connections_active = Labeled(Gauge, "subprotocol")
        # Reasons: origin, max_connections, per_ip, subprotocol, auth.
        self.handshakes_refused = Labeled(Counter, "reason")
        self.handshakes_incomplete = Counter()
        # Credentials refused, by how they were checked (docs/security.md).
        self.auth_failures = Labeled(Counter, "method")
        # Connections holding a slot (handshaking or open), what the limits count.
        self.connection_slots = Gauge()
        self.messages_received = Labeled(Counter, "subprotocol")
        self.handler_errors = Labeled(Counter, "subprotocol")
        self.rpc_calls = Labeled(Counter, "outcome")
        self.slow_consumers_closed = Counter()
        self.messages_rate_limited = Labeled(Counter, "subprotocol")
        self.rate_limit_closes = Labeled(Counter, "subprotocol")
        self.oversize_closes = Labeled(Counter, "subprotocol")
        self.tls_reloads = Labeled(Counter, "outcome")
        self.publications = Counter()
        self.deliveries = Counter()
        # Publications a client was not told failed (MQTT QoS 0, WAMP without
        # acknowledge, MQTT to '$' topics), by reason.
        self.publications_dropped = Labeled(Counter, "reason")
        # Server API requests by HTTP status.
        self.api_requests = Labeled(Counter, "status")
        # Requests to the backend ([proxy.*]) by outcome: allowed, refused, timeout, unavailable.
        self.proxy_requests = Labeled(Counter, "outcome")
        # Webhook events delivered, retried, and dropped by reason (queue_full, failed).
        self.webhooks_delivered = Counter()
        self.webhooks_retries = Counter()
        self.webhooks_dropped = Labeled(Counter, "reason")
        # HTTP fallback sessions (hub.fallback) by transport: sse, events, ndjson.
        self.fallback_sessions_opened = Labeled(Counter, "transport")
        self.fallback_sessions_active = Labeled(Gauge, "transport")
        self.rpc_latency = Histogram((0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0))
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def render(self) -> bytes:
        return generate_latest(self.registry)


_DESCRIPTIONS = {
    "connections_opened": "WebSocket connections accepted",
    "handshakes_refused": "Handshakes refused",
    "auth_failures": "Credentials refused (handshake, protocol login or refresh), by method",
    "handshakes_incomplete": (
        "TCP connections closed before a complete HTTP request (open_timeout, or the client left)"
    ),
    "messages_received": "WebSocket messages received",
    "handler_errors": "Connections closed by an unexpected handler error",
    "rpc_calls": "RPC method calls",
    "slow_consumers_closed": "Connections closed for a full outbound buffer",
    "messages_rate_limited": "Messages refused for exceeding the connection's message rate",
    "rate_limit_closes": "Connections closed (1008) for sending on over the message rate",
    "oversize_closes": "Connections closed (1009) for a message over the size limit",
    "tls_reloads": "TLS certificate reloads (SIGHUP), by outcome",
    "publications": "Publications accepted by the channel engine",
    "deliveries": "Publications written to subscribers",
    "publications_dropped": "Client publications dropped without telling the client",
    "api_requests": "Server API requests, by HTTP status",
    "proxy_requests": "Requests to the backend's proxy endpoints, by outcome",
    "webhooks_delivered": "Webhook events delivered (a 2xx answer)",
    "webhooks_retries": "Webhook delivery attempts after a failed one",
    "webhooks_dropped": "Webhook events given up: queue_full, or failed after max_attempts",
    "fallback_sessions_opened": "HTTP fallback sessions opened, by transport",
}


class _Collector(Collector):
    def __init__(self, metrics: HubMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        for name, description in _DESCRIPTIONS.items():
            metric = getattr(m, name)
            if isinstance(metric, Labeled):
                family = CounterMetricFamily(f"wshub_{name}", description, labels=[metric.label])
                for label, child in metric.children.items():
                    family.add_metric([label], child.value)
            else:
                family = CounterMetricFamily(f"wshub_{name}", description, value=metric.value)
            yield family
        active = GaugeMetricFamily(
            "wshub_connections_active", "WebSocket connections open now", labels=["subprotocol"]
        )
        for label, child in m.connections_active.children.items():
            active.add_metric([label], child.value)
        yield active
        fallback = GaugeMetricFamily(
            "wshub_fallback_sessions_active",
            "HTTP fallback sessions open now, by transport",
            labels=["transport"],
        )
        for label, child in m.fallback_sessions_active.children.items():
            fallback.add_metric([label], child.value)
        yield fallback
        yield GaugeMetricFamily(
            "wshub_connection_slots",
            "Connections counted against limits.max_connections (handshaking or open)",
            value=m.connection_slots.value,
        )
        latency = m.rpc_latency
        cumulative = 0
        buckets = []
        for bound, count in zip((*latency.bounds, float("inf")), latency.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        yield HistogramMetricFamily(
            "wshub_rpc_latency_seconds",
            "RPC method run time",
            buckets=buckets,
            sum_value=latency.sum,
        )
