"""Errors and params between WAMP and the hub's RPC table (docs/wamp.md, "Errors").

Hub method errors reach WAMP callers as ERROR URIs:

==============================  =============================================
hub                             WAMP ``ERROR``
==============================  =============================================
invalid params (-32602)         ``wamp.error.invalid_argument``
any other ``RpcError(code)``    ``wshub.error.<code>`` (``wshub.error.4001``)
permission denied               ``wamp.error.not_authorized``
invalid channel name            ``wamp.error.invalid_uri``
payload too large               ``wamp.error.payload_size_exceeded``
engine unavailable (Redis)      ``wamp.error.network_failure``
other channel errors            ``wshub.error.<name>`` (``wshub.error.limit_exceeded``)
an unexpected exception         ``wamp.error.runtime_error``
==============================  =============================================

Each carries ``args=[message]`` and, for RpcErrors, ``kwargs={"code", "data"}``.
Going the other way (a JSON-RPC client calling a WAMP callee), the mapping is
inverted, and any other URI becomes code :data:`CALLEE_ERROR` with
``data={"error": uri, "args": [...], "kwargs": {...}}``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from pydantic import BaseModel

from hub.errors import (
    AlreadySubscribed,
    ChannelError,
    EngineUnavailable,
    FeatureDisabled,
    InvalidChannelName,
    LimitExceeded,
    NotSubscribed,
    PayloadTooLarge,
    PermissionDenied,
)
from hub.rpc import INVALID_PARAMS, METHOD_NOT_FOUND, RpcError, RpcMethod
from protocols.wamp.errors import (
    HUB_ERROR_PREFIX,
    INVALID_ARGUMENT,
    INVALID_URI,
    NETWORK_FAILURE,
    NO_SUCH_PROCEDURE,
    NOT_AUTHORIZED,
    PAYLOAD_SIZE_EXCEEDED,
    WampError,
)

#: JSON-RPC code for an ERROR a WAMP callee answered with (its URI in ``data``).
CALLEE_ERROR: Final = -32030

_CHANNEL_ERRORS: Final[dict[type[ChannelError], str]] = {
    InvalidChannelName: INVALID_URI,
    PermissionDenied: NOT_AUTHORIZED,
    PayloadTooLarge: PAYLOAD_SIZE_EXCEEDED,
    LimitExceeded: HUB_ERROR_PREFIX + "limit_exceeded",
    FeatureDisabled: HUB_ERROR_PREFIX + "feature_disabled",
    NotSubscribed: HUB_ERROR_PREFIX + "not_subscribed",
    AlreadySubscribed: HUB_ERROR_PREFIX + "already_subscribed",
    EngineUnavailable: NETWORK_FAILURE,
}
_HUB_CODE: Final = re.compile(re.escape(HUB_ERROR_PREFIX) + r"(-?[0-9]+)")


def channel_error(exc: ChannelError) -> WampError:
    uri = _CHANNEL_ERRORS.get(type(exc), NOT_AUTHORIZED)
    return WampError(uri, exc.message)


def rpc_error(exc: RpcError) -> WampError:
    """The ERROR a WAMP caller gets for a hub method's RpcError."""
    kwargs: dict[str, Any] = {"code": exc.code}
    if exc.data is not None:
        kwargs["data"] = exc.data
    if exc.code == INVALID_PARAMS:
        uri = INVALID_ARGUMENT
    elif exc.code == METHOD_NOT_FOUND:
        uri = NO_SUCH_PROCEDURE
    else:
        uri = f"{HUB_ERROR_PREFIX}{exc.code}"
    return WampError(uri, payload_args=[exc.message], payload_kwargs=kwargs)


def callee_error(uri: str, args: list[Any] | None, kwargs: dict[str, Any] | None) -> RpcError:
    """The RpcError a JSON-RPC or channels caller gets for a WAMP callee's ERROR."""
    message = args[0] if args and isinstance(args[0], str) else uri
    data = kwargs.get("data") if kwargs else None
    found = _HUB_CODE.fullmatch(uri)
    if found is not None:
        return RpcError(int(found.group(1)), message, data)
    if uri == INVALID_ARGUMENT:
        return RpcError(INVALID_PARAMS, "Invalid params", {"error": uri, "args": args})
    if uri == NO_SUCH_PROCEDURE:
        return RpcError(METHOD_NOT_FOUND, "Method not found", {"error": uri})
    detail: dict[str, Any] = {"error": uri, "args": args or [], "kwargs": kwargs or {}}
    return RpcError(CALLEE_ERROR, message, detail)


def hub_params(method: RpcMethod, args: list[Any] | None, kwargs: dict[str, Any] | None) -> Any:
    """A hub method's params from WAMP args and/or kwargs (positional first)."""
    if not kwargs:
        return args
    if not args:
        return kwargs
    names = method.param_names
    if len(args) > len(names):
        raise RpcError(
            INVALID_PARAMS, "Invalid params", f"at most {len(names)} positional arguments"
        )
    named = dict(zip(names, args, strict=False))
    twice = named.keys() & kwargs.keys()
    if twice:
        raise RpcError(
            INVALID_PARAMS, "Invalid params", f"given by position and by name: {sorted(twice)}"
        )
    named.update(kwargs)
    return named


def plain_result(value: Any) -> Any:
    """A hub method's result as values every WAMP serializer carries."""
    # pydantic models are the one non-plain type methods commonly return.
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return list(value)
    return value
