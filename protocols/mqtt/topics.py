"""MQTT topic names and topic filters: validation and matching (MQTT 3.1.1 section 4.7).

Pure functions over ``str``. The validators raise :class:`MqttProtocolError`,
so the codec can use them directly and a handler can use them on names that
reach it from other protocols.
"""

from __future__ import annotations

from typing import Final

from hub.engine.topics import is_pattern
from hub.engine.topics import matches as engine_matches

from .packets import MqttProtocolError

#: Longest topic in UTF-8 bytes: the 2-byte length prefix of an MQTT string.
MAX_TOPIC_BYTES: Final = 0xFFFF


def _check_string(value: str, what: str) -> None:
    if not value:
        raise MqttProtocolError(f"{what} is empty")
    if "\x00" in value:
        raise MqttProtocolError(f"{what} contains U+0000")
    if value.isascii():
        size = len(value)
    else:
        # Encoding also catches lone surrogates, which a str may hold.
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise MqttProtocolError(f"{what} is not encodable as UTF-8") from None
    if size > MAX_TOPIC_BYTES:
        raise MqttProtocolError(f"{what} is longer than {MAX_TOPIC_BYTES} bytes")


def validate_topic_name(name: str) -> None:
    """Raise MqttProtocolError unless ``name`` is a valid topic name to publish to."""
    _check_string(name, "topic name")
    if "+" in name or "#" in name:
        raise MqttProtocolError(f"topic name {name!r} contains a wildcard")


def validate_topic_filter(topic_filter: str) -> None:
    """Raise MqttProtocolError unless ``topic_filter`` is a valid subscription filter."""
    _check_string(topic_filter, "topic filter")
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if level == "#":
            if index != last:
                raise MqttProtocolError(f"topic filter {topic_filter!r}: '#' must be last")
        elif level != "+" and ("+" in level or "#" in level):
            raise MqttProtocolError(
                f"topic filter {topic_filter!r}: a wildcard must occupy a whole level"
            )


def has_wildcards(topic_filter: str) -> bool:
    """Tell whether a filter may match more than the one topic spelled like it."""
    return is_pattern(topic_filter)


# MQTT topics are the engine's channel names: one matching rule for both
# (the `$` rule of MQTT-4.7.2-1, and `a/#` matching `a`).
matches = engine_matches
