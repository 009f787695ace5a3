"""The server API's errors: an HTTP status and a code, for every failure a backend meets.

Codes (docs/api.md): 1000-1099 are the API's own; channel and RPC errors keep
the codes channels.v1 and JSON-RPC give them, so one table serves both.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from hub.errors import (
    AlreadySubscribed,
    ChannelError,
    EngineUnavailable,
    FeatureDisabled,
    HubError,
    InvalidChannelName,
    LimitExceeded,
    NotSubscribed,
    PayloadTooLarge,
    PermissionDenied,
)
from hub.rpc import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, PERMISSION_DENIED, RpcError

BAD_REQUEST = 1000
UNAUTHORIZED = 1001
FORBIDDEN = 1003
NOT_FOUND = 1004
TOO_LARGE = 1013
INTERNAL = 1500

# The channels.v1 codes (docs/channels.md) and the status each answers with.
CHANNEL_ERRORS: dict[type[ChannelError], tuple[int, HTTPStatus]] = {
    InvalidChannelName: (-32010, HTTPStatus.BAD_REQUEST),
    PermissionDenied: (PERMISSION_DENIED, HTTPStatus.FORBIDDEN),
    NotSubscribed: (-32012, HTTPStatus.BAD_REQUEST),
    AlreadySubscribed: (-32013, HTTPStatus.BAD_REQUEST),
    FeatureDisabled: (-32014, HTTPStatus.BAD_REQUEST),
    PayloadTooLarge: (-32015, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    LimitExceeded: (-32016, HTTPStatus.BAD_REQUEST),
    EngineUnavailable: (-32017, HTTPStatus.SERVICE_UNAVAILABLE),
}

RPC_STATUS = {
    METHOD_NOT_FOUND: HTTPStatus.NOT_FOUND,
    PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    INVALID_PARAMS: HTTPStatus.BAD_REQUEST,
    INTERNAL_ERROR: HTTPStatus.INTERNAL_SERVER_ERROR,
}


class ApiError(HubError):
    """A request the API refuses: its HTTP status and the body's error object."""

    def __init__(self, status: HTTPStatus, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return {"error": error}


def from_channel_error(exc: ChannelError) -> ApiError:
    code, status = CHANNEL_ERRORS.get(type(exc), (PERMISSION_DENIED, HTTPStatus.FORBIDDEN))
    return ApiError(status, code, exc.message)


def from_rpc_error(exc: RpcError) -> ApiError:
    # An application's own error code is the method's answer, not the API's fault.
    status = RPC_STATUS.get(exc.code, HTTPStatus.BAD_REQUEST)
    return ApiError(status, exc.code, exc.message, exc.data)
