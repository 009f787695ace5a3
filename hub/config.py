"""Configuration: pydantic models and the TOML/YAML loader.

Every model forbids unknown keys and validates strictly (TOML and YAML values
carry their type: ``port = "8800"`` or ``compression = "no"`` is a mistake, not
something to coerce; an integer is accepted where a number is expected), so a
typo in ``hub.toml`` fails at start with the file, the key path and what was
expected (hub.config_errors), never with a traceback.

The core's sections are here; a protocol's (``[mqtt]``, ``[wamp]``, a
plug-in's) is the model its ``ProtocolSpec`` carries, added to :data:`HubConfig`
from the registered specs, so the core knows no protocol's settings.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import (
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from hub.config_errors import describe
from hub.config_section import AccessRule, FilePath, Section
from hub.engine.memory.config import MemoryEngineConfig
from hub.engine.select import EngineConfig
from hub.errors import HubError
from hub.hosts import valid_entry
from hub.proxies import parse_network
from hub.registry import builtin_protocols, entry_point_protocols

if TYPE_CHECKING:
    from hub.handler import ProtocolSpec

_SectionT = TypeVar("_SectionT", bound=Section)


class TlsConfig(Section):
    """wss:// on the hub's port. SIGHUP reloads both files without a restart."""

    # PEM files; the certificate file may hold the chain after the leaf.
    cert_file: FilePath
    key_file: FilePath
    min_version: Literal["1.2", "1.3"] = "1.2"


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    default_subprotocol: str = "jsonrpc.2.0"
    # Canonical names of the protocols served; empty means every built-in one.
    # A third-party protocol (wshub.protocols entry point) is served only when
    # named here (docs/plugins.md).
    subprotocols: list[str] = []
    # Pin a protocol to a URL path: {"mqtt" = "/mqtt"}. Unpinned protocols are
    # accepted on any path.
    paths: dict[str, str] = {}
    # Directory served for plain HTTP GETs; unset serves the bundled chat demo.
    static_dir: FilePath | None = None
    # Unset: plain ws://. Set: wss:// only.
    tls: TlsConfig | None = None
    # Browser origins allowed to open a WebSocket ("https://app.example.com",
    # "https://*.example.com" for its subdomains, "*" for every origin); others
    # get HTTP 403. Empty allows same-origin pages only (Origin naming the Host
    # the request went to). Clients that send no Origin header (non-browsers)
    # are not affected.
    allowed_origins: list[str] = []
    # Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For names
    # the client: its address then counts for limits.max_connections_per_ip,
    # logs and hooks. Headers from any other peer are ignored (hub.proxies).
    trusted_proxies: list[str] = []
    # Host names the hub answers (DNS rebinding defence, hub.hosts): names,
    # "*.example.com" for subdomains, "*" for any. Loopback names (localhost,
    # 127.0.0.1, [::1], any port) always pass. Empty: a hub bound to a loopback
    # address answers loopback names only; one bound elsewhere answers any.
    allowed_hosts: list[str] = []
    # Who may GET /metrics (credentials as at the handshake: Bearer, Basic,
    # ?token=, cookie). Unset: everyone when auth.allow_anonymous, else any
    # authenticated user.
    metrics_access: AccessRule | None = None

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if not valid_entry(entry):
                raise ValueError(
                    f"{entry!r} is not a host name, IP address, '*.domain' or '*' "
                    "(no scheme, no port)"
                )
        return entries

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                parse_network(entry)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network: {exc}") from None
        return entries

    @field_validator("paths")
    @classmethod
    def _paths_are_absolute(cls, paths: dict[str, str]) -> dict[str, str]:
        for protocol, path in paths.items():
            if not path.startswith("/"):
                raise ValueError(f"path for {protocol!r} must start with '/', got {path!r}")
        return paths


