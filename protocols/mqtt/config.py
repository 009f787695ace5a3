"""``[mqtt]``: the MQTT protocol's section of the config file (docs/mqtt.md).

Its model travels with the protocol's spec (``PROTOCOL.config``), so the hub
validates ``[mqtt]`` without knowing MQTT; handlers read it as
``hub.config.section(MqttConfig)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hub.config_section import AccessRule, FilePath, Section
from hub.engine.topics import InvalidChannel, validate_pattern

SECTION = "mqtt"


class MqttBridgeTopic(Section):
    """One topic rule of the bridge, as in Mosquitto's ``topic`` line.

    The hub side sees ``local_prefix + filter``, the broker ``remote_prefix +
    filter``; a topic keeps its part after the prefix when it crosses over.
    """

    filter: str
    direction: Literal["in", "out", "both"] = "both"
    local_prefix: str = ""
    remote_prefix: str = ""
    qos: int = Field(1, ge=0, le=2)

    @field_validator("filter")
    @classmethod
    def _valid_filter(cls, value: str) -> str:
        try:
            validate_pattern(value, max_length=65535)
        except InvalidChannel as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("local_prefix", "remote_prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        if "+" in value or "#" in value:
            raise ValueError(f"a prefix cannot hold wildcards, got {value!r}")
        return value


class MqttBridgeConfig(Section):
    # mqtt://[user:password@]host[:1883] or mqtts://...[:8883]
    url: str
    # Empty: "wshub-bridge-<node id>".
    client_id: str = ""
    clean_session: bool = True
    keepalive: int = Field(60, ge=1, le=65535)
    # "3.1.1", or "5" where the broker speaks it: echoes are then avoided with
    # the no-local subscription option instead of remembering what was sent.
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    topics: list[MqttBridgeTopic] = []
    # QoS 1/2 messages bound for the broker kept while it is unreachable; the
    # oldest is dropped when full.
    queue_size: int = Field(1000, ge=1)
    reconnect_min_delay: float = Field(0.5, gt=0)
    reconnect_max_delay: float = Field(30.0, gt=0)
    # mqtts: CA bundle (default: the system's), client certificate and key.
    ca_file: FilePath | None = None
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    tls_insecure: bool = False

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        if not url.startswith(("mqtt://", "mqtts://")):
            raise ValueError(f"bridge url must start with mqtt:// or mqtts://, got {url!r}")
        return url


class MqttListenerConfig(Section):
    """A TCP listener for MQTT devices (mqtt://, or mqtts:// with certificate files).

    The same handler, sessions, limits, authentication and access rules as
    MQTT over WebSocket: a transport, not a second broker.
    """

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=0, le=65535)
    # Both set: TLS (mqtts, usually port 8883); PEM files, the chain after the leaf.
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    # Set (with TLS): clients must present a certificate this CA signed (mutual
    # TLS); its common name is the client's identity, as a handshake login.
    ca_file: FilePath | None = None
    min_version: Literal["1.2", "1.3"] = "1.2"
    # TCP_NODELAY on each client socket: every packet leaves at once. False
    # keeps Nagle's algorithm (Mosquitto's default, its set_tcp_nodelay false):
    # small packets to a client that has not acknowledged the last are sent
    # together, for less CPU per message and up to ~40 ms more latency.
    nodelay: bool = True

    @model_validator(mode="after")
    def _tls_files(self) -> MqttListenerConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (TLS)")
        if self.ca_file is not None and self.cert_file is None:
            raise ValueError("ca_file (client certificates) needs cert_file and key_file")
        return self


class MqttConfig(Section):
    # CONNECT without a username (and no identity from the handshake); unset
    # follows auth.allow_anonymous. A username and password are checked against
    # [auth.basic], then as a JWT ([auth.jwt]), then by @hub.on_authenticate.
    allow_anonymous: bool | None = None
    # Seconds a client has to send CONNECT after the WebSocket opens.
    connect_timeout: float = Field(10.0, gt=0)
    # Largest MQTT packet, counted whole (fixed header included: MQTT 5.0's Maximum
    # Packet Size, announced in CONNACK), which may span WebSocket frames.
    max_packet_size: int = Field(1024 * 1024, gt=0, le=268_435_455)
    # Highest QoS granted to a subscription.
    max_qos: int = Field(2, ge=0, le=2)
    # QoS of publications that carry none (channels.v1, WAMP, hub.publish).
    default_qos: int = Field(1, ge=0, le=2)
    # QoS 1/2 messages sent to a client and not yet acknowledged, per session.
    max_inflight: int = Field(20, ge=1, le=65535)
    # QoS 1/2 messages waiting for a session (offline, or inflight window full);
    # the oldest is dropped when full.
    max_queued_messages: int = Field(1000, ge=1)
    # Bytes of payload in that queue, per session; the oldest is dropped past it.
    max_queued_bytes: int = Field(1024 * 1024, ge=1)
    # Seconds an offline clean_session=0 session is kept (one day, as EMQX's
    # and HiveMQ's order of magnitude); unset keeps it forever. Also the cap on
    # an MQTT 5 client's Session Expiry Interval.
    session_expiry: float | None = Field(86_400.0, gt=0)
    # Offline persistent sessions kept at most; past it the one offline the
    # longest is dropped.
    max_offline_sessions: int = Field(1000, ge=1)
    # MQTT 5: topic aliases a client may set up towards the hub (CONNACK Topic
    # Alias Maximum); 0 refuses aliases.
    topic_alias_maximum: int = Field(10, ge=0, le=65535)
    # MQTT 5: the longest keepalive the hub accepts, in seconds; a client asking
    # more (or 0) gets this one in CONNACK (Server Keep Alive). Unset: any.
    max_keepalive: int | None = Field(None, ge=1, le=65535)
    # Channels holding a retained message, at most, and their payload bytes in
    # all; past either a new retained message is refused (not stored).
    max_retained: int = Field(100_000, ge=0)
    max_retained_bytes: int = Field(64 * 1024 * 1024, ge=0)
    # Seconds a retained message is kept; unset keeps it until replaced.
    retained_expiry: float | None = Field(None, gt=0)
    # Who may CONNECT with a client id whose session (connected or kept) is
    # another user's, and so take it over. Unset: nobody; only the session's
    # own user (anonymous sessions: anonymous clients) may, others get CONNACK 2.
    takeover_access: AccessRule | None = None
    bridge: MqttBridgeConfig | None = None
    # Seconds between $SYS/broker/... statistics (retained); 0 publishes none.
    sys_interval: float = Field(10.0, ge=0)
    # TCP/TLS listeners for devices ([[mqtt.listeners]] tables); none by default.
    listeners: list[MqttListenerConfig] = []

    def with_base_dir(self, base: Path) -> MqttConfig:
        # The bridge's certificate files are relative to the config file.
        bridge = self.bridge
        if bridge is None:
            return self
        files = {
            key: path if path.is_absolute() else (base / path).resolve()
            for key in ("ca_file", "cert_file", "key_file")
            if (path := getattr(bridge, key)) is not None
        }
        return self.model_copy(update={"bridge": bridge.model_copy(update=files)})
