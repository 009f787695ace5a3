"""WAMP ``args``/``kwargs`` <-> the engine's one ``data`` value (docs/wamp.md).

WAMP-to-WAMP, the payload travels untouched in ``Publication.extras["wamp"]``;
``data`` is what every other protocol sees:

=====================================  =====================================
WAMP payload                           ``data``
=====================================  =====================================
no args, no kwargs                     ``null``
exactly one arg, no kwargs             that arg
anything else                          ``{"args": [...], "kwargs": {...}}``
=====================================  =====================================

Bytes are native in WAMP (MessagePack, CBOR, JSON's ``"\\u0000"+base64``); a
top-level bytes value stays bytes in the engine, nested ones become the hub's
``{"$binary": "<base64>"}`` envelope so JSON protocols can carry them.

Publications from other protocols reach WAMP subscribers as ``args=[data]``,
where bytes holding JSON are that JSON value and other bytes stay bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from hub.payloads import binary_envelope, is_binary_envelope, unwrap_binary

__all__ = ["from_data", "to_data"]


def to_data(args: list[Any] | None, kwargs: dict[str, Any] | None) -> Any:
    """The engine value for a WAMP payload, safe for JSON protocols."""
    if not kwargs:
        if not args:
            return None
        if len(args) == 1:
            value = args[0]
            if isinstance(value, bytes | bytearray | memoryview):
                return bytes(value)
            return _json_safe(value)
    return _json_safe({"args": list(args or []), "kwargs": dict(kwargs or {})})


def from_data(data: Any) -> Any:
    """The WAMP value (the one positional arg) for an engine value."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        # JSON shaped like the envelope is text that merely looks like one.
        return raw if is_binary_envelope(value) else value
    unwrapped = unwrap_binary(data)
    return data if unwrapped is None else unwrapped


def _json_safe(value: Any) -> Any:
    try:
        orjson.dumps(value)
    except TypeError:
        return _convert(value)
    return value


def _convert(value: Any) -> Any:
    """A JSON-safe copy: bytes as envelopes, other foreign values as their repr."""
    if isinstance(value, bytes | bytearray | memoryview):
        return binary_envelope(bytes(value))
    if isinstance(value, list | tuple):
        return [_convert(item) for item in value]
    if isinstance(value, dict):
        return {
            key if isinstance(key, str) else repr(key): _convert(item)
            for key, item in value.items()
        }
    if value is None or isinstance(value, str | bool | float):
        return value
    # orjson stops at 64-bit integers; CBOR tags and MessagePack extensions have
    # no JSON spelling at all.
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    return repr(value)
