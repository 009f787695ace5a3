"""WAMP URI rules and the mapping between WAMP topics and engine channels."""

from __future__ import annotations

import contextlib
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.wamp import (
    MATCH_POLICIES,
    InvalidUriError,
    channel_to_topic,
    is_reserved_uri,
    is_valid_uri,
    pattern_to_channel,
    topic_to_channel,
)

STRICT_VALID = ["com", "com.myapp.topic1", "a_b.c_d.0", "com.myapp.9lives", "wamp.error.x"]
LOOSE_ONLY = [
    "com.MyApp.Topic",
    "com.myapp.topic-1",
    "com.myapp.ünïcödé",
    "a/b.c",
    "com.a+b",
    "a$b",
]
INVALID = [
    "",
    ".",
    "com.",
    ".com",
    "com..myapp",
    "com.my app",
    "com.my\tapp",
    "com.my\u00a0app",  # no-break space is whitespace too
    "com.my#app",
    "com.myapp\n",
    " com.myapp",
]


@pytest.mark.parametrize("uri", STRICT_VALID)
def test_strict_uris_are_valid(uri: str) -> None:
    """Lower-case, digit and underscore components pass the strict and loose checks."""
    assert is_valid_uri(uri, strict=True)
    assert is_valid_uri(uri)


@pytest.mark.parametrize("uri", LOOSE_ONLY)
def test_loose_uris_fail_strict(uri: str) -> None:
    """Upper case, dashes and other characters pass loose but not strict checks."""
    assert is_valid_uri(uri)
    assert not is_valid_uri(uri, strict=True)


@pytest.mark.parametrize("uri", INVALID)
def test_invalid_uris(uri: str) -> None:
    """Empty components, whitespace and # fail both checks."""
    assert not is_valid_uri(uri)
    assert not is_valid_uri(uri, strict=True)


@pytest.mark.parametrize(
    "uri", ["com.myapp..userevent", ".myapp.userevent", "com.myapp.", "..", "", "com"]
)
def test_empty_components_allowed_for_patterns(uri: str) -> None:
    """allow_empty admits empty components, which mark wildcards in patterns."""
    assert is_valid_uri(uri, allow_empty=True)
    assert is_valid_uri(uri, strict=True, allow_empty=True)


@pytest.mark.parametrize("uri", ["com..my app", "com..#", "Com..x", "com..x\n"])
def test_patterns_still_check_components(uri: str) -> None:
    """Non-empty components of a pattern must still be valid (strictly, for strict)."""
    assert not is_valid_uri(uri, strict=True, allow_empty=True)
    if uri != "Com..x":
        assert not is_valid_uri(uri, allow_empty=True)


@pytest.mark.parametrize("value", [None, 1, b"com.myapp", ["com"]])
def test_non_strings_are_not_uris(value: object) -> None:
    """Values that are not strings are never valid URIs."""
    assert not is_valid_uri(value)


@pytest.mark.parametrize(
    ("uri", "reserved"),
    [
        ("wamp", True),
        ("wamp.error.not_authorized", True),
        ("wamp.session.on_join", True),
        ("wampx.topic", False),
        ("com.wamp.topic", False),
        ("WAMP.error", False),
    ],
)
def test_reserved_uris(uri: str, reserved: bool) -> None:
    """Only URIs whose first component is exactly "wamp" are reserved for the router."""
    assert is_reserved_uri(uri) is reserved


# --- topic <-> channel -------------------------------------------------------


def test_topic_maps_dots_to_slashes() -> None:
    """An exact topic maps to the channel with the same components."""
    assert topic_to_channel("sensors.kitchen.temp") == "sensors/kitchen/temp"
    assert topic_to_channel("sensors") == "sensors"


def test_channel_maps_slashes_to_dots() -> None:
    """A concrete channel maps back to the dotted topic."""
    assert channel_to_topic("sensors/kitchen/temp") == "sensors.kitchen.temp"


@pytest.mark.parametrize(
    "uri",
    ["sensors..temp", "", "sensors.", "sensors.kit chen", "sensors.#", "a/b.c", "a.+.c", "a.\x00"],
)
def test_unmappable_topics_are_refused(uri: str) -> None:
    """Invalid topics and topics using channel syntax (/, +, NUL) raise InvalidUriError."""
    with pytest.raises(InvalidUriError):
        topic_to_channel(uri)


