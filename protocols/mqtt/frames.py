"""Engine publications as MQTT PUBLISH frames, encoded once per fan-out.

MQTT topics are channel names, one to one. A publication's data becomes the
payload through :func:`hub.payloads.to_bytes` (bytes as they are, JSON values
as compact JSON). The frame is cached in ``publication.encoded`` per (QoS,
retain): every QoS 0 subscriber gets the same bytes object, every QoS 1/2
subscriber a copy with its own packet id patched in (``with_packet_id``).

MQTT 5.0 frames (``publish_frame5``) carry the publisher's message properties,
kept in ``extras["mqtt"]`` (documented in docs/mqtt.md; hooks read them there):
``properties`` (payload format, content type, response topic, correlation
data, user properties), ``expires`` (wall-clock time the message
expiry interval ends) and ``client`` (the publisher's client id, for no
local). They are cached per (QoS, retain, subscription identifier, seconds
left), so subscribers without identifiers still share one encoding.

Content type, user properties and payload format also travel, bounded, in
``extras["meta"]`` (:mod:`hub.meta`), where channels.v1 and WAMP clients see
them; a message from those protocols gives its 5.0 subscribers the properties
its publisher set there.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

from hub.engine import Publication
from hub.meta import META_KEY, bounded_meta, publication_meta
from hub.payloads import to_bytes
from protocols.mqtt.codec import Publish, encode, with_packet_id
from protocols.mqtt.packets import NO_PROPERTIES, Properties

WIRE: Final = "mqtt"
_PAYLOAD_KEY: Final = (WIRE, "payload")


def mqtt_extras(qos: int, retain: bool) -> dict[str, Any]:
    """What an MQTT publication carries in ``Publication.extras``."""
    return {WIRE: {"qos": qos, "retain": retain}}


#: The PUBLISH properties that travel with a message to its subscribers (3.3.2.3).
MESSAGE_PROPERTIES: Final = (
    "payload_format_indicator",
    "content_type",
    "response_topic",
    "correlation_data",
)


def mqtt5_extras(
    packet: Publish, client_id: str, *, topic: str | None = None, now: float | None = None
) -> dict[str, Any]:
    """``Publication.extras`` for a 5.0 PUBLISH: QoS and retain, and what 5.0 subscribers get."""
    details: dict[str, Any] = {"qos": packet.qos, "retain": packet.retain, "client": client_id}
    extras: dict[str, Any] = {WIRE: details}
    properties = packet.properties
    if properties:
        meta = bounded_meta(
            properties.content_type,
            properties.user_properties,
            properties.payload_format_indicator,
        )
        if meta:
            extras[META_KEY] = meta
        carried: dict[str, Any] = {}
        for name in MESSAGE_PROPERTIES:
            value = getattr(properties, name)
            if value is not None:
                carried[name] = value
        if properties.user_properties:
            carried["user_properties"] = [list(pair) for pair in properties.user_properties]
        if carried:
            details["properties"] = carried
        if properties.message_expiry_interval is not None:
            start = time.time() if now is None else now
            details["expires"] = start + properties.message_expiry_interval
    return extras


def _details(publication: Publication) -> dict[str, Any]:
    details = publication.extras.get(WIRE)
    return details if isinstance(details, dict) else {}


def published_client(publication: Publication) -> str | None:
    """The MQTT client id that published it, when an MQTT 5 client did."""
    client = _details(publication).get("client")
    return client if isinstance(client, str) else None


def published_retain(publication: Publication) -> bool:
    """The RETAIN flag the publisher set (False for other protocols)."""
    return _details(publication).get("retain") is True


def seconds_left(publication: Publication, now: float | None = None) -> int | None:
    """Whole seconds of message expiry left, rounded up; None if it never expires."""
    expires = _details(publication).get("expires")
    if not isinstance(expires, int | float):
        return None
    left = expires - (time.time() if now is None else now)
    return math.ceil(left) if left > 0 else 0


def expired(publication: Publication, now: float | None = None) -> bool:
    """MQTT-3.3.2-5: past its message expiry interval, a message is not delivered."""
    return seconds_left(publication, now) == 0


def message_properties(
    publication: Publication, subscription_ids: tuple[int, ...], expiry: int | None
) -> Properties:
    """The 5.0 properties a subscriber's PUBLISH carries."""
    carried = _details(publication).get("properties")
    values: dict[str, Any] = {}
    if isinstance(carried, dict):
        for name in MESSAGE_PROPERTIES:
            if name in carried:
                values[name] = carried[name]
        pairs = carried.get("user_properties")
        if pairs:
            values["user_properties"] = tuple((str(k), str(v)) for k, v in pairs)
    else:
        values.update(_from_meta(publication))
    if subscription_ids:
        values["subscription_identifiers"] = subscription_ids
    if expiry is not None:
        values["message_expiry_interval"] = expiry
    return Properties(**values) if values else NO_PROPERTIES