class WebSocketConfig(Section):
    # permessage-deflate; window bits and memory level trade ratio for RAM per
    # connection (see websockets' memory guide). 10 and 1 keep an idle
    # connection under 32 KiB (websockets' 12 and 5: ~46 KiB) and compress
    # small JSON messages as well; docs/benchmarks.md has the figures.
    compression: bool = True
    compression_window_bits: int = Field(10, ge=9, le=15)
    compression_memory_level: int = Field(1, ge=1, le=9)
    ping_interval: float | None = Field(20.0, gt=0)
    ping_timeout: float | None = Field(20.0, gt=0)
    open_timeout: float = Field(10.0, gt=0)
    close_timeout: float = Field(5.0, gt=0)
    max_message_size: int = Field(1024 * 1024, gt=0)


class LimitsConfig(Section):
    # Bytes a connection may have waiting in its outbound buffer before it is
    # closed as a slow consumer.
    max_outbound_bytes: int = Field(4 * 1024 * 1024, gt=0)
    # Requests of one connection running at the same time.
    max_concurrent_requests: int = Field(64, gt=0)
    # WebSocket connections (from the upgrade request until the TCP connection
    # closes), in all and from one client IP address (IPv6: one /64); more are
    # refused at the handshake with HTTP 503 and Retry-After.
    max_connections: int = Field(10_000, gt=0)
    max_connections_per_ip: int = Field(1_000, gt=0)
    # New connections per second from one client address (IPv6: one /64), a
    # token bucket holding at most connection_burst_per_ip, counted at the
    # WebSocket upgrade, a plain HTTP request (not /healthz from loopback),
    # the MQTT TCP accept and a fallback session's open.
    # Over it: HTTP 429 with Retry-After (MQTT: CONNACK 0x9F / 3), after the
    # socket is held a second. 0 turns it off. See docs/security.md.
    connection_rate_per_ip: float = Field(50.0, ge=0)
    connection_burst_per_ip: int = Field(200, gt=0)
    # Largest message per protocol once negotiated, by name ("mqtt" = 262144);
    # a protocol not named here keeps websocket.max_message_size, which also
    # bounds everything before negotiation. Over it: close 1009.
    max_message_size: dict[str, int] = {}
    # Inbound messages per connection: a token bucket refilled at message_rate
    # per second, holding at most message_burst. A message over the rate gets
    # its protocol's error; a connection that keeps sending (message_burst more
    # refused messages before its bucket is full again) is closed with 1008.
    message_rate: float = Field(1000.0, gt=0)
    message_burst: int = Field(2000, gt=0)
    # Tokens a new connection starts with (and refusals it may collect before
    # it is closed), growing at message_rate to message_burst with its age:
    # a connection opened only to flood costs ~2 x opening_burst units, not
    # 2 x message_burst. Larger than message_burst counts as message_burst.
    opening_burst: int = Field(200, gt=0)
    # Requests in one JSON-RPC / channels.v1 batch; a larger batch is refused
    # whole with one -32600 error. Every element (and every MQTT packet of a
    # message) takes its own token of message_rate and its own slot of
    # max_concurrent_requests.
    max_batch_size: int = Field(100, gt=0)
    # Nesting of arrays and objects in an inbound JSON-RPC / channels.v1
    # message or WAMP message (any serializer); deeper is refused with the
    # protocol's error. At most 200: replies wrap values in a few more levels
    # and the JSON encoder stops at 254.
    max_json_depth: int = Field(64, ge=4, le=200)
    # Invalid JSON-RPC / channels.v1 messages (parse errors, invalid requests,
    # JSON nested too deep, binary frames; each batch element counts) one
    # connection may send: a token bucket holding invalid_message_burst,
    # refilled at invalid_message_rate per second. Each gets its error; the
    # one past the budget is also closed with 1008 "too many invalid
    # messages". 0 turns it off.
    invalid_message_burst: int = Field(10, ge=0)
    invalid_message_rate: float = Field(1.0, gt=0)

    @field_validator("max_message_size")
    @classmethod
    def _positive_sizes(cls, sizes: dict[str, int]) -> dict[str, int]:
        for protocol, size in sizes.items():
            if size <= 0:
                raise ValueError(f"max_message_size for {protocol!r} must be positive")
        return sizes


