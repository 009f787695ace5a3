"""protocols.mqtt.frames.plain_frame: the QoS 0 copy a fan-out shares among subscribers."""

from __future__ import annotations

import time

from hub.engine import Publication
from protocols.mqtt.codec import decode
from protocols.mqtt.frames import WIRE, mqtt_extras, plain_frame, publish_frame, publish_frame5
from protocols.mqtt.packets import Publish


def test_plain_frame_is_the_qos0_publish_made_once_per_version() -> None:
    publication = Publication("a/b", b"hi", extras=mqtt_extras(1, True))
    v4 = plain_frame(publication, 4)
    v5 = plain_frame(publication, 5)
    assert v4 == publish_frame(publication, 0)
    assert v5 == publish_frame5(publication, 0)
    # The next subscriber gets the very same bytes object.
    assert plain_frame(publication, 4) is v4
    assert plain_frame(publication, 5) is v5
    packet = decode(v5, 5)
    assert isinstance(packet, Publish)
    assert (packet.topic, packet.payload, packet.qos, packet.retain) == ("a/b", b"hi", 0, False)


def test_an_expiring_message_is_framed_with_the_time_left_and_dropped_once_expired() -> None:
    publication = Publication("a/b", b"hi", extras={WIRE: {"qos": 0, "expires": time.time() + 30}})
    packet = decode(plain_frame(publication, 5) or b"", 5)
    assert isinstance(packet, Publish)
    assert packet.properties.message_expiry_interval == 30
    assert plain_frame(publication, 4) is not None
    gone = Publication("a/b", b"hi", extras={WIRE: {"qos": 0, "expires": time.time() - 1}})
    assert plain_frame(gone, 4) is None
    assert plain_frame(gone, 5) is None
