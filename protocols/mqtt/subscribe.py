"""SUBSCRIBE and UNSUBSCRIBE, plain and shared, and the server API's subscriptions."""

from __future__ import annotations

from collections.abc import Iterable

from hub.errors import ChannelError, EngineUnavailable
from protocols.mqtt.codec import SUBACK_FAILURE, Suback, Subscribe, Unsuback, Unsubscribe
from protocols.mqtt.connection import MqttConnection, logger
from protocols.mqtt.packets import NO_LOCAL, RETAIN_AS_PUBLISHED, RETAIN_HANDLING_SHIFT
from protocols.mqtt.reasons import ReasonCode
from protocols.mqtt.retain import send_retained
from protocols.mqtt.session import SessionState, SubscriptionOptions
from protocols.mqtt.shared import PREFIX as SHARED_PREFIX
from protocols.mqtt.shared import InvalidSharedFilter, parse_shared
from protocols.mqtt.v5 import refusal_reason


async def on_subscribe(conn: MqttConnection, packet: Subscribe) -> None:
    state = conn.state
    if state is None:
        return
    held = set(state.subscriptions)
    identifier = next(iter(packet.properties.subscription_identifiers), None)
    codes = [
        await _subscribe(conn, state, f, options, identifier) for f, options in packet.subscriptions
    ]
    granted = [
        (topic_filter, code)
        for (topic_filter, options), code in zip(packet.subscriptions, codes, strict=True)
        if code < 0x80
        and _sends_retained(options, topic_filter in held)
        # 4.8.2: no retained messages for a shared subscription.
        and not topic_filter.startswith(SHARED_PREFIX)
    ]
    try:
        # Read before the SUBACK: a store that cannot be read refuses the filter.
        retained = [(await conn.hub.retained.match(f), code) for f, code in granted]
        await conn.store.save_subscriptions(state)
    except EngineUnavailable:
        # Redis away (retained messages and sessions live there): refused, as a whole.
        await unsubscribe(conn, state, [f for f, _ in granted if f not in held])
        codes = [SUBACK_FAILURE] * len(codes)
        retained = []
    conn.send_packet(Suback(packet.packet_id, tuple(codes)))
    # MQTT-3.3.1-6: retained messages follow, with RETAIN set.
    for publications, code in retained:
        send_retained(state, publications, code)


async def _subscribe(
    conn: MqttConnection,
    state: SessionState,
    topic_filter: str,
    options: int,
    identifier: int | None = None,
) -> int:
    """Granted QoS, or a failure code (0x80; 5.0: its reason) when the filter is refused.

    ``options`` is the subscription options byte (3.1.1: the QoS alone).
    """
    v5 = conn.version == 5
    try:
        shared = parse_shared(topic_filter)
    except InvalidSharedFilter as exc:
        logger.info("MQTT session %s: subscribe refused: %s", conn.session.id, exc)
        return ReasonCode.TOPIC_FILTER_INVALID if v5 else SUBACK_FAILURE
    held = state.shared if shared is not None else state.subscriptions
    new = topic_filter not in held
    count = len(state.subscriptions) + len(state.shared)
    if new and count >= conn.hub.config.channels.max_subscriptions:
        return ReasonCode.QUOTA_EXCEEDED if v5 else SUBACK_FAILURE
    # Access rules and hooks judge the filter the messages come from.
    inner = topic_filter if shared is None else shared[1]
    try:
        await conn.channels.authorize_subscribe(conn.context, inner)
    except ChannelError as exc:
        logger.info("MQTT session %s: subscribe %r refused: %s", conn.session.id, topic_filter, exc)
        return refusal_reason(exc) if v5 else SUBACK_FAILURE
    granted = min(options & 0x03, conn.config.max_qos)
    # MQTT-3.8.4-3: the same filter again replaces the subscription (and its options).
    held[topic_filter] = granted
    extra = SubscriptionOptions(
        bool(options & NO_LOCAL), bool(options & RETAIN_AS_PUBLISHED), identifier
    )
    if extra != SubscriptionOptions():
        state.options[topic_filter] = extra
    else:
        state.options.pop(topic_filter, None)
    if new:
        if shared is None:
            await conn.channels.subscribe(state, topic_filter)
        else:
            await conn.shared().join(state, topic_filter, inner)
    return granted


def _sends_retained(options: int, existed: bool) -> bool:
    """3.8.3.1 Retain Handling: 0 always, 1 for a new subscription only, 2 never."""
    handling = options >> RETAIN_HANDLING_SHIFT
    return handling == 0 or (handling == 1 and not existed)


async def on_unsubscribe(conn: MqttConnection, packet: Unsubscribe) -> None:
    state = conn.state
    codes: tuple[int, ...] = ()
    if state is not None:
        if conn.version == 5:
            # 3.11.3: one reason per filter: 0x00, or 0x11 No subscription existed.
            codes = tuple(
                0
                if f in state.subscriptions or f in state.shared
                else ReasonCode.NO_SUBSCRIPTION_EXISTED
                for f in packet.filters
            )
        await unsubscribe(conn, state, packet.filters)
    elif conn.version == 5:
        codes = tuple(ReasonCode.NO_SUBSCRIPTION_EXISTED for _ in packet.filters)
    conn.send_packet(Unsuback(packet.packet_id, codes))


async def unsubscribe(conn: MqttConnection, state: SessionState, filters: Iterable[str]) -> None:
    changed = False
    for topic_filter in filters:
        if state.shared.pop(topic_filter, None) is not None:
            state.options.pop(topic_filter, None)
            await conn.shared().leave(state, topic_filter)
            changed = True
        elif state.subscriptions.pop(topic_filter, None) is not None:
            state.options.pop(topic_filter, None)
            changed = True
            await conn.channels.unsubscribe(state, topic_filter)
    if changed:
        try:
            await conn.store.save_subscriptions(state)
        except EngineUnavailable:
            # Done on this node; a move to another node before the next save
            # brings the filter back.
            logger.warning("MQTT session %s: unsubscribe not stored", conn.session.id)


async def refuse_subscribe(conn: MqttConnection, packet: Subscribe) -> None:
    """Over the message rate: every filter refused (0x80; 5.0: Quota exceeded)."""
    code = ReasonCode.QUOTA_EXCEEDED if conn.version == 5 else SUBACK_FAILURE
    conn.send_packet(Suback(packet.packet_id, tuple(code for _ in packet.subscriptions)))


# -- server-side subscriptions (server API subscribe/unsubscribe) -----------------


async def server_subscribe(conn: MqttConnection, channel: str) -> bool:
    """Add a subscription for the server; the client gets PUBLISH packets for it.

    MQTT has no packet telling a client of a subscription it did not ask for,
    but a client takes any PUBLISH: the session's default QoS is granted. No
    policy or hook applies; the per-session limit does. The session keeps it.
    """
    state = conn.state
    if state is None:
        return False
    if channel in state.subscriptions:
        return True
    if len(state.subscriptions) >= conn.hub.config.channels.max_subscriptions:
        return False
    state.subscriptions[channel] = min(conn.config.default_qos, conn.config.max_qos)
    await conn.channels.subscribe(state, channel)
    try:
        await conn.store.save_subscriptions(state)
    except EngineUnavailable:
        logger.warning("MQTT session %s: server subscribe not stored", conn.session.id)
    return True


async def server_unsubscribe(conn: MqttConnection, channel: str) -> bool:
    state = conn.state
    if state is None or channel not in state.subscriptions:
        return False
    await unsubscribe(conn, state, [channel])
    return True
