"""Errors of the channel layer, each protocol maps them to its own wire error."""

from __future__ import annotations


class ChannelError(Exception):
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


class StorageError(Exception):
    """The engine's storage cannot be used at start (SQLite file corrupted, locked, unreadable).

    Raised when the hub starts, with a message that names the file and what to
    do; the command line prints it and exits instead of a traceback.
    """
