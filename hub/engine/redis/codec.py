"""What the Redis engine stores and sends, as bytes: keys, frames, members. Pure.

Every key of one channel carries the channel in a hash tag (``{chat/room}``), so
a channel's keys share a Cluster slot and one Lua script may touch them all.

A publication travels as ``<offset>:<epoch>:<body>``: the body
(:mod:`hub.engine.bodies`) is what the history stream keeps; the offset and
epoch are prepended by the Lua script that assigned them.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator

import msgpack  # type: ignore[import-untyped]  # msgpack ships no type hints

from hub.engine.base import ClientInfo
from hub.engine.bodies import carry
from hub.engine.topics import MULTI, SEPARATOR, SINGLE


class Keys:
    """Key and pub/sub channel names under one prefix (``wshub:`` by default)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.pubsub_prefix = prefix + "pub:"
        self._pubsub_prefix_bytes = self.pubsub_prefix.encode()

    def _key(self, channel: str, suffix: str) -> str:
        return f"{self.prefix}{{{channel}}}:{suffix}"

    def meta(self, channel: str) -> str:
        """Hash: the stream's ``epoch`` and ``top`` offset."""
        return self._key(channel, "meta")

    def stream(self, channel: str) -> str:
        """Stream: retained publications, entry id ``<offset>-0``."""
        return self._key(channel, "stream")

    def members(self, channel: str) -> str:
        """Hash: client id -> member blob."""
        return self._key(channel, "presence")

    def expiry(self, channel: str) -> str:
        """Sorted set: client id scored by when its entry expires (ms, Redis clock)."""
        return self._key(channel, "presence:expiry")

    def users(self, channel: str) -> str:
        """Hash: user -> number of its connections in the channel."""
        return self._key(channel, "presence:users")

    def presence(self, channel: str, node: str) -> list[str]:
        """The channel's presence keys, then the shared ones the scripts keep up to date."""
        return [
            self.members(channel),
            self.expiry(channel),
            self.users(channel),
            self.departed(),
            self.presence_nodes(),
            self.node_channels(node),
        ]

    # Node-level presence keys carry no hash tag: they can never share a name
    # with a channel's keys, which always start with ``{``.

    def departed(self) -> str:
        """List: leaves found by sweeping expired entries, waiting for a node to announce them."""
        return f"{self.prefix}presence:departed"

    def presence_nodes(self) -> str:
        """Sorted set: node id scored by when its last entry expires (ms, Redis clock)."""
        return f"{self.prefix}presence:nodes"

    def node_channels(self, node: str) -> str:
        """Set: channels where the node has (or recently had) presence entries."""
        return f"{self.prefix}presence:node:{node}"

    def reaper(self, node: str) -> str:
        """Lock held by the live node sweeping a dead node's channels."""
        return f"{self.prefix}presence:node:{node}:reaper"

    def history(self, channel: str) -> list[str]:
        return [self.meta(channel), self.stream(channel)]

    def pubsub(self, channel: str) -> str:
        return self.pubsub_prefix + channel

    def retained(self) -> list[str]:
        """Hash channel -> retained publication, a sorted set of those channels, their
        bytes, and a sorted set of the channels that expire by their deadline (ms)."""
        base = f"{self.prefix}{{retained}}"
        return [base, f"{base}:index", f"{base}:bytes", f"{base}:deadlines"]

    def idempotency(self, key: str) -> str:
        """String: a server API idempotency key's pending marker, then its result."""
        return f"{self.prefix}api:idempotency:{key}"

    def revocations(self) -> str:
        """Hash: user -> the server API revocation kept for it."""
        return f"{self.prefix}api:revocations"

    def pubsub_pattern(self, pattern: str) -> str:
        return glob_escape(self.pubsub_prefix) + pattern_glob(pattern)

    def channel_of(self, pubsub_channel: bytes) -> str | None:
        """The hub channel a pub/sub channel name carries, None if not ours."""
        if not pubsub_channel.startswith(self._pubsub_prefix_bytes):
            return None
        try:
            return pubsub_channel[len(self._pubsub_prefix_bytes) :].decode()
        except UnicodeDecodeError:
            return None


# -- patterns ---------------------------------------------------------------------

_GLOB_SPECIAL = frozenset("*?[]\\")


def glob_escape(text: str) -> str:
    return "".join("\\" + char if char in _GLOB_SPECIAL else char for char in text)


def pattern_glob(pattern: str) -> str:
    """A Redis glob matching at least every channel the MQTT pattern matches.

    Redis ``*`` crosses ``/`` and ``a/#`` becomes ``a*`` (so that it also
    matches ``a`` itself): the glob over-matches, and the node filters with
    :func:`hub.engine.topics.matches` before delivering.
    """
    levels = pattern.split(SEPARATOR)
    multi = levels[-1] == MULTI
    if multi:
        levels = levels[:-1]
    glob = SEPARATOR.join("*" if level == SINGLE else glob_escape(level) for level in levels)
    return glob + "*" if multi else glob


# -- publications -----------------------------------------------------------------


class MessageIds:
    """Ids unique to one node's publications: copies of one PUBLISH compare equal."""

    def __init__(self) -> None:
        self._node = secrets.token_bytes(6)
        self._counter: Iterator[int] = itertools.count(1)

    def __next__(self) -> bytes:
        return self._node + next(self._counter).to_bytes(8, "big")


def frame(offset: int, epoch: str, body: bytes) -> bytes:
    """The pub/sub message of a publication without history (offset 0)."""
    return b"%d:%s:%s" % (offset, epoch.encode(), body)


def unframe(message: bytes) -> tuple[int, str, bytes]:
    """``(offset, epoch, body)`` of a pub/sub message; ValueError if malformed."""
    first = message.index(b":")
    second = message.index(b":", first + 1)
    return int(message[:first]), message[first + 1 : second].decode(), message[second + 1 :]


def entry_offset(entry_id: bytes) -> int:
    """The offset of a stream entry, whose id is ``<offset>-0``."""
    return int(entry_id.partition(b"-")[0])


# -- presence -----------------------------------------------------------------------


def encode_member(member: ClientInfo) -> bytes:
    """``<length of user>:<user><msgpack info>``: Lua reads the user without a decoder."""
    user = member.user.encode()
    info: bytes = msgpack.packb(member.info, use_bin_type=True, default=carry)
    return b"%d:%s%s" % (len(user), user, info)


def decode_member(client: str, blob: bytes) -> ClientInfo:
    colon = blob.index(b":")
    end = colon + 1 + int(blob[:colon])
    info = msgpack.unpackb(blob[end:], raw=False, strict_map_key=False)
    return ClientInfo(client=client, user=blob[colon + 1 : end].decode(), info=info)


def _split_counted(blob: bytes) -> tuple[bytes, bytes]:
    """``<length>:<text><rest>`` -> (text, rest)."""
    colon = blob.index(b":")
    end = colon + 1 + int(blob[:colon])
    if end > len(blob):
        raise ValueError("truncated")
    return blob[colon + 1 : end], blob[end:]


def decode_departure(item: bytes) -> tuple[str, ClientInfo]:
    """A queued leave, ``<length>:<channel><length>:<client><member blob>`` (see the scripts)."""
    channel, rest = _split_counted(item)
    client, blob = _split_counted(rest)
    return channel.decode(), decode_member(client.decode(), blob)
