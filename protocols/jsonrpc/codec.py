"""JSON-RPC 2.0 codec: pure functions between wire text and typed messages.

No I/O here. ``decode`` turns one WebSocket message into an :class:`Incoming`
(a single message or a batch); every malformed part becomes an :class:`Invalid`
carrying the error to answer with, so one bad element of a batch never hides
the others. ``JsonRpcDecodeError`` is the only exception this module raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from pydantic import BaseModel

from hub.errors import HubError
from hub.payloads import deeper_than, raw_deeper_than

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

# Absent "id" (a notification) differs from "id": null (a request, discouraged).
NO_ID: Final[Any] = object()

RequestId = str | int | float | None


class JsonRpcDecodeError(HubError):
    """The whole message is unusable; answer with one error whose id is null."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    params: list[Any] | dict[str, Any] | None
    # NO_ID for a notification.
    id: Any = NO_ID

    @property
    def is_notification(self) -> bool:
        return self.id is NO_ID


@dataclass(frozen=True, slots=True)
class Response:
    """A reply from the peer to a call we made: ``error`` set, or ``result``."""

    id: RequestId
    result: Any = None
    error: ErrorObject | None = None


@dataclass(frozen=True, slots=True)
class ErrorObject:
    code: int
    message: str
    data: Any = None


@dataclass(frozen=True, slots=True)
class Invalid:
    """A message that is not valid JSON-RPC; answer it with ``error``."""

    id: RequestId
    error: ErrorObject


Message = Request | Response | Invalid


@dataclass(frozen=True, slots=True)
class Incoming:
    messages: list[Message]
    is_batch: bool


# Defaults of the bounds below (the hub passes limits.max_batch_size and
# limits.max_json_depth).
MAX_BATCH: Final = 100
MAX_DEPTH: Final = 64


def decode(
    payload: str | bytes, *, max_batch: int = MAX_BATCH, max_depth: int = MAX_DEPTH
) -> Incoming:
    """Parse one WebSocket message; raise JsonRpcDecodeError if nothing is usable.

    A batch of more than ``max_batch`` elements is refused whole; a message
    (or batch element) nesting arrays and objects deeper than ``max_depth``
    is an Invalid Request, since its reply could not be encoded.
    """
    value = parse(payload, max_batch=max_batch)
    return classify(payload, value, max_batch=max_batch, max_depth=max_depth)


def parse(payload: str | bytes, *, max_batch: int = MAX_BATCH) -> Any:
    """The JSON value of a message (:func:`decode`'s first half): a batch over
    ``max_batch`` is refused before it is parsed whole."""
    if len(payload) >= SCAN_FROM and _batch_over(payload, max_batch):
        raise JsonRpcDecodeError(
            INVALID_REQUEST,
            "Invalid Request",
            f"batch of more than {max_batch} requests, over the limit of {max_batch}",
        )
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise JsonRpcDecodeError(PARSE_ERROR, "Parse error", str(exc)) from None


def classify(
    payload: str | bytes,
    value: Any,
    *,
    max_batch: int = MAX_BATCH,
    max_depth: int = MAX_DEPTH,
    shallow: bool = False,
) -> Incoming:
    """The messages of ``value``, parsed from ``payload`` (:func:`decode`'s second half).

    ``shallow``: the caller knows ``value`` nests no deeper than ``max_depth``
    (:func:`plain_call` accepted it), so its brackets are not counted again.
    """
    if isinstance(value, list):
        if not value:
            raise JsonRpcDecodeError(INVALID_REQUEST, "Invalid Request", "empty batch")
        if len(value) > max_batch:
            raise JsonRpcDecodeError(
                INVALID_REQUEST,
                "Invalid Request",
                f"batch of {len(value)} requests, over the limit of {max_batch}",
            )
    # After the batch cap: a refused batch is not walked.
    too_deep = not shallow and raw_deeper_than(payload, value, max_depth)
    if isinstance(value, list):
        # A deep batch: which of its elements are deep (the batch adds a level).
        return Incoming(
            [
                _decode_bounded(item, too_deep and deeper_than(item, max_depth), max_depth)
                for item in value
            ],
            is_batch=True,
        )
    # A single message is as deep as the walk above found: not walked twice.
    return Incoming([_decode_bounded(value, too_deep, max_depth)], is_batch=False)


# What plain_call returns for "params" absent.
_ABSENT: Final[Any] = object()


def plain_call(payload: str, value: Any, max_depth: int) -> tuple[Any, str, Any] | None:
    """``(id, method, params)`` of a single request that :func:`classify` would
    find valid as it is, known from a few type checks; None: ask :func:`classify`.

    The common call (an object with an integer or string id, or none, and
    array, object or no params, fewer brackets than ``max_depth``) then costs
    no message objects. ``id`` is :data:`NO_ID` for a notification.
    """
    if type(value) is not dict or value.get("jsonrpc") != "2.0":
        return None
    method = value.get("method")
    call_id = value.get("id", NO_ID)
    params = value.get("params", _ABSENT)
    if type(method) is not str:
        return None
    if call_id is not NO_ID and type(call_id) is not int and type(call_id) is not str:
        return None
    if params is _ABSENT:
        params = None
    elif type(params) is not list and type(params) is not dict:
        return None
    # Nesting deeper than max_depth takes max_depth + 1 brackets opened and
    # closed: a shorter text cannot, nor one with fewer opening brackets.
    if len(payload) > 2 * max_depth + 1 and payload.count("[") + payload.count("{") > max_depth:
        return None
    return call_id, method, params


