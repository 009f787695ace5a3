"""WAMP v2 messages as typed, immutable values.

One frozen dataclass per message type. Fields follow the spec's element order, so
``Publish(1, {}, "com.example.topic", [1, 2])`` reads like the wire list
``[16, 1, {}, "com.example.topic", [1, 2]]``. Payloads (``args`` / ``kwargs``) are
carried untouched; ``None`` means the element was absent on the wire.

This module holds no parsing logic: see :mod:`protocols.wamp.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, TypeAlias

__all__ = [
    "MAX_ID",
    "Abort",
    "Authenticate",
    "Call",
    "Cancel",
    "Challenge",
    "Error",
    "Event",
    "Goodbye",
    "Hello",
    "Interrupt",
    "Invocation",
    "Message",
    "MessageType",
    "Publish",
    "Published",
    "Register",
    "Registered",
    "Result",
    "Subscribe",
    "Subscribed",
    "Unregister",
    "Unregistered",
    "Unsubscribe",
    "Unsubscribed",
    "Welcome",
    "Yield",
]

# IDs are integers in [1, 2^53] so that JavaScript peers can hold them exactly.
MAX_ID = 2**53

Details: TypeAlias = dict[str, Any]
Args: TypeAlias = list[Any]
Kwargs: TypeAlias = dict[str, Any]


class MessageType(IntEnum):
    """Message type codes (basic and advanced profile)."""

    HELLO = 1
    WELCOME = 2
    ABORT = 3
    CHALLENGE = 4
    AUTHENTICATE = 5
    GOODBYE = 6
    ERROR = 8
    PUBLISH = 16
    PUBLISHED = 17
    SUBSCRIBE = 32
    SUBSCRIBED = 33
    UNSUBSCRIBE = 34
    UNSUBSCRIBED = 35
    EVENT = 36
    CALL = 48
    CANCEL = 49
    RESULT = 50
    REGISTER = 64
    REGISTERED = 65
    UNREGISTER = 66
    UNREGISTERED = 67
    INVOCATION = 68
    INTERRUPT = 69
    YIELD = 70


# --- session lifecycle -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """``[HELLO, Realm|uri, Details|dict]``"""

    TYPE: ClassVar[int] = MessageType.HELLO.value
    realm: str
    details: Details


@dataclass(frozen=True, slots=True)
class Welcome:
    """``[WELCOME, Session|id, Details|dict]``"""

    TYPE: ClassVar[int] = MessageType.WELCOME.value
    session: int
    details: Details


@dataclass(frozen=True, slots=True)
class Abort:
    """``[ABORT, Details|dict, Reason|uri]``"""

    TYPE: ClassVar[int] = MessageType.ABORT.value
    details: Details
    reason: str


@dataclass(frozen=True, slots=True)
class Challenge:
    """``[CHALLENGE, AuthMethod|string, Extra|dict]``"""

    TYPE: ClassVar[int] = MessageType.CHALLENGE.value
    auth_method: str
    extra: Details


@dataclass(frozen=True, slots=True)
class Authenticate:
    """``[AUTHENTICATE, Signature|string, Extra|dict]``"""

    TYPE: ClassVar[int] = MessageType.AUTHENTICATE.value
    signature: str
    extra: Details


@dataclass(frozen=True, slots=True)
class Goodbye:
    """``[GOODBYE, Details|dict, Reason|uri]``"""

    TYPE: ClassVar[int] = MessageType.GOODBYE.value
    details: Details
    reason: str


@dataclass(frozen=True, slots=True)
class Error:
    """``[ERROR, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri,
    Arguments|list, ArgumentsKw|dict]``"""

    TYPE: ClassVar[int] = MessageType.ERROR.value
    request_type: int
    request: int
    details: Details
    error: str
    args: Args | None = None
    kwargs: Kwargs | None = None


# --- publish & subscribe -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Publish:
    """``[PUBLISH, Request|id, Options|dict, Topic|uri, Arguments|list,
    ArgumentsKw|dict]``"""

    TYPE: ClassVar[int] = MessageType.PUBLISH.value
    request: int
    options: Details
    topic: str
    args: Args | None = None
    kwargs: Kwargs | None = None


@dataclass(frozen=True, slots=True)
class Published:
    """``[PUBLISHED, PUBLISH.Request|id, Publication|id]``"""

    TYPE: ClassVar[int] = MessageType.PUBLISHED.value
    request: int
    publication: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``[SUBSCRIBE, Request|id, Options|dict, Topic|uri]``"""

    TYPE: ClassVar[int] = MessageType.SUBSCRIBE.value
    request: int
    options: Details
    topic: str


