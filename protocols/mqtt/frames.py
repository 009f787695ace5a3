"""Engine publications as MQTT PUBLISH frames, encoded once per fan-out.

MQTT topics are channel names, one to one. A publication's data becomes the
payload through :func:`hub.payloads.to_bytes` (bytes as they are, JSON values
as compact JSON). The frame is cached in ``publication.encoded`` per (QoS,
retain): every QoS 0 subscriber gets the same bytes object, every QoS 1/2
subscriber a copy with its own packet id patched in (``with_packet_id``).
"""

from __future__ import annotations

from typing import Any, Final

from hub.engine import Publication
from hub.payloads import to_bytes
from protocols.mqtt.codec import Publish, encode, with_packet_id

WIRE: Final = "mqtt"
_PAYLOAD_KEY: Final = (WIRE, "payload")


def mqtt_extras(qos: int, retain: bool) -> dict[str, Any]:
    """What an MQTT publication carries in ``Publication.extras``."""
    return {WIRE: {"qos": qos, "retain": retain}}


def published_qos(publication: Publication, default: int) -> int:
    """The QoS the publisher asked for; ``default`` for protocols without QoS."""
    details = publication.extras.get(WIRE)
    if isinstance(details, dict):
        qos = details.get("qos")
        if qos in (0, 1, 2):
            return int(qos)
    return default


def payload(publication: Publication) -> bytes:
    cached = publication.encoded.get(_PAYLOAD_KEY)
    if cached is None:
        cached = publication.encoded[_PAYLOAD_KEY] = to_bytes(publication.data)
    assert isinstance(cached, bytes)
    return cached


def publish_frame(
    publication: Publication, qos: int, *, retain: bool = False, packet_id: int | None = None
) -> bytes:
    """The PUBLISH for one subscriber: shared at QoS 0, patched with ``packet_id`` above."""
    key = (WIRE, qos, retain)
    template = publication.encoded.get(key)
    if template is None:
        packet = Publish(
            publication.channel, payload(publication), qos, retain, packet_id=1 if qos else None
        )
        template = publication.encoded[key] = encode(packet)
    assert isinstance(template, bytes)
    if not qos:
        return template
    if packet_id is None:
        raise ValueError("a QoS 1 or 2 PUBLISH needs a packet id")
    return with_packet_id(template, packet_id)
