"""Errors of the Python clients."""

from __future__ import annotations

from typing import Any

from hub.errors import HubError


class ClientError(HubError):
    """Root of the clients' errors."""


class ApiRequestError(ClientError):
    """The server API answered with an error: its HTTP status, code and message."""

    def __init__(self, status: int, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"HTTP {status}, error {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.data = data


class ApiUnreachable(ClientError):
    """The server API could not be reached (refused, timed out, not HTTP)."""


class CallError(ClientError):
    """A channels.v1 request answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class Disconnected(ClientError):
    """The channels.v1 connection is gone (and the client is not reconnecting)."""
