"""WAMP serializers: WebSocket frames <-> messages for each ``wamp.2.*`` subprotocol.

Each serializer wraps a maintained library (orjson, msgpack, cbor2) and maps every
library failure to :class:`~protocols.wamp.codec.WampProtocolError`.

Encoding cost matters more than decoding: a router encodes one ``EVENT`` per
subscription and serializer, then sends the same frame to every subscriber.
"""

from __future__ import annotations

import base64
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

import cbor2
import msgpack  # type: ignore[import-untyped]  # msgpack ships no type hints
import orjson

from hub.payloads import deeper_than
from protocols.wamp.codec import WampProtocolError, message_from_list, message_to_list
from protocols.wamp.messages import Message

# Nesting of a decoded message, by default (the hub passes limits.max_json_depth).
MAX_DEPTH: Final = 64

__all__ = [
    "CBOR",
    "JSON",
    "MSGPACK",
    "SUBPROTOCOLS",
    "CborSerializer",
    "JsonSerializer",
    "MsgpackSerializer",
    "Serializer",
    "serializer_for_subprotocol",
]


class Serializer(ABC):
    """One WAMP serialization, bound to its WebSocket subprotocol and frame type."""

    name: ClassVar[str]
    subprotocol: ClassVar[str]
    is_binary: ClassVar[bool]  # binary frames if true, text frames otherwise

    def decode(self, frame: str | bytes, *, max_depth: int = MAX_DEPTH) -> Message:
        """Parse one WebSocket message; raises only :class:`WampProtocolError`.

        A message nesting arrays and maps deeper than ``max_depth`` is refused:
        whatever would carry its payload on (an EVENT, a reply in JSON) could
        not be encoded.
        """
        obj = self.loads(frame)
        # Every level takes at least one byte: a short frame cannot be too deep.
        if len(frame) > max_depth and deeper_than(obj, max_depth):
            raise WampProtocolError(f"message nested deeper than {max_depth} levels")
        return message_from_list(obj)

    def encode(self, message: Message) -> str | bytes:
        """Serialize a message: ``str`` for a text frame, ``bytes`` for a binary one.

        Raises :class:`WampProtocolError` if the payload cannot be carried by this
        serialization (e.g. a CBOR tag sent on to a JSON peer).
        """
        return self.dumps(message_to_list(message))

    def encode_bytes(self, message: Message) -> bytes:
        """Like :meth:`encode` but always ``bytes``: UTF-8 for a text serializer.

        Saves a decode/encode round trip when the transport accepts bytes for a
        text frame (``Session.send(data, text=not serializer.is_binary)``).
        """
        return self.dumps_bytes(message_to_list(message))

    @abstractmethod
    def loads(self, frame: str | bytes) -> Any:
        """Deserialize a frame to plain values; raises only :class:`WampProtocolError`."""

    @abstractmethod
    def dumps(self, obj: Any) -> str | bytes:
        """Serialize plain values to a frame; raises only :class:`WampProtocolError`."""

    def dumps_bytes(self, obj: Any) -> bytes:
        """Serialize plain values to bytes, whatever the frame type."""
        data = self.dumps(obj)
        return data.encode() if isinstance(data, str) else data

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.subprotocol}>"


# --- JSON --------------------------------------------------------------------


class JsonSerializer(Serializer):
    """``wamp.2.json``: text frames; bytes travel as ``"\\u0000" + base64`` strings."""

    name = "json"
    subprotocol = "wamp.2.json"
    is_binary = False

    def loads(self, frame: str | bytes) -> Any:
        if not isinstance(frame, str):
            raise WampProtocolError("wamp.2.json uses text frames, got a binary frame")
        try:
            obj = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            raise WampProtocolError(f"invalid JSON: {exc}") from exc
        # JSON must escape NUL, so a frame without this text has no binary strings
        # and skips the walk: the common case costs one substring search.
        if "\\u0000" in frame:
            obj = _json_strings_to_bytes(obj)
        return obj

    def dumps(self, obj: Any) -> str:
        return self.dumps_bytes(obj).decode()

    def dumps_bytes(self, obj: Any) -> bytes:
        try:
            data = orjson.dumps(obj, default=_bytes_to_json_string)
        except orjson.JSONEncodeError as exc:
            raise WampProtocolError(f"payload cannot be serialized to JSON: {exc}") from exc
        # A text string starting with NUL would read back as bytes (or as broken
        # base64): JSON cannot carry it. Bytes write the same prefix, so the walk
        # runs only when the prefix is there at all.
        if _NUL_STRING in data and _has_nul_prefixed_text(obj):
            raise WampProtocolError("a string starting with NUL cannot be carried by JSON")
        return data