def _from_meta(publication: Publication) -> dict[str, Any]:
    """The 5.0 properties a channels.v1 or WAMP publisher set in ``extras["meta"]``."""
    meta = publication_meta(publication.extras)
    if meta is None:
        return {}
    values: dict[str, Any] = {}
    if isinstance(meta.get("content_type"), str):
        values["content_type"] = meta["content_type"]
    if meta.get("payload_format") in (0, 1):
        values["payload_format_indicator"] = meta["payload_format"]
    pairs = meta.get("user_properties")
    if isinstance(pairs, list) and pairs:
        values["user_properties"] = tuple((str(k), str(v)) for k, v in pairs)
    return values


def publish_frame5(
    publication: Publication,
    qos: int,
    *,
    retain: bool = False,
    packet_id: int | None = None,
    subscription_ids: tuple[int, ...] = (),
) -> bytes | None:
    """The 5.0 PUBLISH for one subscriber, or None when the message has expired."""
    expiry = seconds_left(publication)
    if expiry == 0:
        return None
    template = publication.encoded.frame(
        (WIRE, 5, qos, retain, subscription_ids, expiry),
        lambda: encode(
            Publish(
                publication.channel,
                payload(publication),
                qos,
                retain,
                packet_id=1 if qos else None,
                properties=message_properties(publication, subscription_ids, expiry),
            ),
            5,
        ),
    )
    if not qos:
        return template
    if packet_id is None:
        raise ValueError("a QoS 1 or 2 PUBLISH needs a packet id")
    return with_packet_id(template, packet_id)


# Keys of plain_frame's cache, one per protocol level (3, 4, 5): a caller may
# look its frame up first (``encoded.cached_frame``) and skip the call.
PLAIN_KEYS: Final = {version: (WIRE, "plain", version) for version in (3, 4, 5)}


def plain_frame(publication: Publication, version: int) -> bytes | None:
    """The QoS 0 PUBLISH with RETAIN clear and no subscription identifier for a
    link of ``version`` (a fan-out's commonest copy); None once expired.

    Kept on the publication, so each subscriber after the first costs a
    lookup: unless the message expires, whose frame carries the time left.
    """
    key = PLAIN_KEYS[version]
    made = publication.encoded.cached_frame(key)
    if made is not None:
        return made
    frame = publish_frame5(publication, 0) if version == 5 else publish_frame(publication, 0)
    if _details(publication).get("expires") is not None:
        return None if frame is None or expired(publication) else frame
    assert frame is not None  # None only when expired
    return publication.encoded.frame(key, lambda: frame)


def published_qos(publication: Publication, default: int) -> int:
    """The QoS the publisher asked for; ``default`` for protocols without QoS."""
    details = publication.extras.get(WIRE)
    if isinstance(details, dict):
        qos = details.get("qos")
        if qos in (0, 1, 2):
            return int(qos)
    return default


def payload(publication: Publication) -> bytes:
    return publication.encoded.frame(_PAYLOAD_KEY, lambda: to_bytes(publication.data))


def publish_frame(
    publication: Publication, qos: int, *, retain: bool = False, packet_id: int | None = None
) -> bytes:
    """The PUBLISH for one subscriber: shared at QoS 0, patched with ``packet_id`` above."""
    template = publication.encoded.frame(
        (WIRE, qos, retain),
        lambda: encode(
            Publish(
                publication.channel, payload(publication), qos, retain, packet_id=1 if qos else None
            )
        ),
    )
    if not qos:
        return template
    if packet_id is None:
        raise ValueError("a QoS 1 or 2 PUBLISH needs a packet id")
    return with_packet_id(template, packet_id)