class JwtConfig(Section):
    """Bearer tokens (JWT), checked with PyJWT."""

    algorithms: list[
        Literal[
            "HS256",
            "HS384",
            "HS512",
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "PS384",
            "PS512",
            "ES256",
            "ES384",
            "ES512",
            "EdDSA",
        ]
    ] = ["HS256"]
    # HS*: the shared secret, inline or in a file (preferred: keeps it out of
    # the config). RS*/ES*/PS*/EdDSA: a PEM public key file, or a JWKS file
    # whose key is picked by the token's "kid".
    secret: str | None = None
    secret_file: FilePath | None = None
    public_key_file: FilePath | None = None
    jwks_file: FilePath | None = None
    # Checked when set.
    audience: str | None = None
    issuer: str | None = None
    # Seconds of clock skew tolerated on exp/nbf/iat.
    leeway: float = Field(0.0, ge=0)
    # Tokens without "exp" are refused unless this is false.
    require_exp: bool = True
    # The claim naming the user.
    user_claim: str = "sub"
    # Where the handshake looks for a token, besides "Authorization: Bearer":
    # a query parameter (browsers cannot set headers on WebSocket) and a cookie.
    query_param: str | None = "token"
    cookie: str | None = None

    @model_validator(mode="after")
    def _keys_for_algorithms(self) -> JwtConfig:
        # A family of algorithms without its key would refuse every token at
        # run time; say so at load time instead.
        if self.secret is not None and self.secret_file is not None:
            raise ValueError("set secret or secret_file, not both")
        symmetric = [alg for alg in self.algorithms if alg.startswith("HS")]
        asymmetric = [alg for alg in self.algorithms if not alg.startswith("HS")]
        if symmetric and self.secret is None and self.secret_file is None:
            raise ValueError(f"{', '.join(symmetric)} need secret or secret_file")
        if asymmetric and self.public_key_file is None and self.jwks_file is None:
            raise ValueError(f"{', '.join(asymmetric)} need public_key_file or jwks_file")
        return self


class BasicAuthConfig(Section):
    """HTTP Basic at the handshake (and MQTT / WAMP ticket passwords) against a user table."""

    # user -> password hash, made with `wshub hash-password` (argon2id).
    users: dict[str, str] = {}
    # A file of "user:hash" lines ("#" comments and blank lines skipped), read
    # at start and on SIGHUP; a user may not be both here and in `users`.
    users_file: FilePath | None = None
    # Named in the WWW-Authenticate challenge of a refused handshake.
    realm: str = "wshub"

    @field_validator("users")
    @classmethod
    def _hashed_passwords(cls, users: dict[str, str]) -> dict[str, str]:
        # A plain password here would be a leak waiting to happen: refuse it.
        for user, hashed in users.items():
            if not user or ":" in user:
                raise ValueError(f"user name {user!r} must be non-empty and without ':'")
            if not hashed.startswith("$argon2"):
                raise ValueError(
                    f"password of {user!r} is not an argon2 hash (make one with "
                    "`wshub hash-password`)"
                )
        return users


class AuthConfig(Section):
    # Sessions without credentials. False: a handshake without them is refused
    # with 401, except on protocols that log in after it (MQTT CONNECT, WAMP
    # HELLO), where an anonymous login is refused instead (CONNACK 5, ABORT
    # wamp.error.no_auth_method). Credentials presented but not valid are
    # refused (401) whatever this says.
    allow_anonymous: bool = True
    jwt: JwtConfig | None = None
    basic: BasicAuthConfig | None = None


