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
            return _envelope(raw)
        # JSON text shaped like the envelope itself is wrapped, or a byte
        # protocol would later get the bytes it claims to hold, not this text.
        if _is_envelope(value):
            return _envelope(raw)
        return value
    return data


def _envelope(raw: bytes) -> dict[str, str]:
    return {BINARY_KEY: base64.b64encode(raw).decode("ascii")}


def _is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and BINARY_KEY in value


def to_bytes(data: Any) -> bytes:
    """The bytes a byte protocol carries for a publication's data."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, dict) and len(data) == 1 and isinstance(data.get(BINARY_KEY), str):
        try:
            return base64.b64decode(data[BINARY_KEY], validate=True)
        except binascii.Error:
            pass
    return orjson.dumps(data)
