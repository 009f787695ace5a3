"""The bridge's topic rules: which topics cross, in which direction, renamed how. Pure.

As in Mosquitto's ``topic <filter> <direction> <qos> <local prefix> <remote
prefix>``: the hub subscribes ``local_prefix + filter``, the broker
``remote_prefix + filter``, and a topic swaps one prefix for the other when it
crosses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from protocols.mqtt.config import MqttBridgeTopic
from protocols.mqtt.topics import matches


@dataclass(frozen=True, slots=True)
class Route:
    """One rule, ready to match."""

    filter: str
    inbound: bool
    outbound: bool
    local_prefix: str
    remote_prefix: str
    qos: int

    @classmethod
    def from_config(cls, topic: MqttBridgeTopic) -> Route:
        return cls(
            topic.filter,
            inbound=topic.direction in ("in", "both"),
            outbound=topic.direction in ("out", "both"),
            local_prefix=topic.local_prefix,
            remote_prefix=topic.remote_prefix,
            qos=topic.qos,
        )

    @property
    def local_filter(self) -> str:
        return self.local_prefix + self.filter

    @property
    def remote_filter(self) -> str:
        return self.remote_prefix + self.filter

    def to_remote(self, channel: str) -> str | None:
        """The broker topic for a hub channel under this rule, if it matches."""
        if not matches(self.local_filter, channel):
            return None
        return self.remote_prefix + channel.removeprefix(self.local_prefix)

    def to_local(self, topic: str) -> str | None:
        """The hub channel for a broker topic under this rule, if it matches."""
        if not matches(self.remote_filter, topic):
            return None
        return self.local_prefix + topic.removeprefix(self.remote_prefix)


class Routes:
    def __init__(self, topics: Iterable[MqttBridgeTopic]) -> None:
        self.all = [Route.from_config(topic) for topic in topics]
        self.inbound = [route for route in self.all if route.inbound]
        self.outbound = [route for route in self.all if route.outbound]

    def local_filters(self) -> list[str]:
        """Hub subscriptions the bridge needs, once each."""
        return list(dict.fromkeys(route.local_filter for route in self.outbound))

    def outbound_for(self, local_filter: str, channel: str) -> list[tuple[Route, str]]:
        """(rule, broker topic) for a channel delivered through ``local_filter``."""
        out = []
        for route in self.outbound:
            if route.local_filter == local_filter:
                remote = route.to_remote(channel)
                if remote is not None:
                    out.append((route, remote))
        return out

    def inbound_for(self, topic: str) -> str | None:
        """The hub channel for a broker topic: the first inbound rule that matches."""
        for route in self.inbound:
            local = route.to_local(topic)
            if local is not None:
                return local
        return None

    def subscribed_remotely(self, topic: str) -> bool:
        """Whether the broker sends ``topic`` back to us (we subscribe it inbound)."""
        return any(matches(route.remote_filter, topic) for route in self.inbound)
