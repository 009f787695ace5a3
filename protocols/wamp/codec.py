"""Pure WAMP codec: plain lists (as any serializer yields them) <-> typed messages.

:func:`message_from_list` checks a decoded list against the table below and builds
the message; :func:`message_to_list` is its inverse. Payloads are never inspected
beyond their outer type, so a Broker or Dealer routes them untouched.

Every malformed input raises :class:`WampProtocolError`; the caller answers with
``ABORT``/``wamp.error.protocol_violation``. Whether a peer may *send* a given
message (a client sending ``WELCOME``) is for the router to decide, not the codec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from hub.errors import HubError
from protocols.wamp.messages import (
    MAX_ID,
    Abort,
    Authenticate,
    Call,
    Cancel,
    Challenge,
    Error,
    Event,
    Goodbye,
    Hello,
    Interrupt,
    Invocation,
    Message,
    MessageType,
    Publish,
    Published,
    Register,
    Registered,
    Result,
    Subscribe,
    Subscribed,
    Unregister,
    Unregistered,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    Yield,
)

__all__ = ["WampProtocolError", "message_from_list", "message_to_list"]


class WampProtocolError(HubError):
    """A frame or message that is not valid WAMP, or a payload a serializer cannot carry."""


# --- element kinds -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    """One element type of the spec's ``Element|type`` notation."""

    description: str
    check: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but the spec forbids it in place of numbers; IntEnum
    # members (MessageType.CALL as ERROR's request type) are fine.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= MAX_ID


def _is_integer(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= MAX_ID


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_dict(value: Any) -> bool:
    # Keys MUST be strings; binary serializers would happily carry others.
    return isinstance(value, dict) and all(isinstance(key, str) for key in value)


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


_ID = _Kind("an id in [1, 2^53]", _is_id)
_INT = _Kind("an integer in [0, 2^53]", _is_integer)
_URI = _Kind("a URI string", _is_str)
_STR = _Kind("a string", _is_str)
_DICT = _Kind("a dict with string keys", _is_dict)
_ARGS = _Kind("a list", _is_list)
_KWARGS = _Kind("a dict with string keys", _is_dict)


@dataclass(frozen=True, slots=True)
class _Layout:
    """How one message type looks on the wire."""

    cls: type[Message]
    kinds: tuple[_Kind, ...]  # fixed elements after the type code
    payload: bool  # may end with Arguments|list and ArgumentsKw|dict
    names: tuple[str, ...]  # dataclass field names of the fixed elements
    fixed: Callable[[Any], tuple[Any, ...]]  # reads the fixed elements off a message


def _layout(cls: type[Message], *kinds: _Kind, payload: bool = False) -> _Layout:
    names: tuple[str, ...] = cls.__match_args__[: len(kinds)]
    # attrgetter returns a bare value, not a 1-tuple, for a single name.
    if len(names) == 1:
        getter = attrgetter(names[0])
        return _Layout(cls, kinds, payload, names, lambda msg: (getter(msg),))
    return _Layout(cls, kinds, payload, names, attrgetter(*names))


# The whole grammar, one line per message type (h11 style: a table, not ifs).
_LAYOUTS: dict[int, _Layout] = {
    layout.cls.TYPE: layout
    for layout in (
        _layout(Hello, _URI, _DICT),
        _layout(Welcome, _ID, _DICT),
        _layout(Abort, _DICT, _URI),
        _layout(Challenge, _STR, _DICT),
        _layout(Authenticate, _STR, _DICT),
        _layout(Goodbye, _DICT, _URI),
        _layout(Error, _INT, _ID, _DICT, _URI, payload=True),
        _layout(Publish, _ID, _DICT, _URI, payload=True),
        _layout(Published, _ID, _ID),
        _layout(Subscribe, _ID, _DICT, _URI),
        _layout(Subscribed, _ID, _ID),
        _layout(Unsubscribe, _ID, _ID),
        _layout(Unsubscribed, _ID),
        _layout(Event, _ID, _ID, _DICT, payload=True),
        _layout(Call, _ID, _DICT, _URI, payload=True),
        _layout(Cancel, _ID, _DICT),
        _layout(Result, _ID, _DICT, payload=True),
        _layout(Register, _ID, _DICT, _URI),
        _layout(Registered, _ID, _ID),
        _layout(Unregister, _ID, _ID),
        _layout(Unregistered, _ID),
        _layout(Invocation, _ID, _ID, _DICT, payload=True),
        _layout(Interrupt, _ID, _DICT),
        _layout(Yield, _ID, _DICT, payload=True),
    )
}
_BY_CLASS: dict[type[Message], _Layout] = {layout.cls: layout for layout in _LAYOUTS.values()}


# --- list -> message ---------------------------------------------------------


def message_from_list(items: Any) -> Message:
    """Validate a decoded WAMP list and build its message.

    Raises :class:`WampProtocolError` for anything that is not a well-formed message.
    """
    if not isinstance(items, list) or not items:
        raise WampProtocolError("a WAMP message must be a non-empty list")
    code = items[0]
    # Checked before the dict lookup: the element may be unhashable or a huge int.
    if not _is_integer(code):
        raise WampProtocolError("message type must be an integer code")
    layout = _LAYOUTS.get(code)
    if layout is None:
        raise WampProtocolError(f"unknown message type {code}")

    fixed = len(layout.kinds) + 1
    maximum = fixed + 2 if layout.payload else fixed
    if not fixed <= len(items) <= maximum:
        raise WampProtocolError(
            f"{_name(layout)} takes {_arity(fixed, maximum)} elements, got {len(items)}"
        )
    for position, kind in enumerate(layout.kinds, start=1):
        if not kind.check(items[position]):
            field = layout.names[position - 1]
            raise WampProtocolError(f"{_name(layout)}.{field} must be {kind.description}")
    if len(items) > fixed and not _ARGS.check(items[fixed]):
        raise WampProtocolError(f"{_name(layout)}.args must be {_ARGS.description}")
    if len(items) > fixed + 1 and not _KWARGS.check(items[fixed + 1]):
        raise WampProtocolError(f"{_name(layout)}.kwargs must be {_KWARGS.description}")
    return layout.cls(*items[1:])


def _name(layout: _Layout) -> str:
    return MessageType(layout.cls.TYPE).name


def _arity(low: int, high: int) -> str:
    return str(low) if low == high else f"{low} to {high}"


# --- message -> list ---------------------------------------------------------


def message_to_list(message: Message) -> list[Any]:
    """The wire list for a message, ready for any serializer.

    Payload elements are appended as given; an absent ``args`` is sent as ``[]``
    only when ``kwargs`` follows it, because the wire format is positional.
    """
    layout = _BY_CLASS[type(message)]
    items = [layout.cls.TYPE, *layout.fixed(message)]
    if layout.payload:
        # Every payload-carrying class has args and kwargs; the union hides that.
        args: list[Any] | None = getattr(message, "args")  # noqa: B009
        kwargs: dict[str, Any] | None = getattr(message, "kwargs")  # noqa: B009
        if kwargs is not None:
            items.append([] if args is None else args)
            items.append(kwargs)
        elif args is not None:
            items.append(args)
    return items
