"""MQTT 3.1.1 and 5.0 over WebSocket: pure codecs (codec, codec5, properties, packets,
topics), connection handler, bridge.

Negotiated as ``mqtt`` (``mqttv3.1`` for MQTT 3.1 clients). MQTT clients rely
on MQTT keepalive, not WebSocket pings (paho answers pings with unmasked pongs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.handler import ProtocolSpec
from hub.lazy import lazy_exports
from protocols.mqtt.config import SECTION, MqttConfig

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.handler import Session, SubprotocolHandler
    from protocols.mqtt.handler import MqttHandler

_LAZY = {"MqttHandler": "protocols.mqtt.handler"}

BRIDGE_SERVICE_NAME = "mqtt.bridge"


def setup(hub: Hub) -> None:
    """Register MQTT's hub services: sessions, delayed wills, and the bridge and TCP/TLS
    listeners if configured."""
    # Here, not at the top: the codec imports without the server.
    from protocols.mqtt.shared import SERVICE_NAME as SHARED_SERVICE_NAME
    from protocols.mqtt.shared import SharedSubscriptions
    from protocols.mqtt.shared_store import session_store
    from protocols.mqtt.store import SERVICE_NAME
    from protocols.mqtt.sys_topics import SERVICE_NAME as SYS_SERVICE_NAME
    from protocols.mqtt.sys_topics import SysTopics
    from protocols.mqtt.wills import SERVICE_NAME as WILLS_SERVICE_NAME
    from protocols.mqtt.wills import DelayedWills

    config = hub.config.section(MqttConfig)
    # Retained messages are MQTT's: it sizes the hub's store, kept where the backend keeps its.
    hub.open_retained(
        config.max_retained, max_bytes=config.max_retained_bytes, expiry=config.retained_expiry
    )
    hub.services.add(SERVICE_NAME, session_store(hub))
    hub.services.add(WILLS_SERVICE_NAME, DelayedWills())
    shared = SharedSubscriptions(hub.channels, hub.backend.shared_groups())
    hub.services.add(SHARED_SERVICE_NAME, shared)
    hub.services.add(SYS_SERVICE_NAME, SysTopics(hub, config.sys_interval))
    if config.bridge is not None:
        from protocols.mqtt.bridge import MqttBridge

        hub.services.add(BRIDGE_SERVICE_NAME, MqttBridge(hub, config.bridge))
    if config.listeners:
        from protocols.mqtt.listener import SERVICE_NAME as LISTENERS_SERVICE_NAME
        from protocols.mqtt.listener import MqttListeners

        hub.services.add(LISTENERS_SERVICE_NAME, MqttListeners(hub, config.listeners))


def _handler(session: Session, hub: Hub) -> SubprotocolHandler:
    from protocols.mqtt.handler import MqttHandler

    return MqttHandler(session, hub)


PROTOCOL = ProtocolSpec(
    name="mqtt",
    aliases=("mqttv3.1",),
    factory=_handler,
    websocket_pings=False,
    logs_in=True,
    setup=setup,
    config=MqttConfig,
    config_section=SECTION,
    handler_modules=("protocols.mqtt.handler",),
)


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["BRIDGE_SERVICE_NAME", "PROTOCOL", "MqttHandler", "setup"]
