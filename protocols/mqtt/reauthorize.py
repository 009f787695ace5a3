"""A resumed MQTT session's subscriptions, authorized again for the connection resuming it.

A ``clean_session = 0`` session outlives its connection, and the next CONNECT
with its client id gets it back, subscriptions and queued messages included.
That CONNECT may come from another user (client ids are often guessable), or
from the same user with fewer rights: each kept filter goes through the
channel policy again, and a refused one is dropped with the messages waiting
for it, so a session never carries rights its new holder does not have.
"""

from __future__ import annotations

import logging

from hub.channels import ChannelService
from hub.engine.topics import matches
from hub.errors import ChannelError
from hub.rpc import CallContext
from protocols.mqtt.codec import MAX_PACKET_SIZE, MqttProtocolError, PacketReader, Publish
from protocols.mqtt.session import Awaiting, SessionState

logger = logging.getLogger(__name__)


async def reauthorize(channels: ChannelService, ctx: CallContext, state: SessionState) -> list[str]:
    """Drop the filters ``ctx`` may not hold, and what was waiting for them; return those."""
    refused = []
    for topic_filter in list(state.subscriptions):
        try:
            await channels.authorize_subscribe(ctx, topic_filter)
        except ChannelError as exc:
            logger.info(
                "MQTT session %r: kept subscription %r dropped on resume: %s",
                state.client_id,
                topic_filter,
                exc,
            )
            refused.append(topic_filter)
    if not refused:
        return refused
    # Synchronously: no delivery for a dropped filter can slip in between.
    for topic_filter in refused:
        state.subscriptions.pop(topic_filter, None)
    _prune(state)
    for topic_filter in refused:
        await channels.unsubscribe(state, topic_filter)
    return refused


def _wanted(state: SessionState, channel: str) -> bool:
    return any(matches(topic_filter, channel) for topic_filter in state.subscriptions)


def _prune(state: SessionState) -> None:
    """Forget queued and unacknowledged messages no remaining filter matches."""
    state.forget_queued(lambda queued: _wanted(state, queued.publication.channel))
    for packet_id, entry in list(state.inflight.items()):
        # Past PUBREC the client has the message; only PUBREL remains to send.
        if entry.awaiting is Awaiting.PUBCOMP:
            continue
        try:
            (packet,) = PacketReader(MAX_PACKET_SIZE).feed(entry.frame)
        except (MqttProtocolError, ValueError):  # pragma: no cover - our own frame
            continue
        if isinstance(packet, Publish) and not _wanted(state, packet.topic):
            state.forget(packet_id)
