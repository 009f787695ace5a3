"""Payload mapping between byte-oriented and JSON protocols (see docs/channels.md).

The engine carries a JSON value or bytes. JSON protocols see bytes that hold JSON
as that JSON value, and other bytes as ``{"$binary": "<base64>"}``; byte
protocols (MQTT) see JSON values as their compact JSON encoding and the binary
envelope as the bytes it wraps, so a round trip through both loses nothing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

BINARY_KEY = "$binary"


def to_json_value(data: Any) -> Any:
    """The value a JSON protocol shows for a publication's data."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return binary_envelope(raw)
        # JSON text shaped like the envelope itself is wrapped, or a byte
        # protocol would later get the bytes it claims to hold, not this text.
        if isinstance(value, dict) and len(value) == 1 and BINARY_KEY in value:
            return binary_envelope(raw)
        return value
    return data


def binary_envelope(raw: bytes) -> dict[str, str]:
    """How bytes travel inside JSON: ``{"$binary": "<base64>"}``."""
    return {BINARY_KEY: base64.b64encode(raw).decode("ascii")}


def is_binary_envelope(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(BINARY_KEY), str)


def unwrap_binary(value: Any) -> bytes | None:
    """The bytes an envelope wraps; None for anything that is not a valid envelope."""
    if not is_binary_envelope(value):
        return None
    try:
        return base64.b64decode(value[BINARY_KEY], validate=True)
    except binascii.Error:
        return None


def to_bytes(data: Any) -> bytes:
    """The bytes a byte protocol carries for a publication's data."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    unwrapped = unwrap_binary(data)
    return unwrapped if unwrapped is not None else orjson.dumps(data)
