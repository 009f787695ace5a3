"""Fuzz target: the JSON-RPC 2.0 codec (``protocols.jsonrpc.codec``).

Properties: ``decode`` raises only ``JsonRpcDecodeError`` (-32700/-32600); the
same message as text or bytes decodes alike; every invalid element can be
answered; every request and response re-encodes and decodes to itself.
"""

from __future__ import annotations

from protocols.jsonrpc.codec import (
    INVALID_REQUEST,
    PARSE_ERROR,
    Incoming,
    Invalid,
    JsonRpcDecodeError,
    Message,
    Request,
    decode,
    encode_error,
    encode_notification,
    encode_request,
    encode_result,
)


def _decode(payload: str | bytes) -> Incoming | int:
    """The decoded messages, or the error code the whole message is refused with."""
    try:
        return decode(payload)
    except JsonRpcDecodeError as exc:
        if exc.code not in (PARSE_ERROR, INVALID_REQUEST):
            raise AssertionError(f"unexpected refusal code {exc.code}") from exc
        # The refusal itself is sent: it must encode.
        encode_error(None, exc.code, exc.message, exc.data)
        return exc.code


def _reencode(message: Message) -> bytes:
    if isinstance(message, Invalid):
        error = message.error
        return encode_error(message.id, error.code, error.message, error.data)
    if isinstance(message, Request):
        if message.is_notification:
            return encode_notification(message.method, message.params)
        return encode_request(message.id, message.method, message.params)
    if message.error is not None:
        error = message.error
        return encode_error(message.id, error.code, error.message, error.data)
    return encode_result(message.id, message.result)


def _check_round_trip(message: Message) -> None:
    encoded = _reencode(message)
    if isinstance(message, Invalid):
        return  # an error reply, not a message the peer sent
    again = decode(encoded).messages
    if again != [message]:
        raise AssertionError(f"round trip changed {message!r} into {again!r}")


def check(data: bytes) -> None:
    outcome = _decode(data)
    try:
        text: str | None = data.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None:
        as_text = _decode(text)
        if as_text != outcome:
            raise AssertionError(f"text and bytes differ: {as_text!r} != {outcome!r}")
    if isinstance(outcome, int):
        return
    if not outcome.messages:
        raise AssertionError("decoded to no messages")
    for message in outcome.messages:
        _check_round_trip(message)