class RpcConfig(Section):
    # Modules imported at start; their @rpc functions are served.
    modules: list[str] = []
    # Extra import roots for those modules (relative paths are relative to the
    # config file).
    paths: list[FilePath] = []
    # Default timeout of server-to-client calls, in seconds.
    call_timeout: float = Field(30.0, gt=0)
    # Who may call which method, for hub methods and WAMP procedures alike:
    # keys are method names or globs ("admin.*": * matches any run of
    # characters, dots included); an exact name wins, else the longest
    # matching glob; methods no key matches are open to all (hub/access.py).
    permissions: dict[str, AccessRule] = {}
    # Who may register WAMP procedures (become a callee).
    register_access: AccessRule = AccessRule()


class NamespaceConfig(Section):
    """Channel options for every channel under one prefix."""

    # Whether clients may subscribe / publish (server-side hub.publish always may).
    allow_subscribe: bool = True
    allow_publish: bool = True
    # Presence queries and joining the presence set.
    presence: bool = True
    # join/leave notifications to subscribers.
    join_leave: bool = True
    # Recent publications kept for history and recovery; 0 turns history off.
    history_size: int = Field(100, ge=0)
    history_ttl: float = Field(300.0, gt=0)
    # Include the publisher's {user, client} in messages.
    publisher_info: bool = False
    # Largest payload a client may publish, in bytes of JSON.
    max_payload_bytes: int = Field(64 * 1024, gt=0)
    # Who may do what in the namespace, beyond allow_* and the hooks; a denied
    # action gets its protocol's "not authorized" error (docs/security.md).
    # Unset rules follow subscribe_access, so closing a namespace to readers
    # closes its history, presence and publishing too; unset subscribe_access
    # admits everyone. An explicit {} opens one action again.
    subscribe_access: AccessRule | None = None
    publish_access: AccessRule | None = None
    presence_access: AccessRule | None = None
    history_access: AccessRule | None = None


class ChannelsConfig(Section):
    default: NamespaceConfig = NamespaceConfig()
    # Key: a channel prefix on a level boundary ("chat" covers "chat" and
    # "chat/room1"); the longest matching prefix wins.
    namespaces: dict[str, NamespaceConfig] = {}
    max_channel_length: int = Field(255, gt=0)
    max_subscriptions: int = Field(256, gt=0)
    # Bytes of publications in one history reply (and in a recovering
    # subscribe's); what does not fit is left out (history: "truncated",
    # recovery: "recovered" false). The connection's free outbound budget
    # (limits.max_outbound_bytes) bounds it further.
    max_history_reply_bytes: int = Field(1024 * 1024, gt=0)
    # Bytes of JSON in a presence member's "info", checked at join.
    max_presence_info_bytes: int = Field(4096, ge=0)


class ApiConfig(Section):
    """The server API: HTTP JSON for backends (docs/api.md), on a listener of its own.

    Off unless a key is configured: the API is never open without one.
    """

    # The API's listener (aiohttp); websockets' server on the hub's port
    # refuses request bodies, so the API cannot share it.
    host: str = "127.0.0.1"
    port: int = Field(8766, ge=0, le=65535)
    # Keys accepted in "Authorization: apikey <key>", inline or one per line
    # in a file ("#" comments and blank lines skipped) re-read on SIGHUP.
    keys: list[str] = []
    keys_file: FilePath | None = None
    # Largest request body; over it: HTTP 413.
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    # Commands in one batch request.
    max_batch: int = Field(100, gt=0)
    # A publish repeating an idempotency_key within this many seconds is not
    # published again: it gets the first one's result. At most
    # idempotency_max_keys keys are remembered (the oldest forgotten first).
    idempotency_window: float = Field(300.0, gt=0)
    idempotency_max_keys: int = Field(100_000, gt=0)
    # With the Redis engine, a revocation is kept there this many seconds, so
    # nodes started later refuse the revoked tokens too: set it to at least
    # the longest life of the tokens you issue.
    revocation_ttl: float = Field(7 * 86_400.0, gt=0)
    # Seconds a cluster-wide answer (info, channels) waits for other nodes.
    gather_timeout: float = Field(1.0, gt=0)

    @field_validator("keys")
    @classmethod
    def _real_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if len(key) < 16 or any(c.isspace() for c in key):
                raise ValueError("an API key needs at least 16 characters and no whitespace")
        return keys

    @property
    def enabled(self) -> bool:
        return bool(self.keys) or self.keys_file is not None


