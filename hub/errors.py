"""wshub's exceptions share one root, ``HubError``: ``except HubError`` catches them all.

Where a family lives (each keeps a builtin second base where callers catch that,
e.g. ``TlsError`` is also a ``ValueError``)::

    HubError
    ├── ChannelError            here: a client's channel operation failed; each
    │   ├── InvalidChannelName  protocol maps these to its own wire error
    │   ├── PermissionDenied, NotSubscribed, AlreadySubscribed, FeatureDisabled
    │   └── PayloadTooLarge, LimitExceeded, EngineUnavailable
    ├── StorageError            here: the engine's storage cannot be used at start
    ├── ConfigError             hub.config: a config file or value is wrong
    ├── RpcError                hub.rpc: an RPC call failed with a code
    ├── ApiError                hub.api.errors: the server API's HTTP errors
    ├── ClientError             hub.client.errors: the Python client's failures
    ├── AuthenticationFailed    hub.auth.hooks (InvalidToken in hub.auth.tokens)
    ├── ...                     start-up file errors (TlsError, KeyFileError, ...)
    └── protocol errors         protocols/*: wire decode errors, WAMP errors, ...

tests/hub/test_errors.py checks that every exception class in hub/ and
protocols/ derives from ``HubError``.
"""

from __future__ import annotations


class HubError(Exception):
    """Root of every exception wshub defines."""


class ChannelError(HubError):
    """Base of the errors a client's channel operation can meet."""

    reason = "channel error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.reason)
        self.message = message or self.reason


class InvalidChannelName(ChannelError):
    reason = "invalid channel name or pattern"


class PermissionDenied(ChannelError):
    """A hook or the namespace refused the operation. Hooks raise it to reject."""

    reason = "permission denied"


class NotSubscribed(ChannelError):
    reason = "not subscribed"


class AlreadySubscribed(ChannelError):
    reason = "already subscribed"


class FeatureDisabled(ChannelError):
    reason = "feature disabled for this namespace"


class PayloadTooLarge(ChannelError):
    reason = "payload too large"


class LimitExceeded(ChannelError):
    reason = "limit exceeded"


class EngineUnavailable(ChannelError):
    """The channel engine cannot reach its backend (Redis): the operation did not happen.

    Raised by the engine for connection errors and timeouts, so every protocol
    tells its client "try again later" instead of failing the connection. The
    outcome of a publish whose reply was lost is unknown; it is reported as not
    done (the client may send it again: at least once, never silently lost).
    """

    reason = "temporarily unavailable"


class StorageError(HubError):
    """The engine's storage cannot be used at start (SQLite file corrupted, locked, unreadable).

    Raised when the hub starts, with a message that names the file and what to
    do; the command line prints it and exits instead of a traceback.
    """
