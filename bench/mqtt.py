"""MQTT fan-out: the hub against Mosquitto, over WebSocket (3.1.1) and over TCP (5.0).

The same MQTT.js clients and the same load on both: N subscribers of one topic
at QoS 0, one publisher at QoS 1 waiting for each PUBACK. Over TCP the clients
speak MQTT 5.0 to the hub's ``[[mqtt.listeners]]`` port and Mosquitto's
loopback listener, in the same run.
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


def mqtt5_tcp_workload(subscribers: int, seconds: float, rounds: int, size: int = 100) -> list[Row]:
    """Both brokers alike, twice: Nagle's algorithm on (Mosquitto's default), then off (the hub's).

    Small writes cost a broker far less CPU with Nagle's algorithm on (the
    kernel holds a PUBLISH while the last one is unacknowledged), so each
    pairing sets both sides the same way; the target holds for each.
    """
    rows: list[Row] = []
    for nodelay, label in ((False, "Nagle on"), (True, "TCP_NODELAY")):
        with hub_server(mqtt_tcp=True, nodelay=nodelay) as hub_at, mosquitto(nodelay) as broker_at:
            hub, broker = best_fanout(
                rounds,
                (dataclasses.replace(hub_at, url=hub_at.mqtt_url), "mqtt5"),
                (dataclasses.replace(broker_at, url=broker_at.mqtt_url), "mqtt5"),
                subscribers,
                seconds,
                size,
            )
        met = hub.deliveries_per_s >= 0.67 * broker.deliveries_per_s
        rows += fanout_rows(
            f"MQTT 5 fan-out over TCP, {subscribers} subscribers, {label}",
            hub,
            broker,
            f"Mosquitto 2.0 TCP, {label}",
            (">= 0.67x", met),
        )
    return rows