class ProxyEndpoint(Section):
    """An HTTP endpoint of the user's backend that decides one kind of event (docs/proxy.md)."""

    # http:// or https:// URL the hub POSTs the event to, as JSON.
    url: str
    # Seconds for the whole exchange; past it the client gets "backend unavailable".
    timeout: float = Field(5.0, gt=0)
    # Handshake headers passed on to the backend ("Cookie", "X-Real-Ip"...).
    headers: list[str] = []

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a proxy url must start with http:// or https://, got {url!r}")
        return url


class RpcProxyEndpoint(ProxyEndpoint):
    # Method globs the backend serves ("billing.*"; * matches dots too); a
    # method of the hub's own table of that name wins.
    methods: list[str] = Field(min_length=1)


class ProxyConfig(Section):
    """Events the hub asks the backend about (docs/proxy.md)."""

    connect: ProxyEndpoint | None = None
    subscribe: ProxyEndpoint | None = None
    publish: ProxyEndpoint | None = None
    rpc: RpcProxyEndpoint | None = None
    # Asked when a session's identity expires: the backend may extend it.
    refresh: ProxyEndpoint | None = None
    # Requests to the backend open at once (one pool for every endpoint);
    # more wait for a free connection, within their timeout.
    max_connections: int = Field(64, gt=0)

    @property
    def enabled(self) -> bool:
        return any((self.connect, self.subscribe, self.publish, self.rpc, self.refresh))


WebhookEvent = Literal[
    "connect", "disconnect", "join", "leave", "channel_occupied", "channel_vacated", "publish"
]


class WebhooksConfig(Section):
    """Events POSTed to the backend, signed, in order per channel (docs/webhooks.md)."""

    # Every URL gets every event; none: webhooks off.
    urls: list[str] = []
    events: list[WebhookEvent] = ["join", "leave", "channel_occupied", "channel_vacated"]
    # The HMAC-SHA256 key of the X-Wshub-Signature header, inline or in a file.
    secret: str | None = None
    secret_file: FilePath | None = None
    # Seconds for one delivery attempt.
    timeout: float = Field(5.0, gt=0)
    # Attempts per event (the first included); then it is dropped and counted.
    max_attempts: int = Field(5, ge=1)
    retry_min_delay: float = Field(0.5, gt=0)
    retry_max_delay: float = Field(30.0, gt=0)
    # Events waiting per URL; past it new events are dropped and counted.
    max_queue: int = Field(10_000, gt=0)
    # Deliveries in flight per URL: channels are spread over this many ordered lanes.
    lanes: int = Field(8, ge=1, le=256)

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"a webhook url must start with http:// or https://, got {url!r}")
        return urls

    @model_validator(mode="after")
    def _signed(self) -> WebhooksConfig:
        if self.urls and (self.secret is None) == (self.secret_file is None):
            raise ValueError("webhooks need secret or secret_file (one of them)")
        return self


