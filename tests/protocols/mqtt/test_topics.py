"""MQTT topic names and filters: validation rules and matching (spec section 4.7)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.mqtt.packets import MqttProtocolError
from protocols.mqtt.topics import (
    has_wildcards,
    matches,
    validate_topic_filter,
    validate_topic_name,
)

VALID_NAMES = ["a", "a/b", "/", "//", "/a/", "$SYS/broker", "\u00fc/\u20ac/\U0001f600", "t" * 65535]
INVALID_NAMES = [
    ("", "empty"),
    ("a/+", "wildcard"),
    ("+", "wildcard"),
    ("a/#", "wildcard"),
    ("a#b", "wildcard"),
    ("a\x00b", "U\\+0000"),
    ("t" * 65536, "longer than"),
    ("\u20ac" * 21846, "longer than"),
    ("a\ud800", "encodable"),
]

VALID_FILTERS = ["#", "+", "a/+/b", "a/#", "+/+", "/#", "$SYS/#", "+/#", "a//b", "a", "/"]
INVALID_FILTERS = [
    ("", "empty"),
    ("a#", "whole level"),
    ("a/#/b", "must be last"),
    ("#/a", "must be last"),
    ("a+/b", "whole level"),
    ("+a", "whole level"),
    ("##", "whole level"),
    ("a/b#", "whole level"),
    ("++", "whole level"),
    ("a\x00", "U\\+0000"),
    ("\ud800/#", "encodable"),
    ("#" + "/a" * 40000, "longer than"),
]


@pytest.mark.parametrize("name", VALID_NAMES, ids=repr)
def test_valid_topic_name_is_accepted(name: str) -> None:
    """Non-empty names without wildcards or U+0000 up to 65535 bytes pass."""
    validate_topic_name(name)


@pytest.mark.parametrize(
    ("name", "match"), INVALID_NAMES, ids=[repr(v[0])[:20] for v in INVALID_NAMES]
)
def test_invalid_topic_name_is_refused(name: str, match: str) -> None:
    """Empty, wildcard, U+0000, oversized or unencodable names raise MqttProtocolError."""
    with pytest.raises(MqttProtocolError, match=match):
        validate_topic_name(name)


@pytest.mark.parametrize("topic_filter", VALID_FILTERS)
def test_valid_topic_filter_is_accepted(topic_filter: str) -> None:
    """Filters whose '+' and '#' each fill a level, '#' last, pass."""
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    ("topic_filter", "match"), INVALID_FILTERS, ids=[repr(v[0])[:20] for v in INVALID_FILTERS]
)
def test_invalid_topic_filter_is_refused(topic_filter: str, match: str) -> None:
    """Misplaced wildcards, empty, U+0000, oversized or unencodable filters raise."""
    with pytest.raises(MqttProtocolError, match=match):
        validate_topic_filter(topic_filter)


@pytest.mark.parametrize(("topic_filter", "expected"), [("a/b", False), ("a/+", True), ("#", True)])
def test_has_wildcards(topic_filter: str, expected: bool) -> None:
    """has_wildcards tells wildcard filters from plain topic names."""
    assert has_wildcards(topic_filter) is expected


MATCHES = [
    # Examples from MQTT 3.1.1 section 4.7.1.
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+/tennis/#", "sport/tennis/player1", True),
    # Section 4.7.2: '$' topics and wildcards.
    ("#", "$SYS/broker", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("$SYS/#", "$SYS", True),
    ("a/$x/#", "a/$x/y", True),
    ("+/$x", "a/$x", True),
    # Plain filters, empty levels, case.
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/b", "A/b", False),
    ("a/+/c", "a//c", True),
    ("a/+", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("+", "a", True),
    ("+/#", "a", True),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCHES)
def test_matches_follows_the_spec_examples(topic_filter: str, topic: str, expected: bool) -> None:
    """matches() agrees with the spec's examples, including the '$' rule."""
    assert matches(topic_filter, topic) is expected


def _oracle(topic_filter: str, topic: str) -> bool:
    """Reference matcher: the filter translated to a regular expression."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    parts = []
    for level in topic_filter.split("/"):
        parts.append("[^/]*" if level == "+" else "\x00" if level == "#" else re.escape(level))
    pattern = "/".join(parts)
    # 'a/#' also matches 'a': the '/' before '#' is optional.
    pattern = pattern.replace("/\x00", "(?:/.*)?").replace("\x00", ".*")
    return re.fullmatch(pattern, topic, re.DOTALL) is not None


_LEVEL = st.text(alphabet="ab$", max_size=2)
_TOPICS = st.lists(_LEVEL, min_size=1, max_size=4).map("/".join).filter(bool)
_FILTERS = (
    st.lists(st.one_of(_LEVEL, st.just("+")), min_size=1, max_size=4)
    .flatmap(lambda levels: st.sampled_from(["/".join(levels), "/".join([*levels, "#"]), "#"]))
    .filter(bool)
)


@settings(database=None, deadline=None, max_examples=400)
@given(topic_filter=_FILTERS, topic=_TOPICS)
def test_matches_agrees_with_a_regex_oracle(topic_filter: str, topic: str) -> None:
    """matches() agrees with a regex translation of the filter on random inputs."""
    validate_topic_filter(topic_filter)
    assert matches(topic_filter, topic) is _oracle(topic_filter, topic)


@settings(database=None, deadline=None)
@given(topic=_TOPICS)
def test_topic_name_matches_itself_as_a_filter(topic: str) -> None:
    """Every valid topic name is a filter that matches exactly itself."""
    validate_topic_name(topic)
    validate_topic_filter(topic)
    assert matches(topic, topic)
