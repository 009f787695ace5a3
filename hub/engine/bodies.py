"""A publication as one msgpack body: what every engine stores and Redis sends. Pure.

The body holds what a publication is, not where it is: its offset and epoch
travel beside it (a Redis frame's prefix, a history entry's fields, SQLite
columns). Bytes stay bytes and strings stay strings; types msgpack lacks are
carried as the JSON value a JSON protocol would show anyway.
"""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]  # msgpack ships no type hints
import orjson
from pydantic import BaseModel

from hub.engine.base import ClientInfo, Kind, Publication

FORMAT = 1
_KINDS: tuple[Kind, ...] = (Kind.MESSAGE, Kind.JOIN, Kind.LEAVE)
_KIND_CODES = {kind: code for code, kind in enumerate(_KINDS)}


def carry(value: Any) -> Any:
    """Types msgpack lacks: carried as the JSON value JSON protocols would show anyway."""
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return list(value)
    try:
        # datetime, UUID, dataclasses, enums... as orjson renders them.
        return orjson.loads(orjson.dumps(value))
    except TypeError:
        raise TypeError(f"cannot carry a {type(value).__name__} in a publication") from None


def encode_body(publication: Publication, message_id: bytes) -> bytes:
    publisher = publication.publisher
    body: bytes = msgpack.packb(
        [
            FORMAT,
            message_id,
            _KIND_CODES[publication.kind],
            publication.data,
            None if publisher is None else [publisher.client, publisher.user, publisher.info],
            dict(publication.extras),
            publication.origin,
        ],
        use_bin_type=True,
        default=carry,
    )
    return body


def decode_body(channel: str, body: bytes, offset: int, epoch: str) -> Publication:
    """The publication a body holds; ValueError when it is not one of ours."""
    try:
        fields = msgpack.unpackb(body, raw=False, strict_map_key=False)
        version, sent_id, kind, data, publisher, extras, origin = fields
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"undecodable publication on {channel!r}: {exc}") from None
    if version != FORMAT:
        raise ValueError(f"publication format {version!r} on {channel!r} is not {FORMAT}")
    return Publication(
        channel,
        data,
        offset=offset,
        epoch=epoch,
        kind=_KINDS[kind],
        publisher=None if publisher is None else ClientInfo(*publisher),
        extras=extras,
        origin=origin,
        message_id=sent_id if isinstance(sent_id, bytes) else b"",
    )


def message_id(body: bytes) -> bytes | None:
    """The message id of a body, without decoding the rest of it."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(body)
    try:
        unpacker.read_array_header()
        unpacker.skip()  # the format
        found = unpacker.unpack()
    except (ValueError, msgpack.UnpackException, msgpack.OutOfData):
        return None
    return found if isinstance(found, bytes) else None
