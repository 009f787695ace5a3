"""The Redis engine's pure parts: key names, pattern globs, frames and member blobs."""

from __future__ import annotations

import datetime
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from hub.engine import ClientInfo, Kind, Publication
from hub.engine.bodies import decode_body, encode_body, message_id
from hub.engine.redis.codec import (
    Keys,
    MessageIds,
    decode_departure,
    decode_member,
    encode_member,
    frame,
    glob_escape,
    pattern_glob,
    unframe,
)
from hub.engine.topics import matches


def redis_glob_matches(glob: str, text: str) -> bool:
    """Redis' stringmatch for the subset we emit: '*', and backslash escapes."""
    regex = ""
    index = 0
    while index < len(glob):
        char = glob[index]
        if char == "\\" and index + 1 < len(glob):
            regex += re.escape(glob[index + 1])
            index += 2
            continue
        regex += ".*" if char == "*" else re.escape(char)
        index += 1
    return re.fullmatch(regex, text, re.DOTALL) is not None


@pytest.mark.parametrize(
    ("pattern", "glob"),
    [
        ("a/+/c", "a/*/c"),
        ("a/#", "a*"),
        ("#", "*"),
        ("+", "*"),
        ("+/#", "**"),
        ("x[1]/+", "x\\[1\\]/*"),
        ("we*rd?/#", "we\\*rd\\?*"),
    ],
)
def test_pattern_glob_translation(pattern: str, glob: str) -> None:
    """MQTT wildcards become '*', glob metacharacters of literal levels are escaped."""
    assert pattern_glob(pattern) == glob


levels = st.text(alphabet="ab*?[]\\$", min_size=1, max_size=4)


@given(
    pattern=st.lists(st.one_of(levels, st.just("+")), min_size=1, max_size=4).map("/".join),
    multi=st.booleans(),
    channel=st.lists(levels, min_size=1, max_size=5).map("/".join),
)
def test_glob_covers_every_match(pattern: str, multi: bool, channel: str) -> None:
    """Whatever the MQTT pattern matches, its glob matches too (the node filters the rest)."""
    if multi:
        pattern += "/#"
    if matches(pattern, channel):
        assert redis_glob_matches(pattern_glob(pattern), channel)


def test_glob_escape_is_literal() -> None:
    """An escaped name matches only itself under glob rules."""
    name = "a*b?[c]\\d"
    assert redis_glob_matches(glob_escape(name), name)
    assert not redis_glob_matches(glob_escape(name), "aXb?[c]\\d")


def test_keys_share_a_hash_tag_per_channel() -> None:
    """Every key of a channel carries {channel}, so they live in one Cluster slot."""
    keys = Keys("wshub:")
    channel = "chat/room"
    members, expiry, users, *shared = keys.presence(channel, "node-a")
    for key in [*keys.history(channel), members, expiry, users]:
        assert key.startswith("wshub:{chat/room}:")
    # The node-level presence keys never look like a channel's.
    assert shared == [
        "wshub:presence:departed",
        "wshub:presence:nodes",
        "wshub:presence:node:node-a",
    ]
    assert keys.pubsub(channel) == "wshub:pub:chat/room"
    assert keys.channel_of(b"wshub:pub:chat/room") == channel
    assert keys.channel_of(b"other:pub:chat/room") is None
    assert keys.pubsub_pattern("chat/#") == "wshub:pub:chat*"


def test_publication_body_round_trip() -> None:
    """Data (bytes stay bytes), kind, publisher, extras and origin survive the trip."""
    publication = Publication(
        "a/b",
        {"text": "hé", "raw": b"\x00\xff", "list": [1, 2.5, None, True]},
        kind=Kind.MESSAGE,
        publisher=ClientInfo("c1", "ada", {"n": 1}),
        extras={"qos": 1, "args": [b"x"]},
        origin="node-1",
    )
    ids = MessageIds()
    body = encode_body(publication, next(ids))
    copy = decode_body("a/b", body, 7, "e1")
    assert (copy.channel, copy.data, copy.offset, copy.epoch) == ("a/b", publication.data, 7, "e1")
    assert (copy.kind, copy.publisher, copy.extras, copy.origin) == (
        Kind.MESSAGE,
        publication.publisher,
        {"qos": 1, "args": [b"x"]},
        "node-1",
    )
    raw = encode_body(Publication("a/b", b"bytes"), next(ids))
    assert decode_body("a/b", raw, 1, "e").data == b"bytes"


def test_other_python_values_travel_as_json() -> None:
    """What JSON protocols would render (datetime, UUID, sets, models) travels as JSON."""

    class Point(BaseModel):
        x: int

    when = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=1)
    data = {"when": when, "id": ident, "tags": frozenset({"a"}), "point": Point(x=1)}
    body = encode_body(Publication("a", data), next(MessageIds()))
    assert decode_body("a", body, 1, "e").data == {
        "when": "2024-05-01T12:30:00+00:00",
        "id": "00000000-0000-0000-0000-000000000001",
        "tags": ["a"],
        "point": {"x": 1},
    }
    with pytest.raises(TypeError, match="cannot carry a object in a publication"):
        encode_body(Publication("a", object()), next(MessageIds()))


def test_message_ids_are_unique_and_readable_from_a_body() -> None:
    """Two publications never share an id; the id is read back without a full decode."""
    ids = MessageIds()
    first, second = next(ids), next(ids)
    assert first != second
    body = encode_body(Publication("a", 1, kind=Kind.JOIN), second)
    assert message_id(body) == second
    assert message_id(b"not msgpack at all") is None


def test_frame_round_trip() -> None:
    """A frame carries offset and epoch in front of the body, which may hold colons."""
    assert unframe(frame(12, "abcd", b"x:y:z")) == (12, "abcd", b"x:y:z")
    assert unframe(frame(0, "", b"")) == (0, "", b"")
    with pytest.raises(ValueError, match="not found"):
        unframe(b"no colons")


def test_bad_bodies_are_refused() -> None:
    """A body that is not one of ours raises ValueError, never something else."""
    for body in (b"", b"\x93\x01\x02\x03", b"\xc1"):
        with pytest.raises(ValueError, match="publication"):
            decode_body("a", body, 1, "e")


@given(user=st.text(min_size=0, max_size=20), info=st.one_of(st.none(), st.text(), st.binary()))
def test_member_blob_round_trip(user: str, info: object) -> None:
    """A member blob keeps user (colons and all) and info; its prefix is the user's length."""
    member = ClientInfo("c", user, info)
    blob = encode_member(member)
    assert blob.startswith(b"%d:" % len(user.encode()))
    assert decode_member("c", blob) == member


@given(
    channel=st.text(min_size=1, max_size=20),
    client=st.text(min_size=1, max_size=20),
    user=st.text(max_size=20),
)
def test_departure_round_trip(channel: str, client: str, user: str) -> None:
    """A queued leave, built as the sweep script builds it, gives back channel and member."""
    member = ClientInfo(client, user, {"n": 1})
    name, client_id = channel.encode(), client.encode()
    item = b"%d:%s%d:%s%s" % (len(name), name, len(client_id), client_id, encode_member(member))
    assert decode_departure(item) == (channel, member)


def test_a_truncated_departure_is_refused() -> None:
    """A departure cut short raises ValueError, which the drain skips with a warning."""
    with pytest.raises(ValueError, match="truncated"):
        decode_departure(b"40:short")
