"""Prometheus metrics of one hub, in a registry of its own (several hubs per process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4


class HubMetrics:
    content_type = CONTENT_TYPE_PLAIN_0_0_4

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections_opened = Counter(
            "wshub_connections_opened",
            "WebSocket connections accepted",
            ["subprotocol"],
            registry=r,
        )
        self.connections_active = Gauge(
            "wshub_connections_active",
            "WebSocket connections open now",
            ["subprotocol"],
            registry=r,
        )
        self.handshakes_refused = Counter(
            "wshub_handshakes_refused", "Handshakes refused", ["reason"], registry=r
        )
        self.messages_received = Counter(
            "wshub_messages_received", "WebSocket messages received", ["subprotocol"], registry=r
        )
        self.slow_consumers_closed = Counter(
            "wshub_slow_consumers_closed",
            "Connections closed for a full outbound buffer",
            registry=r,
        )
        self.handler_errors = Counter(
            "wshub_handler_errors",
            "Connections closed by an unexpected handler error",
            ["subprotocol"],
            registry=r,
        )
        self.rpc_calls = Counter("wshub_rpc_calls", "RPC method calls", ["outcome"], registry=r)
        self.rpc_latency = Histogram(
            "wshub_rpc_latency_seconds",
            "RPC method run time",
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.publications = Counter(
            "wshub_publications", "Publications accepted by the channel engine", registry=r
        )
        self.deliveries = Counter(
            "wshub_deliveries", "Publications written to subscribers", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
