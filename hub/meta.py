"""Message metadata that crosses protocols: content type, user properties, payload format.

MQTT 5 gives a message a Content Type, User Properties (name/value pairs,
ordered, names may repeat) and a Payload Format Indicator (1: UTF-8 text).
The hub carries them in ``Publication.extras["meta"]`` as one JSON object that
every protocol reads and writes the same way (docs/mqtt.md, "Metadata across
protocols")::

    {"content_type": "application/json",
     "user_properties": [["unit", "celsius"], ["site", "hall"]],
     "payload_format": 1}

Every key is optional. A client may send at most :data:`MAX_USER_PROPERTIES`
pairs and :data:`MAX_META_BYTES` bytes of strings: a channels.v1 or WAMP
publication over that is refused, an MQTT 5 one carries only what fits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from hub.errors import HubError
from hub.payloads import to_bytes

META_KEY: Final = "meta"
MAX_USER_PROPERTIES: Final = 32
# UTF-8 bytes of the content type and every name and value, together.
MAX_META_BYTES: Final = 4096
_KEYS: Final = frozenset({"content_type", "user_properties", "payload_format"})


class InvalidMeta(HubError, ValueError):
    """A client's metadata object is malformed or over the bounds."""


def _text_size(value: Any, what: str) -> int:
    """UTF-8 size of an MQTT string: no lone surrogates, no U+0000 (MQTT-1.5.4-1, -2)."""
    if not isinstance(value, str):
        raise InvalidMeta(f"{what} must be a string")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise InvalidMeta(f"{what} is not valid UTF-8") from None
    if "\x00" in value:
        raise InvalidMeta(f"{what} holds U+0000")
    return size


def parse_meta(value: Any, data: Any) -> dict[str, Any]:
    """A client's ``meta`` object for a publication of ``data``, checked and bounded.

    Raise InvalidMeta saying what is wrong. ``payload_format`` 1 promises UTF-8:
    the payload MQTT subscribers would get must be.
    """
    if not isinstance(value, Mapping):
        raise InvalidMeta("meta must be an object")
    unknown = set(value) - _KEYS
    if unknown:
        raise InvalidMeta(f"meta: unknown key(s) {sorted(map(str, unknown))}")
    meta: dict[str, Any] = {}
    size = 0
    content_type = value.get("content_type")
    if content_type is not None:
        size += _text_size(content_type, "meta.content_type")
        meta["content_type"] = content_type
    pairs = value.get("user_properties")
    if pairs is not None:
        if not isinstance(pairs, list):
            raise InvalidMeta("meta.user_properties must be a list of [name, value] pairs")
        if len(pairs) > MAX_USER_PROPERTIES:
            raise InvalidMeta(f"meta.user_properties: more than {MAX_USER_PROPERTIES} pairs")
        for pair in pairs:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise InvalidMeta("meta.user_properties must be a list of [name, value] pairs")
            size += _text_size(pair[0], "a user property name")
            size += _text_size(pair[1], "a user property value")
        if pairs:
            meta["user_properties"] = [[name, text] for name, text in pairs]
    payload_format = value.get("payload_format")
    if payload_format is not None:
        if payload_format not in (0, 1) or isinstance(payload_format, bool):
            raise InvalidMeta("meta.payload_format must be 0 or 1")
        if payload_format == 1:
            try:
                to_bytes(data).decode()
            except UnicodeDecodeError:
                raise InvalidMeta("meta.payload_format 1, but the payload is not UTF-8") from None
        meta["payload_format"] = payload_format
    if size > MAX_META_BYTES:
        raise InvalidMeta(f"meta: more than {MAX_META_BYTES} bytes of strings")
    return meta


def meta_extras(value: Any, data: Any) -> dict[str, Any] | None:
    """``Publication.extras`` for a publication of ``data`` with ``meta`` (None: none).

    The one check every publisher's metadata passes (channels.v1, WAMP, the
    server API, ``hub.publish``); raise InvalidMeta as :func:`parse_meta` does.
    """
    if value is None:
        return None
    meta = parse_meta(value, data)
    return {META_KEY: meta} if meta else None


def bounded_meta(
    content_type: str | None,
    user_properties: Iterable[tuple[str, str]],
    payload_format: int | None,
) -> dict[str, Any]:
    """The metadata of an MQTT 5 message: the user properties that fit the bounds, in order."""
    meta: dict[str, Any] = {}
    size = 0
    if content_type is not None:
        size = len(content_type.encode())
        if size <= MAX_META_BYTES:
            meta["content_type"] = content_type
        else:
            size = 0
    pairs: list[list[str]] = []
    for name, text in user_properties:
        size += len(name.encode()) + len(text.encode())
        if len(pairs) == MAX_USER_PROPERTIES or size > MAX_META_BYTES:
            break
        pairs.append([name, text])
    if pairs:
        meta["user_properties"] = pairs
    if payload_format is not None:
        meta["payload_format"] = payload_format
    return meta


def publication_meta(extras: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The metadata a publication carries (``Publication.extras``), if any."""
    meta = extras.get(META_KEY)
    return meta if isinstance(meta, Mapping) and meta else None
