"""The URIs the router answers with, and the exceptions that carry them.

A :class:`WampError` becomes an ``ERROR`` reply to the request that raised it; a
:class:`WampAbort` ends the session (or its establishment) with ``ABORT``.
"""

from __future__ import annotations

from typing import Any, Final

from hub.errors import HubError

# Session close reasons.
GOODBYE_AND_OUT: Final = "wamp.close.goodbye_and_out"
CLOSE_NORMAL: Final = "wamp.close.normal"
# The router stops (Hub.stop) / an administrator ends the session (server API
# disconnect, as the session meta API's kill does).
SYSTEM_SHUTDOWN: Final = "wamp.close.system_shutdown"
KILLED: Final = "wamp.close.killed"

# Session establishment (ABORT reasons).
NO_SUCH_REALM: Final = "wamp.error.no_such_realm"
PROTOCOL_VIOLATION: Final = "wamp.error.protocol_violation"
NOT_AUTHORIZED: Final = "wamp.error.not_authorized"
AUTHENTICATION_FAILED: Final = "wamp.error.authentication_failed"
NO_AUTH_METHOD: Final = "wamp.error.no_auth_method"

# Request errors (ERROR reasons).
INVALID_URI: Final = "wamp.error.invalid_uri"
INVALID_ARGUMENT: Final = "wamp.error.invalid_argument"
INVALID_PAYLOAD: Final = "wamp.error.invalid_payload"
OPTION_NOT_ALLOWED: Final = "wamp.error.option_not_allowed"
NO_SUCH_SUBSCRIPTION: Final = "wamp.error.no_such_subscription"
NO_SUCH_REGISTRATION: Final = "wamp.error.no_such_registration"
NO_SUCH_PROCEDURE: Final = "wamp.error.no_such_procedure"
NO_SUCH_SESSION: Final = "wamp.error.no_such_session"
PROCEDURE_ALREADY_EXISTS: Final = "wamp.error.procedure_already_exists"
PAYLOAD_SIZE_EXCEEDED: Final = "wamp.error.payload_size_exceeded"
CANCELED: Final = "wamp.error.canceled"
TIMEOUT: Final = "wamp.error.timeout"
# Not in the spec, but what Autobahn and Crossbar use for a failing endpoint.
RUNTIME_ERROR: Final = "wamp.error.runtime_error"
# Advanced profile: "a Router encountered a network failure" (its channel engine,
# Redis, is unreachable); wamp.error.unavailable is a callee's word for rerouting.
NETWORK_FAILURE: Final = "wamp.error.network_failure"

# The hub's own errors: ``wshub.error.<JSON-RPC code>`` and named channel errors.
HUB_ERROR_PREFIX: Final = "wshub.error."


class WampError(HubError):
    """A request the router refuses: sent back as ``ERROR`` with this URI and payload."""

    def __init__(
        self,
        uri: str,
        message: str | None = None,
        *,
        payload_args: list[Any] | None = None,
        payload_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{uri}: {message}" if message else uri)
        self.uri = uri
        if payload_args is None and message is not None:
            payload_args = [message]
        self.payload_args = payload_args
        self.payload_kwargs = payload_kwargs


class WampAbort(HubError):
    """The session cannot go on: ``ABORT`` with this reason, then the transport closes."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class ProtocolViolation(WampAbort):
    """The peer broke the protocol: ``ABORT wamp.error.protocol_violation``."""

    def __init__(self, message: str) -> None:
        super().__init__(PROTOCOL_VIOLATION, message)
