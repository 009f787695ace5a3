"""The server API's requests and results: one pydantic model each.

The same models validate requests and generate ``/api/openapi.json``, so the
document cannot drift from what the API accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from hub.close_codes import CloseCode


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- requests ----------------------------------------------------------------


class Empty(_Model):
    """No parameters."""


class ChannelRequest(_Model):
    channel: str = Field(description="A channel name (no wildcards).")


# Checked by hub.meta.parse_meta, so its errors are the channels.v1 and WAMP ones.
META_DESCRIPTION = (
    "The message described as MQTT 5 does: {content_type?: string, "
    "user_properties?: [[name, value], ...], payload_format?: 0 | 1}. MQTT 5 "
    "subscribers get PUBLISH properties, channels.v1 `meta`, WAMP `Details._meta`. "
    "At most 32 user properties and 4096 bytes of strings (docs/mqtt.md)."
)
META_EXAMPLE = {
    "content_type": "application/json",
    "user_properties": [["unit", "celsius"]],
    "payload_format": 1,
}


def _meta_field() -> Any:
    return Field(None, description=META_DESCRIPTION, examples=[META_EXAMPLE])


class PublishRequest(_Model):
    channel: str = Field(description="The channel to publish to.")
    data: JsonValue = Field(description="Any JSON value; subscribers of every protocol get it.")
    meta: JsonValue = _meta_field()
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="A publish repeating this key within [api] idempotency_window seconds "
        "is not published again; it gets the first one's result.",
    )


class BroadcastRequest(_Model):
    channels: list[str] = Field(min_length=1, max_length=1000)
    data: JsonValue
    meta: JsonValue = _meta_field()


class Position(_Model):
    offset: int = Field(ge=0)
    epoch: str


class HistoryRequest(_Model):
    channel: str
    limit: int | None = Field(None, ge=0, description="At most this many publications.")
    since: Position | None = Field(None, description="Only publications after this position.")
    reverse: bool = Field(False, description="Newest first (with limit: the newest ones).")


class UserChannelRequest(_Model):
    user: str = Field(min_length=1, max_length=256)
    channel: str


class DisconnectRequest(_Model):
    user: str = Field(min_length=1, max_length=256)
    code: int = Field(
        CloseCode.DISCONNECTED, ge=3000, le=4999, description="WebSocket close code, 3000-4999."
    )
    reason: str = Field("disconnected by the server", max_length=120)


class RevokeRequest(_Model):
    user: str = Field(min_length=1, max_length=256)
    before: float | None = Field(
        None, ge=0, description="Unix time; tokens issued before it are refused. Default: now."
    )


class ChannelsRequest(_Model):
    pattern: str | None = Field(None, description="An MQTT-style pattern (chat/#); all if unset.")


class RpcRequest(_Model):
    method: str = Field(min_length=1)
    params: JsonValue = None


class Command(_Model):
    method: str
    params: dict[str, JsonValue] = {}


class BatchRequest(_Model):
    commands: list[Command] = Field(min_length=1)


# -- results -------------------------------------------------------------------


class ErrorBody(_Model):
    code: int
    message: str
    data: JsonValue = None


class PublishResult(_Model):
    offset: int
    epoch: str


class BroadcastItem(_Model):
    result: PublishResult | None = None
    error: ErrorBody | None = None


class BroadcastResult(_Model):
    responses: list[BroadcastItem]


class Member(_Model):
    user: str
    info: JsonValue = None
    clients: int


class PresenceResult(_Model):
    members: dict[str, Member]


class PresenceStatsResult(_Model):
    clients: int
    users: int


class Publisher(_Model):
    user: str
    client: str
    info: JsonValue = None


class HistoryPublication(_Model):
    channel: str
    data: JsonValue
    offset: int
    epoch: str
    info: Publisher | None = None
    meta: dict[str, JsonValue] | None = Field(None, description="As the publisher set it.")


class HistoryResult(_Model):
    publications: list[HistoryPublication]
    offset: int
    epoch: str
    recovered: bool | None = Field(None, description="With since: whether nothing was missed.")


class EmptyResult(_Model):
    pass


class ChannelInfo(_Model):
    subscribers: int = Field(description="Connections subscribed, over every node that answered.")


class ChannelsResult(_Model):
    channels: dict[str, ChannelInfo]
    partial: bool = Field(False, description="True when a node did not answer in time.")


class NodeInfo(_Model):
    node: str
    connections: int
    subscriptions: int
    protocols: dict[str, int]
    uptime: float


class InfoResult(_Model):
    nodes: list[NodeInfo]
    partial: bool = False


class BatchReply(_Model):
    result: Any = None
    error: ErrorBody | None = None


class BatchResult(_Model):
    replies: list[BatchReply]
