"""Channel names and MQTT-style patterns: validation and a matching index. Pure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from hub.errors import HubError

T = TypeVar("T")

SEPARATOR = "/"
SINGLE = "+"
MULTI = "#"


class InvalidChannel(HubError, ValueError):
    """A channel name or pattern that breaks the naming rules."""


def is_pattern(name: str) -> bool:
    return SINGLE in name or MULTI in name


def _check_encodable(name: str, what: str) -> None:
    # Lone surrogates cannot be written to any wire (JSON, MQTT, WAMP): a channel
    # holding one would break every fan-out that reaches it.
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidChannel(f"{what} is not encodable as UTF-8") from None


def validate_channel(name: str, max_length: int = 255) -> None:
    """A concrete channel: non-empty, bounded, no wildcards, no NUL, valid UTF-8."""
    if not name:
        raise InvalidChannel("channel name is empty")
    if len(name) > max_length:
        raise InvalidChannel(f"channel name longer than {max_length} characters")
    if "\x00" in name:
        raise InvalidChannel("channel name contains NUL")
    _check_encodable(name, "channel name")
    if is_pattern(name):
        raise InvalidChannel(f"channel name {name!r} contains a wildcard ('+' or '#')")


def validate_pattern(pattern: str, max_length: int = 255) -> None:
    """A subscription: a channel name, or MQTT wildcards each on a whole level."""
    if not pattern:
        raise InvalidChannel("channel pattern is empty")
    if len(pattern) > max_length:
        raise InvalidChannel(f"channel pattern longer than {max_length} characters")
    if "\x00" in pattern:
        raise InvalidChannel("channel pattern contains NUL")
    _check_encodable(pattern, "channel pattern")
    levels = pattern.split(SEPARATOR)
    for index, level in enumerate(levels):
        if MULTI in level and (level != MULTI or index != len(levels) - 1):
            raise InvalidChannel(f"'#' must be a whole last level in {pattern!r}")
        if SINGLE in level and level != SINGLE:
            raise InvalidChannel(f"'+' must be a whole level in {pattern!r}")


def matches(pattern: str, channel: str) -> bool:
    """Whether a concrete channel falls under a pattern (MQTT 3.1.1 rules)."""
    if not is_pattern(pattern):
        return pattern == channel
    # Wildcards in the first level never match '$' channels (MQTT 4.7.2).
    if channel.startswith("$") and pattern[0] in (SINGLE, MULTI):
        return False
    pattern_levels = pattern.split(SEPARATOR)
    channel_levels = channel.split(SEPARATOR)
    for index, level in enumerate(pattern_levels):
        if level == MULTI:
            return True
        if index >= len(channel_levels):
            return False
        if level != SINGLE and level != channel_levels[index]:
            return False
    return len(pattern_levels) == len(channel_levels)


def patterns_intersect(first: str, second: str) -> bool:
    """Whether some channel matches both patterns (either may be a plain name).

    Used to judge a pattern subscription by every rule it could reach, not only
    by its literal prefix: ``#`` reaches ``secret/x`` as surely as ``secret/#``.
    """
    a, b = first.split(SEPARATOR), second.split(SEPARATOR)
    # Wildcards in the first level never match '$' channels (MQTT 4.7.2).
    if (a[0] in (SINGLE, MULTI) and b[0].startswith("$")) or (
        b[0] in (SINGLE, MULTI) and a[0].startswith("$")
    ):
        return False
    for index in range(max(len(a), len(b))):
        if index == len(a) or index == len(b):
            # One pattern ended: only its parent-matching '#' lets the other one
            # match a channel this short, and the empty channel does not exist.
            longer = b if index == len(a) else a
            if index == 1 and "" in (a[0], b[0]):
                return False
            return longer[index] == MULTI
        x, y = a[index], b[index]
        if MULTI in (x, y):
            return True
        if x != y and SINGLE not in (x, y):
            return False
    return True


class _Node(Generic[T]):
    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.values: dict[str, T] = {}


class PatternIndex(Generic[T]):
    """Patterns with a value each, found by the channels they match.

    A trie over levels: a lookup visits only the branches that can match, so its
    cost grows with the depth of the channel, not with the number of patterns.
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, pattern: str, value: T) -> None:
        node = self._root
        for level in pattern.split(SEPARATOR):
            node = node.children.setdefault(level, _Node())
        if pattern not in node.values:
            self._count += 1
        node.values[pattern] = value

    def remove(self, pattern: str) -> None:
        path: list[tuple[_Node[T], str]] = []
        node = self._root
        for level in pattern.split(SEPARATOR):
            child = node.children.get(level)
            if child is None:
                return
            path.append((node, level))
            node = child
        if node.values.pop(pattern, None) is None:
            return
        self._count -= 1
        # Prune empty branches so the trie does not keep dead levels.
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.values or child.children:
                break
            del parent.children[level]

    def items(self) -> Iterator[tuple[str, T]]:
        """Every (pattern, value), in no particular order."""
        stack = [self._root]
        while stack:
            node = stack.pop()
            yield from node.values.items()
            stack.extend(node.children.values())

    def get(self, pattern: str) -> T | None:
        node = self._root
        for level in pattern.split(SEPARATOR):
            child = node.children.get(level)
            if child is None:
                return None
            node = child
        return node.values.get(pattern)

    def match(self, channel: str) -> Iterator[tuple[str, T]]:
        """Every (pattern, value) whose pattern matches ``channel``."""
        levels = channel.split(SEPARATOR)
        dollar = channel.startswith("$")
        stack: list[tuple[_Node[T], int]] = [(self._root, 0)]
        while stack:
            node, depth = stack.pop()
            wildcards_allowed = not (dollar and depth == 0)
            if wildcards_allowed:
                multi = node.children.get(MULTI)
                if multi is not None:
                    yield from multi.values.items()
            if depth == len(levels):
                yield from node.values.items()
                continue
            exact = node.children.get(levels[depth])
            if exact is not None:
                stack.append((exact, depth + 1))
            if wildcards_allowed:
                single = node.children.get(SINGLE)
                if single is not None:
                    stack.append((single, depth + 1))
