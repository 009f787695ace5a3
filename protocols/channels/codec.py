"""channels.v1 codec: pure functions between JSON-RPC params and typed requests.

The envelope is JSON-RPC 2.0 (:mod:`protocols.jsonrpc.codec`); this module adds
what channels.v1 puts inside it: the params of the built-in methods, parsed
strictly into models, and the notification frames for publications. No I/O
here. :func:`parse_params` raises only :class:`hub.rpc.RpcError` (-32602), whose
``data`` is always JSON the reply can carry.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.engine import Kind, Publication
from hub.meta import InvalidMeta, meta_extras, publication_meta
from hub.payloads import to_json_value
from hub.rpc import INVALID_PARAMS, RpcError, validation_detail
from protocols.jsonrpc.codec import dumps

WIRE_NAME = "channels.v1"


class Params(BaseModel):
    # Strict: a wire protocol takes `true`, not "yes", and offsets as numbers.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


P = TypeVar("P", bound=Params)


class Since(Params):
    offset: int = Field(ge=0)
    epoch: str


class SubscribeParams(Params):
    channel: str
    presence: bool = False
    info: Any = None
    since: Since | None = None


class ChannelParams(Params):
    channel: str


class PublishParams(Params):
    channel: str
    data: Any = None
    # Content type, user properties, payload format (hub.meta); checked there.
    meta: Any = None


class HistoryParams(Params):
    channel: str
    limit: int | None = Field(None, ge=0)
    since: Since | None = None


#: The params model of each built-in method that takes params.
PARAMS_BY_METHOD: dict[str, type[Params]] = {
    "subscribe": SubscribeParams,
    "unsubscribe": ChannelParams,
    "publish": PublishParams,
    "presence": ChannelParams,
    "presence_stats": ChannelParams,
    "history": HistoryParams,
}


def parse_params(model: type[P], params: Any) -> P:
    """Validate decoded JSON-RPC params; RpcError -32602 with the details if invalid."""
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params", "params must be an object")
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise RpcError(INVALID_PARAMS, "Invalid params", validation_detail(exc)) from None


def publish_extras(request: PublishParams) -> dict[str, Any] | None:
    """``Publication.extras`` for a publish with ``meta``; RpcError -32602 when it is invalid."""
    try:
        return meta_extras(request.meta, request.data)
    except InvalidMeta as exc:
        raise RpcError(INVALID_PARAMS, "Invalid params", str(exc)) from None


def publication_dict(publication: Publication) -> dict[str, Any]:
    out: dict[str, Any] = {
        "channel": publication.channel,
        "data": to_json_value(publication.data),
        "offset": publication.offset,
        "epoch": publication.epoch,
    }
    if publication.publisher is not None:
        out["info"] = publication.publisher.as_dict()
    meta = publication_meta(publication.extras)
    if meta is not None:
        out["meta"] = meta
    return out


def encode_publication(publication: Publication, subscription: str) -> bytes:
    """The notification frame for a publication, cached per (protocol, pattern)."""
    return publication.encoded.frame(
        (WIRE_NAME, subscription), lambda: _notification(publication, subscription)
    )


def _notification(publication: Publication, subscription: str) -> bytes:
    if publication.kind is Kind.MESSAGE:
        params = publication_dict(publication)
        if subscription != publication.channel:
            params["subscription"] = subscription
        message = {"jsonrpc": "2.0", "method": "message", "params": params}
    else:
        message = {
            "jsonrpc": "2.0",
            "method": publication.kind.value,
            "params": {"channel": publication.channel, "member": publication.data},
        }
    return dumps(message)


def fit_publications(
    publications: list[Publication], room: int, *, newest: bool = False
) -> tuple[list[orjson.Fragment], bool]:
    """The encoded publications that fit ``room`` bytes, and whether any were left out.

    From the oldest on (a recovery continues from the last one kept), or from
    the newest back. Each is sized by its own encoding, which the reply then
    carries as it is (an orjson Fragment): bounded before the reply is built,
    and never encoded twice. A store's publications are rebuilt from what it
    keeps, so no fan-out's cached frame could size them.
    """
    total = 0
    kept: list[orjson.Fragment] = []
    for publication in reversed(publications) if newest else publications:
        # Encoded at the depth the reply nests it (reply, result, list): one
        # too deep for the reply fails here, as it would there (orjson's limit).
        encoded = dumps([[[publication_dict(publication)]]])[3:-3]
        total += len(encoded)
        if total > room:
            break
        kept.append(orjson.Fragment(encoded))
    if newest:
        kept.reverse()
    return kept, len(kept) < len(publications)