# How any string starting with NUL (text or encoded bytes) opens in orjson output.
_NUL_STRING: Final = b'"\\u0000'


def _has_nul_prefixed_text(root: Any) -> bool:
    """Whether a value (not a dict key) is a str starting with NUL; iterative, like the decoder."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if node.startswith("\0"):
                return True
        elif isinstance(node, list | tuple):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
    return False


def _bytes_to_json_string(obj: Any) -> str:
    # orjson calls this only for types it cannot serialize itself.
    if isinstance(obj, bytes | bytearray | memoryview):
        return "\0" + base64.b64encode(obj).decode("ascii")
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _json_string_to_bytes(value: str) -> bytes:
    try:
        return base64.b64decode(value[1:], validate=True)
    except ValueError as exc:
        raise WampProtocolError("invalid base64 in a binary JSON string") from exc


def _json_strings_to_bytes(root: Any) -> Any:
    """Turn ``"\\0"+base64`` strings into bytes, in place, without recursion.

    Dict keys stay strings: WAMP keys are strings in every serialization.
    """
    if isinstance(root, str):
        return _json_string_to_bytes(root) if root.startswith("\0") else root
    if not isinstance(root, list | dict):
        return root
    stack = [root]
    while stack:
        node = stack.pop()
        pairs = enumerate(node) if isinstance(node, list) else node.items()
        for key, value in pairs:
            if isinstance(value, str):
                if value.startswith("\0"):
                    node[key] = _json_string_to_bytes(value)
            elif isinstance(value, list | dict):
                stack.append(value)
    return root


# --- MessagePack -------------------------------------------------------------


class _MsgpackExtension:
    """A MessagePack extension value, relayed untouched to MessagePack peers.

    msgpack's own ExtType is a tuple, which CBOR would silently send as an array,
    and orjson would serialize a dataclass: a plain class is refused by both.
    """

    __slots__ = ("code", "data")

    def __init__(self, code: int, data: bytes) -> None:
        self.code = code
        self.data = data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _MsgpackExtension):
            return NotImplemented
        return (self.code, self.data) == (other.code, other.data)

    def __hash__(self) -> int:
        return hash((self.code, self.data))

    def __repr__(self) -> str:
        return f"_MsgpackExtension({self.code}, {self.data!r})"


def _extension_to_msgpack(obj: Any) -> Any:
    # msgpack calls this only for types it cannot serialize itself.
    if isinstance(obj, _MsgpackExtension):
        return msgpack.ExtType(obj.code, obj.data)
    raise TypeError(f"{type(obj).__name__} is not MessagePack serializable")


class MsgpackSerializer(Serializer):
    """``wamp.2.msgpack``: binary frames; bytes are native (``bin`` family)."""

    name = "msgpack"
    subprotocol = "wamp.2.msgpack"
    is_binary = True

    def loads(self, frame: str | bytes) -> Any:
        if isinstance(frame, str):
            raise WampProtocolError("wamp.2.msgpack uses binary frames, got a text frame")
        try:
            # raw=False: str stays str; strict_map_key: keys only str/bytes.
            return msgpack.unpackb(
                frame, raw=False, strict_map_key=True, ext_hook=_MsgpackExtension
            )
        except Exception as exc:  # msgpack raises a variety of types
            # A fixed message: formatting the cause could echo (or choke on) the input.
            raise WampProtocolError("invalid MessagePack frame") from exc

    def dumps(self, obj: Any) -> bytes:
        try:
            data: bytes = msgpack.packb(obj, use_bin_type=True, default=_extension_to_msgpack)
        except Exception as exc:
            raise WampProtocolError("payload cannot be serialized to MessagePack") from exc
        return data

    def dumps_bytes(self, obj: Any) -> bytes:
        return self.dumps(obj)


# --- CBOR --------------------------------------------------------------------


def _keep_tag(tag: int) -> Callable[[Any, bool], Any]:
    def decode(value: Any, immutable: bool) -> Any:
        return cbor2.CBORTag(tag, value)

    return decode


def _reject_tag(*_: Any) -> Any:
    raise ValueError("value sharing and string references are not accepted")


def _self_described(value: Any, immutable: bool) -> Any:
    return value


# cbor2 gives some tags meaning (fractions, regexes, sets, shared values...). A router
# must not: decoding them costs CPU an attacker controls (a large Fraction takes
# seconds), and shared values or string references expand a small frame into a huge
# one when re-encoded. So tags stay opaque CBORTag values, which CBOR peers receive
# unchanged, and the amplifying ones are refused.
_BUILTIN_TAGS: Final = (0, 1, 2, 3, 4, 5, 30, 35, 36, 37, 52, 54, 100, 258, 260, 261, 1004)
_AMPLIFYING_TAGS: Final = (25, 28, 29, 256)
_CBOR_TAGS: Final[Mapping[int, Callable[..., Any]]] = {
    **{tag: _keep_tag(tag) for tag in _BUILTIN_TAGS},
    **dict.fromkeys(_AMPLIFYING_TAGS, _reject_tag),
    55799: _self_described,  # the "this is CBOR" magic prefix
}


class CborSerializer(Serializer):
    """``wamp.2.cbor``: binary frames; bytes are native (major type 2)."""

    name = "cbor"
    subprotocol = "wamp.2.cbor"
    is_binary = True

    def loads(self, frame: str | bytes) -> Any:
        if isinstance(frame, str):
            raise WampProtocolError("wamp.2.cbor uses binary frames, got a text frame")
        stream = io.BytesIO(frame)
        try:
            # strict_hashable_types: map keys only str/bytes (no hash-collision games).
            decoder = cbor2.CBORDecoder(
                stream, semantic_decoders=_CBOR_TAGS, strict_hashable_types=True
            )
            obj = decoder.decode()
        except Exception as exc:  # cbor2 and our tag hooks raise several types
            raise WampProtocolError("invalid CBOR frame") from exc
        # cbor2.loads ignores bytes after the first value; a frame is one message.
        if stream.tell() != len(frame):
            raise WampProtocolError("invalid CBOR frame: data after the message")
        return obj

    def dumps(self, obj: Any) -> bytes:
        try:
            return cbor2.dumps(obj)
        except Exception as exc:
            raise WampProtocolError("payload cannot be serialized to CBOR") from exc

    def dumps_bytes(self, obj: Any) -> bytes:
        return self.dumps(obj)


# --- registry ----------------------------------------------------------------

JSON: Final = JsonSerializer()
MSGPACK: Final = MsgpackSerializer()
CBOR: Final = CborSerializer()

_BY_SUBPROTOCOL: Final[Mapping[str, Serializer]] = {
    serializer.subprotocol: serializer for serializer in (JSON, MSGPACK, CBOR)
}

#: The WebSocket subprotocols served, in the hub's order of preference.
SUBPROTOCOLS: Final = tuple(_BY_SUBPROTOCOL)


def serializer_for_subprotocol(subprotocol: str) -> Serializer:
    """The serializer for a negotiated subprotocol; ``KeyError`` if not a WAMP one."""
    try:
        return _BY_SUBPROTOCOL[subprotocol]
    except KeyError:
        raise KeyError(f"not a WAMP subprotocol: {subprotocol!r}") from None
