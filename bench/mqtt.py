"""MQTT fan-out over WebSocket: the hub's ``mqtt`` subprotocol against Mosquitto.

The same MQTT.js clients and the same load on both: N subscribers of one topic
at QoS 0, one publisher at QoS 1 waiting for each PUBACK.
"""

from __future__ import annotations

import dataclasses

from bench.fanout import best_fanout, fanout_rows
from bench.peers import mosquitto
from bench.processes import hub_server
from bench.report import Row


def mqtt_workload(subscribers: int, seconds: float, rounds: int, size: int = 100) -> list[Row]:
    with hub_server() as hub_at, mosquitto() as broker_at:
        # MQTT clients conventionally connect on /mqtt; the hub takes any path.
        hub_at = dataclasses.replace(hub_at, url=hub_at.url + "mqtt")
        hub, broker = best_fanout(
            rounds, (hub_at, "mqtt"), (broker_at, "mqtt"), subscribers, seconds, size
        )
    within_2x = hub.deliveries_per_s >= 0.5 * broker.deliveries_per_s
    return fanout_rows(
        f"MQTT fan-out, {subscribers} subscribers",
        hub,
        broker,
        "Mosquitto 2.0 websockets",
        (">= 0.50x", within_2x),
    )
