"""Channel names, MQTT-style patterns and the pattern index (hub.engine.topics)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.engine.topics import (
    InvalidChannel,
    PatternIndex,
    is_pattern,
    matches,
    patterns_intersect,
    validate_channel,
    validate_pattern,
)

VALID_CHANNELS = [
    "a",
    "a/b",
    "/",
    "a//b",
    "/a/",
    "$SYS/broker",
    "a b",
    "\u00fc/\u65e5\u672c/\U0001f600",
    "x" * 255,
    "\u00e9" * 255,
]
INVALID_CHANNELS = [
    ("", "empty"),
    ("x" * 256, "longer than 255"),
    ("a\x00b", "NUL"),
    ("a/+", "wildcard"),
    ("a/#", "wildcard"),
    ("+", "wildcard"),
    ("#", "wildcard"),
    ("a+b", "wildcard"),
    ("a#", "wildcard"),
    ("a\ud800", "UTF-8"),
]

VALID_PATTERNS = [
    "a",
    "a/b",
    "#",
    "+",
    "a/#",
    "a/+/b",
    "+/+",
    "+/#",
    "/#",
    "a//+",
    "$SYS/#",
    "x" * 255,
]
INVALID_PATTERNS = [
    ("", "empty"),
    ("x" * 256, "longer than 255"),
    ("a/\x00", "NUL"),
    ("a#", "whole last level"),
    ("a/#/b", "whole last level"),
    ("#/a", "whole last level"),
    ("a/b#", "whole last level"),
    ("##", "whole last level"),
    ("+a", "whole level"),
    ("a/+b", "whole level"),
    ("++", "whole level"),
    ("a\ud800/#", "UTF-8"),
]


@pytest.mark.parametrize("name", VALID_CHANNELS, ids=lambda v: repr(v)[:24])
def test_valid_channel_is_accepted(name: str) -> None:
    """Non-empty names up to 255 characters without wildcards or NUL pass."""
    validate_channel(name)
    assert not is_pattern(name)


@pytest.mark.parametrize(
    ("name", "reason"), INVALID_CHANNELS, ids=[repr(v[0])[:24] for v in INVALID_CHANNELS]
)
def test_invalid_channel_is_refused(name: str, reason: str) -> None:
    """Empty, oversized, NUL, wildcard and unencodable names raise InvalidChannel."""
    with pytest.raises(InvalidChannel, match=reason):
        validate_channel(name)


def test_channel_max_length_is_configurable() -> None:
    """The length bound is a parameter: 3 characters pass a bound of 3, 4 do not."""
    validate_channel("abc", max_length=3)
    with pytest.raises(InvalidChannel, match="longer than 3"):
        validate_channel("abcd", max_length=3)


@pytest.mark.parametrize("pattern", VALID_PATTERNS, ids=lambda v: repr(v)[:24])
def test_valid_pattern_is_accepted(pattern: str) -> None:
    """Names, and wildcards standing alone on a level ('#' last only), pass."""
    validate_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "reason"), INVALID_PATTERNS, ids=[repr(v[0])[:24] for v in INVALID_PATTERNS]
)
def test_invalid_pattern_is_refused(pattern: str, reason: str) -> None:
    """Wildcards sharing a level, '#' not last, empty, NUL or oversized raise InvalidChannel."""
    with pytest.raises(InvalidChannel, match=reason):
        validate_pattern(pattern)


MATCHES = [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/b", "a/b/c", False),
    ("a/+", "a/b", True),
    ("a/+", "a", False),
    ("a/+", "a/b/c", False),
    ("a/+", "a/", True),
    ("+/+", "/", True),
    ("+", "a", True),
    ("+", "a/b", False),
    ("a/+/c", "a/b/c", True),
    ("a/+/c", "a/b/d", False),
    ("#", "a", True),
    ("#", "a/b/c", True),
    ("#", "/", True),
    ("a/#", "a", True),
    ("a/#", "a/b", True),
    ("a/#", "a/b/c", True),
    ("a/#", "ab", False),
    ("a/#", "b/a", False),
    ("a/+/#", "a", False),
    ("a/+/#", "a/b", True),
    ("+/#", "a", True),
    ("/#", "/a", True),
    ("/#", "a", False),
    # Wildcards in the first level do not reach '$' channels (MQTT 4.7.2).
    ("#", "$SYS", False),
    ("#", "$SYS/x", False),
    ("+/x", "$SYS/x", False),
    ("+", "$", False),
    ("$SYS/#", "$SYS/x", True),
    ("$SYS/#", "$SYS", True),
    ("$SYS/+", "$SYS/x", True),
    ("a/+", "a/$x", True),
    ("a/#", "a/$x", True),
]


@pytest.mark.parametrize(("pattern", "channel", "expected"), MATCHES)
def test_matches(pattern: str, channel: str, expected: bool) -> None:
    """matches() follows MQTT 3.1.1: '+' one level, '#' the rest (parent too), '$' rule."""
    assert matches(pattern, channel) is expected


@pytest.mark.parametrize(("pattern", "channel", "expected"), MATCHES)
def test_index_agrees_with_matches_table(pattern: str, channel: str, expected: bool) -> None:
    """A one-entry PatternIndex finds the pattern exactly when matches() says so."""
    index: PatternIndex[int] = PatternIndex()
    index.add(pattern, 1)
    assert dict(index.match(channel)) == ({pattern: 1} if expected else {})


def test_index_add_replaces_value_and_counts_patterns() -> None:
    """Adding a pattern twice keeps one entry with the latest value."""
    index: PatternIndex[str] = PatternIndex()
    index.add("a/+", "first")
    index.add("a/+", "second")
    index.add("a/#", "other")
    assert len(index) == 2
    assert index.get("a/+") == "second"
    assert dict(index.match("a/b")) == {"a/+": "second", "a/#": "other"}


def test_index_get_only_finds_added_patterns() -> None:
    """get() answers for added patterns, not for their prefixes or extensions."""
    index: PatternIndex[int] = PatternIndex()
    index.add("a/b/c", 1)
    assert index.get("a/b/c") == 1
    assert index.get("a/b") is None
    assert index.get("a/b/c/d") is None
    assert index.get("x") is None


def test_index_remove_keeps_neighbours() -> None:
    """Removing a pattern leaves its parent, children and siblings matchable."""
    index: PatternIndex[int] = PatternIndex()
    for value, pattern in enumerate(["a", "a/b", "a/b/c", "a/+", "a/b/#"]):
        index.add(pattern, value)
    index.remove("a/b")
    assert len(index) == 4
    assert index.get("a/b") is None
    assert dict(index.match("a/b")) == {"a/+": 3, "a/b/#": 4}
    assert dict(index.match("a/b/c")) == {"a/b/c": 2, "a/b/#": 4}
    index.remove("a")
    assert dict(index.match("a")) == {}
    assert dict(index.match("a/b/c")) == {"a/b/c": 2, "a/b/#": 4}


def test_index_remove_of_unknown_pattern_is_a_no_op() -> None:
    """Removing a pattern never added, or a prefix of one, changes nothing."""
    index: PatternIndex[int] = PatternIndex()
    index.add("a/b/c", 1)
    index.remove("a/b")
    index.remove("a/b/c/d")
    index.remove("z")
    assert len(index) == 1
    assert dict(index.match("a/b/c")) == {"a/b/c": 1}


def test_index_prunes_dead_levels() -> None:
    """Adding then removing many deep patterns leaves an index as small as a fresh one."""
    empty_size = len(pickle.dumps(PatternIndex()))
    index: PatternIndex[int] = PatternIndex()
    patterns = [f"p{i}/+/l{i % 7}/x{i}/#" for i in range(200)]
    for i, pattern in enumerate(patterns):
        index.add(pattern, i)
    assert len(pickle.dumps(index)) > empty_size
    for pattern in patterns:
        index.remove(pattern)
    assert len(index) == 0
    assert len(pickle.dumps(index)) == empty_size


# -- the index against a brute-force reference --------------------------------

LEVELS = ["a", "b", "", "$s"]
channels = st.lists(st.sampled_from(LEVELS), min_size=1, max_size=4).map("/".join).filter(bool)
patterns = st.builds(
    lambda levels, tail: "/".join(levels + (["#"] if tail else [])) or "#",
    st.lists(st.sampled_from([*LEVELS, "+"]), min_size=0, max_size=4),
    st.booleans(),
)
operations = st.lists(st.tuples(st.booleans(), patterns), max_size=30)


def test_pattern_strategy_yields_valid_patterns() -> None:
    """The generators used below produce only valid names and patterns."""

    @given(patterns, channels)
    @settings(max_examples=100)
    def check(pattern: str, channel: str) -> None:
        validate_pattern(pattern)
        validate_channel(channel)

    check()


@given(operations, st.lists(channels, min_size=1, max_size=10))
@settings(max_examples=150, deadline=None)
def test_index_match_equals_brute_force(ops: list[tuple[bool, str]], probes: list[str]) -> None:
    """After any adds and removes, match(channel) == {p for p in patterns if matches(p, c)}."""
    index: PatternIndex[str] = PatternIndex()
    reference: dict[str, str] = {}
    for add, pattern in ops:
        if add:
            index.add(pattern, pattern.upper())
            reference[pattern] = pattern.upper()
        else:
            index.remove(pattern)
            reference.pop(pattern, None)
    assert len(index) == len(reference)
    for pattern, value in reference.items():
        assert index.get(pattern) == value
    for channel in probes:
        found = list(index.match(channel))
        assert len(found) == len({p for p, _ in found}), "a pattern matched twice"
        expected = {p: v for p, v in reference.items() if matches(p, channel)}
        assert dict(found) == expected


# -- pattern intersection ----------------------------------------------------------

INTERSECTIONS = [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/+", "a/b", True),
    ("a/+", "+/b", True),
    ("a/+", "b/+", False),
    ("#", "a/b/c", True),
    ("#", "+", True),
    ("a/#", "a", True),
    ("a", "a/#", True),
    ("a/#", "a/b/+", True),
    ("a/+", "a", False),
    ("a/+", "a/b/c", False),
    ("a/+/#", "a", False),
    ("+/+", "+", False),
    ("+/x", "secret/#", True),
    ("#", "$SYS/#", False),
    ("+/x", "$SYS/x", False),
    ("$SYS/#", "$SYS/+", True),
    ("a/$x", "a/+", True),
]


@pytest.mark.parametrize(("first", "second", "expected"), INTERSECTIONS)
def test_patterns_intersect(first: str, second: str, expected: bool) -> None:
    """Two patterns intersect when some channel matches both; the relation is symmetric."""
    assert patterns_intersect(first, second) is expected
    assert patterns_intersect(second, first) is expected


def witnesses(first: str, second: str) -> set[str]:
    """Every channel that could prove an intersection: levels from either, or a fresh one."""
    alphabet = {lvl for lvl in first.split("/") + second.split("/") if lvl not in ("+", "#")}
    alphabet.add("fresh")
    depth = max(first.count("/"), second.count("/")) + 1
    found: set[str] = set()
    layer = [[level] for level in alphabet]
    for _ in range(depth):
        found.update("/".join(levels) for levels in layer)
        layer = [[*levels, level] for levels in layer for level in alphabet]
    return {channel for channel in found if channel}


small_patterns = st.builds(
    lambda levels, tail: "/".join(levels + (["#"] if tail else [])) or "#",
    st.lists(st.sampled_from(["a", "", "$s", "+"]), min_size=0, max_size=3),
    st.booleans(),
)


@given(small_patterns, small_patterns)
@settings(max_examples=150, deadline=None)
def test_patterns_intersect_equals_brute_force(first: str, second: str) -> None:
    """patterns_intersect(a, b) is True exactly when a channel matching both exists."""
    expected = any(
        matches(first, channel) and matches(second, channel) for channel in witnesses(first, second)
    )
    assert patterns_intersect(first, second) is expected