# Batches shorter than this are parsed whole before their size is checked:
# parsing them costs less than a millisecond.
SCAN_FROM: Final = 16 * 1024
_SPACE = re.compile(r"[ \t\n\r]*")
# The stdlib's C scanner: one value at an index, its end returned.
_scan_one: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__, not in typeshed


def _batch_over(payload: str | bytes, max_batch: int) -> bool:
    """Whether ``payload`` is an array of more than ``max_batch`` elements, known cheaply.

    A refused batch must cost what its cap allows, not what it holds: a 1 MiB
    batch of 25k notifications takes ~10 ms to parse whole. Only the first
    ``max_batch + 1`` elements are scanned (the stdlib's C scanner, one
    element at a time); anything the scan cannot read is left to the parser,
    which reports it.
    """
    if len(payload) < SCAN_FROM:
        return False
    text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
    index = _SPACE.match(text).end()  # type: ignore[union-attr]  # matches the empty string
    if text[index : index + 1] != "[":
        return False  # not a batch: its commas are not counted
    # An array of n elements has n - 1 commas at least.
    if text.count(",") < max_batch:
        return False
    for _ in range(max_batch):
        # Past the "[" or the "," before this element.
        index = _SPACE.match(text, index + 1).end()  # type: ignore[union-attr]
        try:
            _, index = _scan_one(text, index)
        except (StopIteration, ValueError, RecursionError):
            return False
        index = _SPACE.match(text, index).end()  # type: ignore[union-attr]
        if text[index : index + 1] != ",":
            return False  # the array ended (or is malformed) within the cap
    # max_batch elements and a comma: over the cap if one more element follows.
    index = _SPACE.match(text, index + 1).end()  # type: ignore[union-attr]
    try:
        _scan_one(text, index)
    except (StopIteration, ValueError, RecursionError):
        return False
    return True


def _decode_bounded(value: Any, too_deep: bool, max_depth: int) -> Message:
    message = decode_object(value)
    if too_deep and not isinstance(message, Invalid):
        if isinstance(message, Response):
            reply_id = message.id
        else:
            reply_id = None if message.is_notification else message.id
        return _invalid(reply_id, f"JSON nested deeper than {max_depth} levels")
    return message


def decode_object(value: Any) -> Message:
    """Classify one decoded JSON value as a request, a response or invalid."""
    if not isinstance(value, dict):
        return _invalid(None, "a JSON-RPC message must be an object")
    raw_id = value.get("id", NO_ID)
    id_ok = (
        raw_id is NO_ID
        or raw_id is None
        or (isinstance(raw_id, str | int | float) and not isinstance(raw_id, bool))
    )
    reply_id = raw_id if id_ok and raw_id is not NO_ID else None
    if value.get("jsonrpc") != "2.0":
        return _invalid(reply_id, '"jsonrpc" must be exactly "2.0"')
    if not id_ok:
        return _invalid(None, '"id" must be a string, a number or null')
    if "method" in value:
        return _decode_request(value, raw_id)
    if "result" in value or "error" in value:
        return _decode_response(value, reply_id)
    return _invalid(reply_id, 'a message needs "method", or "result" / "error"')


def _decode_request(value: dict[str, Any], raw_id: Any) -> Message:
    reply_id = None if raw_id is NO_ID else raw_id
    method = value["method"]
    if not isinstance(method, str):
        return _invalid(reply_id, '"method" must be a string')
    params = value.get("params")
    if "params" in value and not isinstance(params, list | dict):
        return _invalid(reply_id, '"params" must be an array or an object')
    return Request(method, params, raw_id)


def _decode_response(value: dict[str, Any], reply_id: RequestId) -> Message:
    if "result" in value and "error" in value:
        return _invalid(reply_id, 'a response has "result" or "error", not both')
    if "error" in value:
        error = value["error"]
        if (
            not isinstance(error, dict)
            or not isinstance(error.get("code"), int)
            or isinstance(error.get("code"), bool)
            or not isinstance(error.get("message"), str)
        ):
            return _invalid(reply_id, '"error" must be an object with integer "code" and "message"')
        return Response(
            reply_id, error=ErrorObject(error["code"], error["message"], error.get("data"))
        )
    return Response(reply_id, result=value["result"])


def _invalid(reply_id: RequestId, reason: str) -> Invalid:
    return Invalid(reply_id, ErrorObject(INVALID_REQUEST, "Invalid Request", reason))


# -- encoding -------------------------------------------------------------


class EncodeError(HubError, TypeError):
    """A value that cannot be written as JSON."""


def _default(value: Any) -> Any:
    # pydantic models are the one non-JSON type methods commonly return.
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default)
    except TypeError as exc:
        raise EncodeError(str(exc)) from None


def encode_result(request_id: RequestId, result: Any) -> bytes:
    # dumps() inlined: this runs for every reply.
    try:
        return orjson.dumps(
            {"jsonrpc": "2.0", "id": request_id, "result": result}, default=_default
        )
    except TypeError as exc:
        raise EncodeError(str(exc)) from None


def encode_error(request_id: RequestId, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return dumps({"jsonrpc": "2.0", "id": request_id, "error": error})


def encode_request(request_id: RequestId, method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return dumps(message)


def encode_notification(method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return dumps(message)


def batch_parts(encoded: Sequence[bytes]) -> list[bytes]:
    """The pieces of a batch reply holding already-encoded responses: ``[``, each
    response, the commas, ``]``; one message once concatenated (Session.send_parts)."""
    parts = [b"["]
    for index, reply in enumerate(encoded):
        if index:
            parts.append(b",")
        parts.append(reply)
    parts.append(b"]")
    return parts


def encode_batch(encoded: Sequence[bytes]) -> bytes:
    """Join already-encoded responses into one batch reply, in one copy."""
    return b"".join(batch_parts(encoded))
