"""Fuzz target: the channels.v1 codec (``protocols.channels.codec``) behind its envelope.

The first byte picks a built-in method, the rest is a JSON-RPC frame: its
params (or, if the frame is not a request, the frame itself as params) go to
that method's parser. Properties: only ``JsonRpcDecodeError`` and ``RpcError``
-32602 escape, a refusal's detail is JSON, and parsed params round-trip
through JSON to the same request. The same bytes, as the payload of a
publication from a byte protocol (MQTT), must reach channels clients in a frame
and come back to byte protocols unchanged (``hub.payloads``).
"""

from __future__ import annotations

from typing import Any

import orjson

from hub.engine import ClientInfo, Kind, Publication
from hub.payloads import to_bytes, to_json_value
from hub.rpc import INVALID_PARAMS, RpcError
from protocols.channels.codec import PARAMS_BY_METHOD, Params, encode_publication, parse_params
from protocols.jsonrpc.codec import JsonRpcDecodeError, Request, decode, encode_error

METHODS = sorted(PARAMS_BY_METHOD)


def _parse(method: str, params: Any) -> None:
    model = PARAMS_BY_METHOD[method]
    try:
        parsed: Params = parse_params(model, params)
    except RpcError as exc:
        if exc.code != INVALID_PARAMS:
            raise AssertionError(f"refused with {exc.code}, not -32602") from exc
        encode_error(1, exc.code, exc.message, exc.data)
        return
    # What the server understood, written back as a client would, parses the same.
    wire = orjson.dumps(parsed.model_dump(mode="json"))
    again = parse_params(model, orjson.loads(wire))
    if again != parsed:
        raise AssertionError(f"round trip changed {parsed!r} into {again!r}")


def _check_frames(raw: bytes) -> None:
    """Presence events and pattern deliveries, with publisher info, are JSON-RPC notifications."""
    for kind in (Kind.JOIN, Kind.LEAVE):
        member = {"user": raw.hex(), "info": None}
        frame = orjson.loads(encode_publication(Publication("c", member, kind=kind), "c"))
        if frame["params"] != {"channel": "c", "member": member}:
            raise AssertionError(f"{kind.value} frame is {frame!r}")
    publisher = ClientInfo(client="s1", user="u", info={"raw": raw.hex()})
    frame = orjson.loads(encode_publication(Publication("c/d", raw, publisher=publisher), "c/+"))
    if frame["params"]["subscription"] != "c/+" or frame["params"]["info"]["user"] != "u":
        raise AssertionError(f"pattern frame is {frame!r}")


def _check_payload(raw: bytes) -> None:
    frame = encode_publication(Publication("c", raw), "c")
    shown = orjson.loads(frame)["params"]["data"]
    back = to_bytes(shown)
    if shown != to_json_value(raw):
        raise AssertionError(f"the frame shows {shown!r}")
    if to_json_value(shown) is not shown:
        raise AssertionError("a JSON value is not shown as itself")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if back != raw:
            raise AssertionError(f"bytes {raw!r} came back as {back!r}") from None
        return
    # JSON bytes travel as their value: formatting is not kept, the value is.
    if orjson.loads(back) != value:
        raise AssertionError(f"JSON {raw!r} came back as {back!r}")


def check(data: bytes) -> None:
    if not data:
        return
    _check_payload(data)
    if data[0] == 0xFF:
        _check_frames(data[1:])
    method = METHODS[data[0] % len(METHODS)]
    frame = data[1:]
    try:
        incoming = decode(frame)
    except JsonRpcDecodeError:
        return
    for message in incoming.messages:
        if isinstance(message, Request):
            if message.method in PARAMS_BY_METHOD:
                _parse(message.method, message.params)
            else:
                _parse(method, message.params)
    if not incoming.is_batch:
        # The whole frame as params, to reach the parser with any JSON value.
        _parse(method, orjson.loads(frame))
