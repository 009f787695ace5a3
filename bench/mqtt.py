"""MQTT fan-out over WebSocket: the hub's ``mqtt`` subprotocol against Mosquitto.

The same MQTT.js clients and the same load on both: N subscribers of one topic
at QoS 0, one publisher at QoS 1 waiting for each PUBACK.
"""

from __future__ import annotations

import dataclasses

from bench.fanout import fanout_rows, measure_fanout
from bench.peers import mosquitto
from bench.processes import hub_server
from bench.report import Row


def mqtt_workload(subscribers: int, seconds: float, size: int = 100) -> list[Row]:
    with hub_server() as server:
        at_mqtt = dataclasses.replace(server, url=server.url + "mqtt")
        hub = measure_fanout(at_mqtt, "mqtt", subscribers, seconds, size)
    with mosquitto() as server:
        broker = measure_fanout(server, "mqtt", subscribers, seconds, size)
    within_2x = hub.deliveries_per_s >= 0.5 * broker.deliveries_per_s
    return fanout_rows(
        f"MQTT fan-out, {subscribers} subscribers",
        hub,
        broker,
        "Mosquitto 2.0 websockets",
        (">= 0.50x", within_2x),
    )