class FallbackConfig(Section):
    """HTTP fallback transports (docs/fallback.md): SSE + POST sessions for browsers
    whose network breaks WebSocket, and SSE / NDJSON streams for clients without an SDK.

    Off unless enabled. A listener of its own (aiohttp): the hub's WebSocket
    port reads no request bodies and cannot stream, and the API's listener is
    private (backends, API keys) while this one faces browsers.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8767, ge=0, le=65535)
    # Fallback sessions (both kinds) open at once on this node; they also count
    # against limits.max_connections and max_connections_per_ip.
    max_sessions: int = Field(10_000, gt=0)
    # A bidirectional session without a POST for this long is closed (the
    # client keeps it alive with an empty POST); a stream is also closed when
    # a keep-alive cannot be written.
    idle_timeout: float = Field(60.0, gt=0)
    # Seconds between keep-alives written on an idle stream (SSE comment,
    # NDJSON empty line), so proxies keep it open and dead peers are found.
    ping_interval: float = Field(15.0, gt=0)
    # Messages waiting to be written to one stream; over it (or over
    # limits.max_outbound_bytes) the session is closed as a slow consumer.
    max_queue_messages: int = Field(10_000, gt=0)
    # Messages in one POST, and POSTed messages waiting to be handled.
    max_post_messages: int = Field(100, gt=0)
    max_inbound_messages: int = Field(1_000, gt=0)
    # Seconds a POST that reached another node waits for the session's node.
    forward_timeout: float = Field(5.0, gt=0)


class AdminConfig(BasicAuthConfig):
    """The admin web page (docs/admin.md) at ``/admin`` on the server API's listener.

    Off unless enabled, and behind credentials of its own (HTTP Basic against
    these users, never the clients' or the API keys).
    """

    enabled: bool = False
    realm: str = "wshub admin"

    @model_validator(mode="after")
    def _has_users(self) -> AdminConfig:
        if self.enabled and not self.users and self.users_file is None:
            raise ValueError("the admin page needs users (or users_file) when enabled")
        return self


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class CoreConfig(Section):
    """The core's sections. :data:`HubConfig` adds one per protocol with a config model."""

    server: ServerConfig = ServerConfig()
    websocket: WebSocketConfig = WebSocketConfig()
    limits: LimitsConfig = LimitsConfig()
    auth: AuthConfig = AuthConfig()
    rpc: RpcConfig = RpcConfig()
    channels: ChannelsConfig = ChannelsConfig()
    engine: EngineConfig = MemoryEngineConfig()
    api: ApiConfig = ApiConfig()
    proxy: ProxyConfig = ProxyConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    fallback: FallbackConfig = FallbackConfig()
    admin: AdminConfig = AdminConfig()
    logging: LoggingConfig = LoggingConfig()

    # The protocols' sections this class holds: model -> table name.
    protocol_sections: ClassVar[Mapping[type[Section], str]] = {}

    def section(self, model: type[_SectionT]) -> _SectionT:
        """A protocol's section (``hub.config.section(MqttConfig)``): as configured, or the
        model's defaults when this config was validated without it (a plug-in handed to
        ``Hub(registry=...)`` only)."""
        name = self.protocol_sections.get(model)
        value = getattr(self, name) if name is not None else None
        return value if isinstance(value, model) else model()

    @classmethod
    def with_protocols(cls, specs: Iterable[ProtocolSpec]) -> type[CoreConfig]:
        """This config class plus the sections of ``specs`` that have a config model."""
        sections = dict(cls.protocol_sections)
        for spec in specs:
            if spec.config is None or spec.config_section is None or spec.config in sections:
                continue
            name = spec.config_section
            if name in cls.model_fields or name in sections.values():
                raise ValueError(f"protocol {spec.name}: the config already has a [{name}] table")
            sections[spec.config] = name
        if len(sections) == len(cls.protocol_sections):
            return cls
        return _config_class(cls, tuple(sections.items()))


@functools.cache
def _config_class(
    base: type[CoreConfig], sections: tuple[tuple[type[Section], str], ...]
) -> type[CoreConfig]:
    fields: dict[str, Any] = {
        name: (model, Field(default_factory=model)) if _has_defaults(model) else (model, ...)
        for model, name in sections
        if name not in base.model_fields
    }
    model = create_model("HubConfig", __base__=base, __module__=__name__, **fields)
    model.__doc__ = "The config file: the core's sections and the protocols' tables."
    model.protocol_sections = dict(sections)
    return model


def _has_defaults(model: type[Section]) -> bool:
    # A section with a required key is required itself: "[echo]: required key is missing".
    return all(not field.is_required() for field in model.model_fields.values())


_BUILTINS = builtin_protocols()
_BUILTIN_NAMES = frozenset(wire for spec in _BUILTINS for wire in spec.wire_names)

# The core's sections and the built-in protocols' ([mqtt], [wamp]): what
# HubConfig() and HubConfig.model_validate() accept. A plug-in's section joins
# when the plug-in is named in server.subprotocols (parse_config).
if TYPE_CHECKING:
    HubConfig = CoreConfig
else:
    HubConfig = CoreConfig.with_protocols(_BUILTINS)


class ConfigError(HubError):
    """A configuration file that cannot be used; the message says why, for humans."""


def load_config(path: str | Path, *, protocols: Iterable[ProtocolSpec] = ()) -> HubConfig:
    """Read a TOML (or YAML) file into a :class:`HubConfig`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    data = _parse(path, raw)
    config = parse_config(data, source=str(path), protocols=protocols)
    return _resolve_relative_paths(config, path.parent)


def parse_config(
    data: Any, source: str = "<config>", *, protocols: Iterable[ProtocolSpec] = ()
) -> HubConfig:
    """Validate already-parsed config data, raising :class:`ConfigError` on problems.

    The sections checked are the core's, the built-in protocols', those of the
    plug-ins ``server.subprotocols`` names and those of ``protocols`` (specs
    handed to ``Hub(registry=...)``).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a table of sections")
    model = HubConfig.with_protocols([*_named_plugins(data, source), *protocols])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(source, exc, model)) from None


