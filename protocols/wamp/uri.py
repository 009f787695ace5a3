"""WAMP URIs: validation per the spec, and mapping to the hub's channel names.

WAMP URIs separate components with dots (``sensors.kitchen.temp``); engine channels
use MQTT-style slashes (``sensors/kitchen/temp``) with ``+`` and ``#`` wildcards.

Matching policies map as follows:

=========  ===================  ========================
policy     WAMP topic           engine channel
=========  ===================  ========================
exact      ``sensors.k.temp``   ``sensors/k/temp``
wildcard   ``sensors..temp``    ``sensors/+/temp``
prefix     ``sensors``          ``sensors/#``
prefix     ``sensors.``         ``sensors/+/#``
prefix     ``""``               ``#``
=========  ===================  ========================

WAMP prefix matching is a plain string prefix (``com.a`` also matches ``com.ab``);
the engine matches whole components only, so ``com.a`` as a prefix matches
``com.a`` and ``com.a.*`` but not ``com.ab``. That is the useful reading and the
only one MQTT wildcards can express.
"""

from __future__ import annotations

import re
from typing import Final

from hub.errors import HubError

__all__ = [
    "MATCH_POLICIES",
    "InvalidUriError",
    "channel_to_topic",
    "is_reserved_uri",
    "is_valid_uri",
    "pattern_to_channel",
    "topic_to_channel",
]

# The spec's own regular expressions, used with fullmatch: `$` would accept a
# trailing newline.
_LOOSE: Final = re.compile(r"([^\s\.#]+\.)*([^\s\.#]+)")
_LOOSE_EMPTY: Final = re.compile(r"(([^\s\.#]+\.)|\.)*([^\s\.#]+)?")
_STRICT: Final = re.compile(r"([0-9a-z_]+\.)*([0-9a-z_]+)")
_STRICT_EMPTY: Final = re.compile(r"(([0-9a-z_]+\.)|\.)*([0-9a-z_]+)?")

# Characters with a meaning in engine channel names (and NUL, which MQTT forbids).
# A loose WAMP URI may contain them, but mapping them would turn an exact topic
# into a wildcard or split one component into two levels.
_CHANNEL_SPECIAL: Final = re.compile(r"[/+#\x00]")

#: Values of ``SUBSCRIBE.Options.match`` (and ``REGISTER.Options.match``).
MATCH_POLICIES: Final = ("exact", "prefix", "wildcard")


class InvalidUriError(HubError, ValueError):
    """A URI the router must refuse with ``wamp.error.invalid_uri``."""


def is_valid_uri(uri: object, *, strict: bool = False, allow_empty: bool = False) -> bool:
    """Whether ``uri`` is a WAMP URI.

    ``strict`` checks the recommended ``[0-9a-z_]`` components, otherwise the
    mandatory loose rules (no whitespace, ``.`` or ``#`` in a non-empty component).
    ``allow_empty`` admits empty components, i.e. wildcard patterns such as
    ``com.myapp..userevent``.
    """
    if not isinstance(uri, str):
        return False
    if strict:
        pattern = _STRICT_EMPTY if allow_empty else _STRICT
    else:
        pattern = _LOOSE_EMPTY if allow_empty else _LOOSE
    return pattern.fullmatch(uri) is not None


def is_reserved_uri(uri: str) -> bool:
    """Whether ``uri`` is in the ``wamp`` namespace, which only the router may use."""
    return uri == "wamp" or uri.startswith("wamp.")


def topic_to_channel(uri: str) -> str:
    """The engine channel for an exact WAMP topic: ``a.b.c`` -> ``a/b/c``."""
    _check_mappable(uri, allow_empty=False)
    return uri.replace(".", "/")


def pattern_to_channel(uri: str, match: str = "exact") -> str:
    """The engine channel (or channel pattern) for a subscription.

    ``match`` is ``SUBSCRIBE.Options.match``. Raises :class:`InvalidUriError` for a
    URI the policy does not accept, and ``ValueError`` for an unknown policy.
    """
    if match == "exact":
        return topic_to_channel(uri)
    if match == "prefix":
        # As in Autobahn, a trailing dot means "strictly below" and "" means "all".
        if uri == "":
            return "#"
        if uri.endswith("."):
            return topic_to_channel(uri[:-1]) + "/+/#"
        return topic_to_channel(uri) + "/#"
    if match == "wildcard":
        _check_mappable(uri, allow_empty=True)
        return "/".join(component or "+" for component in uri.split("."))
    raise ValueError(f"unknown match policy {match!r}")


def channel_to_topic(channel: str) -> str:
    """The WAMP topic for a concrete engine channel: ``a/b/c`` -> ``a.b.c``.

    Raises :class:`InvalidUriError` when the channel has no WAMP spelling: empty
    levels, wildcards, or levels containing dots or whitespace.
    """
    if _CHANNEL_SPECIAL.search(channel.replace("/", "")):
        raise InvalidUriError(f"channel {channel!r} has no WAMP topic")
    topic = channel.replace("/", ".")
    # Dots already in a level would add components: ``a.b/c`` must not become ``a.b.c``.
    if "." in channel or not is_valid_uri(topic):
        raise InvalidUriError(f"channel {channel!r} has no WAMP topic")
    return topic


def _check_mappable(uri: str, *, allow_empty: bool) -> None:
    if not is_valid_uri(uri, allow_empty=allow_empty):
        raise InvalidUriError(f"invalid URI {uri!r}")
    if _CHANNEL_SPECIAL.search(uri):
        raise InvalidUriError(f"URI {uri!r} contains a character reserved for channels")
