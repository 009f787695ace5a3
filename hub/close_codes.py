"""The WebSocket close codes wshub sends, in one place.

RFC 6455 section 7.4.1 and the IANA registry for the protocol codes; the
application's own codes are in the registered 3000-3999 range, with the
registry's meaning, and in the private 4000-4999 range. Every transport uses
them: a fallback stream or an MQTT/TCP connection reports the code a
WebSocket would have been closed with.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """A close code: an int on the wire, a name in the code."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001  # the server stops, or a fallback stream idled out
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003  # e.g. a text frame where MQTT needs binary
    # Never sent: the connection ended without a close (reported, as by browsers).
    ABNORMAL_CLOSURE = 1006
    # Any policy: a refused login, the message rate, a slow consumer; the
    # reason says which (understood by every client).
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009  # over a size limit or the outbound budget
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    # IANA "Unauthorized": the session's identity expired (hub.auth.expiry).
    TOKEN_EXPIRED = 3000
    # IANA "Forbidden": the server API revoked the session's token.
    TOKEN_REVOKED = 3003
    # Private range: the server API's disconnect, unless the request names a code.
    DISCONNECTED = 4000