def _named_plugins(data: dict[str, Any], source: str) -> list[ProtocolSpec]:
    """The plug-ins server.subprotocols names (loaded: their sections are validated here)."""
    server = data.get("server")
    names = server.get("subprotocols") if isinstance(server, dict) else None
    if not isinstance(names, list):
        return []  # absent, or wrong: the core's validation says so
    wanted = [n for n in names if isinstance(n, str) and n not in _BUILTIN_NAMES]
    if not wanted:
        return []
    try:
        return entry_point_protocols(wanted)
    except (ImportError, AttributeError, TypeError) as exc:
        raise ConfigError(f"{source}: server.subprotocols: {exc}") from None


def _parse(path: Path, raw: bytes) -> Any:
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(
                f"{path}: YAML config needs PyYAML: pip install 'wshub[yaml]'"
            ) from None
        try:
            return yaml.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _resolve_relative_paths(config: HubConfig, base: Path) -> HubConfig:
    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    def resolve_files(section: _SectionT, *keys: str) -> _SectionT:
        paths = {key: getattr(section, key) for key in keys}
        return section.model_copy(
            update={key: resolve(path) for key, path in paths.items() if path is not None}
        )

    server = resolve_files(config.server, "static_dir")
    if server.tls is not None:
        server = server.model_copy(
            update={"tls": resolve_files(server.tls, "cert_file", "key_file")}
        )
    auth = config.auth
    if auth.jwt is not None:
        jwt = resolve_files(auth.jwt, "secret_file", "public_key_file", "jwks_file")
        auth = auth.model_copy(update={"jwt": jwt})
    if auth.basic is not None:
        auth = auth.model_copy(update={"basic": resolve_files(auth.basic, "users_file")})
    rpc = config.rpc.model_copy(update={"paths": [resolve(p) for p in config.rpc.paths]})
    # Each backend has its own file keys (memory: state_file; sqlite: path too).
    engine_files = [k for k in ("state_file", "path") if k in type(config.engine).model_fields]
    engine = resolve_files(config.engine, *engine_files)
    # Each protocol's section resolves its own paths.
    protocols = {
        name: getattr(config, name).with_base_dir(base)
        for name in type(config).protocol_sections.values()
    }
    api = resolve_files(config.api, "keys_file")
    webhooks = resolve_files(config.webhooks, "secret_file")
    admin = resolve_files(config.admin, "users_file")
    return config.model_copy(
        update={
            "server": server,
            "auth": auth,
            "rpc": rpc,
            "engine": engine,
            **protocols,
            "api": api,
            "webhooks": webhooks,
            "admin": admin,
        }
    )
