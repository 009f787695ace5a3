"""Shared subscriptions ``$share/<group>/<filter>`` (MQTT 5.0 section 4.8.2, for 3.1.1 too).

A hub service (:data:`SERVICE_NAME`). Each (group, filter) is one engine
subscriber on this node, a :class:`SharedGroup`; its members are the sessions
subscribed to ``$share/<group>/<filter>``. A matching message goes to one
member, round robin, preferring members that are connected; when none is,
a persistent member's session queues it (QoS 1/2), as for its own
subscriptions. A member whose session forgot the subscription (discarded,
expired, unsubscribed) is dropped from the group when next met, and the last
member out unsubscribes the group from the engine.

With several hub nodes each node with members of a group receives its
messages, and the backend's SharedGroups (``hub.engine.groups``) lets one node
of them deliver each, in turn by member count: one member in the cluster gets
it. Shared subscriptions are not kept when a session moves between nodes, and
no retained messages are sent for them (4.8.2).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from hub.engine import Kind, Publication
from hub.errors import HubError

if TYPE_CHECKING:
    from hub.channels import ChannelService
    from hub.engine.groups import SharedGroups
    from protocols.mqtt.session import SessionState

logger = logging.getLogger(__name__)

SERVICE_NAME: Final = "mqtt.shared"
PREFIX: Final = "$share/"


class InvalidSharedFilter(HubError, ValueError):
    """``$share/...`` without a group name or a filter, or with wildcards in the group."""


def parse_shared(topic_filter: str) -> tuple[str, str] | None:
    """``(group, filter)`` of a shared subscription, None for an ordinary filter.

    Raise InvalidSharedFilter for a malformed one (4.8.2: the share name is at
    least one character without ``/``, ``+`` or ``#``, then ``/`` and a filter).
    """
    if not topic_filter.startswith(PREFIX):
        return None
    group, slash, inner = topic_filter[len(PREFIX) :].partition("/")
    if not group or "+" in group or "#" in group:
        raise InvalidSharedFilter(f"{topic_filter!r}: the share name must be a plain word")
    if not slash or not inner:
        raise InvalidSharedFilter(f"{topic_filter!r}: no topic filter after the share name")
    return group, inner


class SharedGroup:
    """One ``$share/<group>/<filter>`` on this node: an engine subscriber that picks one member."""

    def __init__(self, full_filter: str, topic_filter: str, owner: SharedSubscriptions) -> None:
        self.full_filter = full_filter
        self.topic_filter = topic_filter
        self._owner = owner
        self.members: list[SessionState] = []
        self._next = 0

    def __repr__(self) -> str:
        return f"<SharedGroup {self.full_filter!r} members={len(self.members)}>"

    def deliver(self, publication: Publication, subscription: str) -> None:
        if publication.kind is not Kind.MESSAGE:
            return
        # Every node with members has this copy: the backend lets one hand it out.
        self._owner.groups.offer(self.full_filter, publication, self._hand_out)

    def _hand_out(self, publication: Publication) -> bool:
        """Give the message to the next member; False when this node has none left."""
        member = self._pick()
        if member is None:
            return False
        member.deliver_shared(publication, self.full_filter)
        return True

    def _pick(self) -> SessionState | None:
        """The next member, connected ones first; forgets members that left."""
        members = self.members
        stale = [m for m in members if self.full_filter not in m.shared]
        for member in stale:
            self._remove(member)
        if not members:
            return None
        count = len(members)
        fallback = None
        for step in range(count):
            member = members[(self._next + step) % count]
            if member.link is not None:
                self._next = (self._next + step + 1) % count
                return member
            if fallback is None and not member.clean:
                fallback = member
        if fallback is not None:
            self._next = (self._next + 1) % count
        return fallback

    def _remove(self, member: SessionState) -> None:
        self.members.remove(member)
        self._owner.groups.members(self.full_filter, len(self.members))
        if not self.members:
            self._owner.emptied(self)


class SharedSubscriptions:
    """Every shared group of this node, by ``$share/<group>/<filter>``."""

    def __init__(self, channels: ChannelService, groups: SharedGroups) -> None:
        self._channels = channels
        self.groups = groups
        self._groups: dict[str, SharedGroup] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._groups)

    def group(self, full_filter: str) -> SharedGroup | None:
        return self._groups.get(full_filter)

    async def join(self, state: SessionState, full_filter: str, topic_filter: str) -> None:
        """Make ``state`` a member (its ``shared`` entry set by the caller)."""
        group = self._groups.get(full_filter)
        if group is None:
            group = self._groups[full_filter] = SharedGroup(full_filter, topic_filter, self)
            await self._channels.subscribe(group, topic_filter)
        if state not in group.members:
            group.members.append(state)
            # After the engine subscription: this node is picked once it receives.
            self.groups.members(full_filter, len(group.members))

    async def leave(self, state: SessionState, full_filter: str) -> None:
        group = self._groups.get(full_filter)
        if group is not None and state in group.members:
            group.members.remove(state)
            self.groups.members(full_filter, len(group.members))
            if not group.members:
                self.emptied(group)

    async def leave_all(self, state: SessionState) -> None:
        """A session that ends leaves every group it is in."""
        for full_filter in list(state.shared):
            await self.leave(state, full_filter)

    def emptied(self, group: SharedGroup) -> None:
        """The group's last member left: unsubscribe it soon, in the background."""
        task = asyncio.get_running_loop().create_task(self._drop(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drop(self, group: SharedGroup) -> None:
        if self._groups.get(group.full_filter) is not group or group.members:
            return
        # Other nodes may pick this one until they learn it has no members:
        # what they pick meanwhile must still arrive here, to be handed back.
        await self.groups.left(group.full_filter)
        if self._groups.get(group.full_filter) is group and not group.members:
            del self._groups[group.full_filter]
            await self._channels.unsubscribe(group, group.topic_filter)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.groups.close()