@dataclass(frozen=True, slots=True)
class Subscribed:
    """``[SUBSCRIBED, SUBSCRIBE.Request|id, Subscription|id]``"""

    TYPE: ClassVar[int] = MessageType.SUBSCRIBED.value
    request: int
    subscription: int


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """``[UNSUBSCRIBE, Request|id, SUBSCRIBED.Subscription|id]``"""

    TYPE: ClassVar[int] = MessageType.UNSUBSCRIBE.value
    request: int
    subscription: int


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """``[UNSUBSCRIBED, UNSUBSCRIBE.Request|id]``"""

    TYPE: ClassVar[int] = MessageType.UNSUBSCRIBED.value
    request: int


@dataclass(frozen=True, slots=True)
class Event:
    """``[EVENT, SUBSCRIBED.Subscription|id, PUBLISHED.Publication|id, Details|dict,
    PUBLISH.Arguments|list, PUBLISH.ArgumentsKw|dict]``"""

    TYPE: ClassVar[int] = MessageType.EVENT.value
    subscription: int
    publication: int
    details: Details
    args: Args | None = None
    kwargs: Kwargs | None = None


# --- routed remote procedure calls -------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """``[CALL, Request|id, Options|dict, Procedure|uri, Arguments|list,
    ArgumentsKw|dict]``"""

    TYPE: ClassVar[int] = MessageType.CALL.value
    request: int
    options: Details
    procedure: str
    args: Args | None = None
    kwargs: Kwargs | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """``[CANCEL, CALL.Request|id, Options|dict]``"""

    TYPE: ClassVar[int] = MessageType.CANCEL.value
    request: int
    options: Details


@dataclass(frozen=True, slots=True)
class Result:
    """``[RESULT, CALL.Request|id, Details|dict, YIELD.Arguments|list,
    YIELD.ArgumentsKw|dict]``"""

    TYPE: ClassVar[int] = MessageType.RESULT.value
    request: int
    details: Details
    args: Args | None = None
    kwargs: Kwargs | None = None


@dataclass(frozen=True, slots=True)
class Register:
    """``[REGISTER, Request|id, Options|dict, Procedure|uri]``"""

    TYPE: ClassVar[int] = MessageType.REGISTER.value
    request: int
    options: Details
    procedure: str


@dataclass(frozen=True, slots=True)
class Registered:
    """``[REGISTERED, REGISTER.Request|id, Registration|id]``"""

    TYPE: ClassVar[int] = MessageType.REGISTERED.value
    request: int
    registration: int


@dataclass(frozen=True, slots=True)
class Unregister:
    """``[UNREGISTER, Request|id, REGISTERED.Registration|id]``"""

    TYPE: ClassVar[int] = MessageType.UNREGISTER.value
    request: int
    registration: int


@dataclass(frozen=True, slots=True)
class Unregistered:
    """``[UNREGISTERED, UNREGISTER.Request|id]``"""

    TYPE: ClassVar[int] = MessageType.UNREGISTERED.value
    request: int


@dataclass(frozen=True, slots=True)
class Invocation:
    """``[INVOCATION, Request|id, REGISTERED.Registration|id, Details|dict,
    CALL.Arguments|list, CALL.ArgumentsKw|dict]``"""

    TYPE: ClassVar[int] = MessageType.INVOCATION.value
    request: int
    registration: int
    details: Details
    args: Args | None = None
    kwargs: Kwargs | None = None


@dataclass(frozen=True, slots=True)
class Interrupt:
    """``[INTERRUPT, INVOCATION.Request|id, Options|dict]``"""

    TYPE: ClassVar[int] = MessageType.INTERRUPT.value
    request: int
    options: Details


@dataclass(frozen=True, slots=True)
class Yield:
    """``[YIELD, INVOCATION.Request|id, Options|dict, Arguments|list,
    ArgumentsKw|dict]``"""

    TYPE: ClassVar[int] = MessageType.YIELD.value
    request: int
    options: Details
    args: Args | None = None
    kwargs: Kwargs | None = None


Message: TypeAlias = (
    Hello
    | Welcome
    | Abort
    | Challenge
    | Authenticate
    | Goodbye
    | Error
    | Publish
    | Published
    | Subscribe
    | Subscribed
    | Unsubscribe
    | Unsubscribed
    | Event
    | Call
    | Cancel
    | Result
    | Register
    | Registered
    | Unregister
    | Unregistered
    | Invocation
    | Interrupt
    | Yield
)