@pytest.mark.parametrize(
    "channel", ["a/+/c", "a/#", "a//c", "/a", "a/", "", "a.b/c", "a b/c", "a/\x00"]
)
def test_channels_without_a_topic_are_refused(channel: str) -> None:
    """Wildcards, empty levels, dots and whitespace have no WAMP topic spelling."""
    with pytest.raises(InvalidUriError):
        channel_to_topic(channel)


@pytest.mark.parametrize(
    ("uri", "match", "channel"),
    [
        ("sensors.kitchen.temp", "exact", "sensors/kitchen/temp"),
        ("sensors..temp", "wildcard", "sensors/+/temp"),
        (".kitchen.temp", "wildcard", "+/kitchen/temp"),
        ("sensors.kitchen.", "wildcard", "sensors/kitchen/+"),
        ("sensors...", "wildcard", "sensors/+/+/+"),
        ("sensors.kitchen.temp", "wildcard", "sensors/kitchen/temp"),
        ("sensors", "prefix", "sensors/#"),
        ("sensors.kitchen", "prefix", "sensors/kitchen/#"),
        ("sensors.", "prefix", "sensors/+/#"),
        ("", "prefix", "#"),
    ],
)
def test_pattern_to_channel(uri: str, match: str, channel: str) -> None:
    """Each match policy maps to the MQTT-style channel pattern the engine understands."""
    assert pattern_to_channel(uri, match) == channel


def test_pattern_to_channel_defaults_to_exact() -> None:
    """Without a match policy a subscription is exact."""
    assert pattern_to_channel("a.b") == "a/b"


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("sensors..temp", "exact"),
        ("sensors..temp", "prefix"),
        ("sensors..", "prefix"),
        ("sensors.+.temp", "wildcard"),
        ("sensors.#", "wildcard"),
        ("sen sors..temp", "wildcard"),
        ("a/b..c", "wildcard"),
    ],
)
def test_invalid_patterns_are_refused(uri: str, match: str) -> None:
    """Patterns invalid for their policy, or using channel syntax, raise InvalidUriError."""
    with pytest.raises(InvalidUriError):
        pattern_to_channel(uri, match)


def test_unknown_match_policy_is_a_value_error() -> None:
    """An unknown match policy raises ValueError, not InvalidUriError."""
    with pytest.raises(ValueError, match="unknown match policy") as info:
        pattern_to_channel("a.b", "regex")
    assert not isinstance(info.value, InvalidUriError)


def test_match_policies() -> None:
    """MATCH_POLICIES lists the three WAMP matching policies."""
    assert MATCH_POLICIES == ("exact", "prefix", "wildcard")


def test_invalid_uri_error_is_a_value_error() -> None:
    """InvalidUriError can be caught as ValueError."""
    assert issubclass(InvalidUriError, ValueError)


STRICT_COMPONENT = st.from_regex(r"[0-9a-z_]{1,8}", fullmatch=True)
LOOSE_COMPONENT = st.text(
    st.characters(exclude_characters="./+#\x00", exclude_categories=("Zs", "Zl", "Zp", "Cs")),
    min_size=1,
    max_size=8,
).filter(lambda c: not any(ch.isspace() for ch in c))


@settings(database=None, deadline=None)
@given(st.lists(LOOSE_COMPONENT | STRICT_COMPONENT, min_size=1, max_size=6))
def test_topic_channel_round_trip(components: list[str]) -> None:
    """Any mappable topic survives topic -> channel -> topic unchanged."""
    topic = ".".join(components)
    assert is_valid_uri(topic)
    channel = topic_to_channel(topic)
    assert channel == "/".join(components)
    assert channel_to_topic(channel) == topic


@settings(database=None, deadline=None)
@given(st.lists(STRICT_COMPONENT | st.just(""), min_size=1, max_size=6))
def test_wildcard_components_become_plus(components: list[str]) -> None:
    """Every empty component of a wildcard pattern becomes one + level, in place."""
    channel = pattern_to_channel(".".join(components), "wildcard")
    assert channel.split("/") == [c or "+" for c in components]


@settings(database=None, deadline=None)
@given(st.text(max_size=30))
def test_uri_functions_never_crash(text: str) -> None:
    """On any string the URI helpers return or raise InvalidUriError, nothing else."""
    is_valid_uri(text)
    is_valid_uri(text, strict=True, allow_empty=True)
    is_reserved_uri(text)
    calls = [
        partial(topic_to_channel, text),
        partial(channel_to_topic, text),
        *(partial(pattern_to_channel, text, match) for match in MATCH_POLICIES),
    ]
    for call in calls:
        with contextlib.suppress(InvalidUriError):
            call()
