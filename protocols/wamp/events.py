"""Engine publications as WAMP ``EVENT`` frames, and who may receive them.

What a WAMP publisher asked for travels in ``Publication.extras["wamp"]``
(:func:`publish_extras`): the untouched payload, the publication id, the
exclusion/eligibility lists and the disclosed publisher. Message metadata
(content type, user properties, payload format: :mod:`hub.meta`) is
``Options._meta`` on PUBLISH and ``Details._meta`` on EVENT. A frame is encoded once
per (serializer, subscription, disclosure) and cached in ``publication.encoded``,
so every subscriber of one subscription on one serializer gets the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from hub.engine import Publication
from hub.engine.base import Memo
from hub.meta import publication_meta
from protocols.wamp.codec import WampProtocolError
from protocols.wamp.messages import Event
from protocols.wamp.payload import from_data, to_data
from protocols.wamp.peer import Peer, random_id
from protocols.wamp.serializers import Serializer

logger = logging.getLogger(__name__)

EXTRAS_KEY: Final = "wamp"
# PUBLISH.Options and EVENT.Details key of the message metadata (hub.meta): a
# custom attribute, as WAMP names them (``_`` then at least three characters).
META_OPTION: Final = "_meta"
_ID: Final = Memo[int]("wamp.publication_id")
_UNCHANGED: Final = Memo[bool]("wamp.unchanged")
# Cached in place of a frame when a payload cannot be encoded for a serializer.
_UNENCODABLE: Final = b""

# PUBLISH.Options that filter receivers, by the peer attribute they test.
_LISTS: Final = (
    ("exclude", "session_id", False),
    ("exclude_authid", "authid", False),
    ("exclude_authrole", "authrole", False),
    ("eligible", "session_id", True),
    ("eligible_authid", "authid", True),
    ("eligible_authrole", "authrole", True),
)


def publish_extras(
    publication_id: int,
    publisher: Peer,
    args: list[Any] | None,
    kwargs: dict[str, Any] | None,
    options: Mapping[str, Any],
    disclose: bool,
) -> dict[str, Any]:
    """``Publication.extras`` for a WAMP PUBLISH whose options were validated."""
    info: dict[str, Any] = {
        "id": publication_id,
        "session": publisher.session_id,
        "args": args,
        "kwargs": kwargs,
        "exclude_me": options.get("exclude_me", True),
    }
    for option, _, _ in _LISTS:
        if option in options:
            info[option] = options[option]
    if disclose:
        info["publisher"] = {
            "publisher": publisher.session_id,
            "publisher_authid": publisher.authid,
            "publisher_authrole": publisher.authrole,
        }
    return {EXTRAS_KEY: info}


def wamp_info(publication: Publication) -> Mapping[str, Any] | None:
    info = publication.extras.get(EXTRAS_KEY)
    return info if isinstance(info, Mapping) else None


class Receivers:
    """Which peers one publication may reach (publisher exclusion, black/whitelists)."""

    __slots__ = ("_checks", "_exclude_me", "_publisher")

    def __init__(self, info: Mapping[str, Any] | None) -> None:
        self._publisher = info.get("session") if info is not None else None
        self._exclude_me = bool(info.get("exclude_me", True)) if info is not None else False
        self._checks: list[tuple[str, frozenset[Any], bool]] = []
        if info is not None:
            for option, attribute, eligible in _LISTS:
                values = info.get(option)
                if isinstance(values, list):
                    self._checks.append((attribute, frozenset(values), eligible))

    def admit(self, peer: Peer) -> bool:
        if self._exclude_me and peer.session_id == self._publisher:
            return False
        for attribute, values, eligible in self._checks:
            if (getattr(peer, attribute) in values) is not eligible:
                return False
        return True


def publication_id(publication: Publication, info: Mapping[str, Any] | None) -> int:
    """The WAMP publication id: the publisher's, or one drawn once per publication."""
    if info is not None and isinstance(info.get("id"), int):
        return int(info["id"])
    # Publications from other protocols have none: one is drawn per publication
    # on each node (the same for every subscriber there).
    return publication.encoded.memo(_ID, random_id)


def payload(
    publication: Publication, info: Mapping[str, Any] | None
) -> tuple[list[Any] | None, dict[str, Any] | None]:
    """The EVENT's args/kwargs: the publisher's own, unless a hook replaced the data."""
    if info is not None:
        args, kwargs = info.get("args"), info.get("kwargs")
        if publication.encoded.memo(_UNCHANGED, lambda: _unchanged(publication.data, args, kwargs)):
            return args, kwargs
    return [from_data(publication.data)], None


def _unchanged(data: Any, args: Any, kwargs: Any) -> bool:
    # An on_publish hook that returned new data wins over the original payload.
    # Compared by value: after a hop through another node it is another object.
    try:
        return bool(to_data(args, kwargs) == data)
    except RecursionError:
        return False


def event_frame(
    publication: Publication,
    serializer: Serializer,
    subscription_id: int,
    topic: str | None,
    disclose: bool,
) -> bytes | None:
    """The EVENT for every subscriber of ``subscription_id`` on ``serializer``.

    ``topic`` is set for pattern subscriptions (``Details.topic``). None when the
    payload cannot be carried by this serializer (a CBOR tag to a JSON peer).
    """
    key = (EXTRAS_KEY, serializer.name, subscription_id, disclose)
    frame = publication.encoded.frame(
        key, lambda: _event(publication, serializer, subscription_id, topic, disclose)
    )
    return frame if frame is not _UNENCODABLE and frame else None


def _event(
    publication: Publication,
    serializer: Serializer,
    subscription_id: int,
    topic: str | None,
    disclose: bool,
) -> bytes:
    info = wamp_info(publication)
    details: dict[str, Any] = {}
    if topic is not None:
        details["topic"] = topic
    if disclose and info is not None and isinstance(info.get("publisher"), Mapping):
        details.update(info["publisher"])
    meta = publication_meta(publication.extras)
    if meta is not None:
        details[META_OPTION] = dict(meta)
    args, kwargs = payload(publication, info)
    event = Event(subscription_id, publication_id(publication, info), details, args, kwargs)
    try:
        return serializer.encode_bytes(event)
    except WampProtocolError:
        logger.info("publication on %s cannot be sent as %s", publication.channel, serializer.name)
        return _UNENCODABLE
