"""Unidirectional streams: a channels.v1 session the server subscribes for the client.

The client names channels in the URL; they are subscribed with channels.v1
``subscribe`` requests (so access rules, hooks, limits and recovery are the
protocol's own), and what the session sends is rewritten as SSE events or NDJSON
lines. Each SSE event's id holds the position of every channel, so a
reconnecting EventSource resumes where it was (``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import orjson

from hub.close_codes import CloseCode
from hub.engine import StreamPosition
from hub.engine.topics import is_pattern
from hub.errors import HubError
from hub.fallback.session import StreamSession
from hub.fallback.wire import encode_positions, ndjson_line, sse_event

# Seconds the subscribes may take before the stream is refused (503).
SUBSCRIBE_TIMEOUT = 10.0

# channels.v1 error codes (docs/channels.md) as HTTP statuses.
_STATUS = {
    -32011: HTTPStatus.FORBIDDEN,
    -32017: HTTPStatus.SERVICE_UNAVAILABLE,
}


class UnidirectionalRefused(HubError):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Subscriptions:
    """The subscribe requests of one stream, and the rewriting of what comes back."""

    def __init__(
        self, channels: list[str], since: dict[str, StreamPosition], *, ndjson: bool
    ) -> None:
        self._channels = channels
        self._since = since
        self._ndjson = ndjson
        self._pending = {index: channel for index, channel in enumerate(channels, 1)}
        # Exact channels only: a pattern's deliveries come from many streams.
        self._positions: dict[str, StreamPosition] = {}

    def requests(self) -> list[str]:
        messages = []
        for index, channel in self._pending.items():
            params: dict[str, Any] = {"channel": channel}
            position = self._since.get(channel)
            if position is not None and not is_pattern(channel):
                params["since"] = {"offset": position.offset, "epoch": position.epoch}
            request = {"jsonrpc": "2.0", "id": index, "method": "subscribe", "params": params}
            messages.append(orjson.dumps(request).decode())
        return messages

    async def start(self, session: StreamSession) -> bytes:
        """Wait for every subscribe's answer: the stream's first events, or refused."""
        first: list[bytes] = []
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                while self._pending:
                    messages = await session.outbound(1.0)
                    first.extend(chunk for m in messages if (chunk := self.encode(m)) is not None)
                    if self._pending and session.closing is not None:
                        code, reason = session.closing
                        raise UnidirectionalRefused(
                            HTTPStatus.FORBIDDEN
                            if code == CloseCode.POLICY_VIOLATION
                            else HTTPStatus.SERVICE_UNAVAILABLE,
                            reason or f"closed ({code})",
                        )
        except TimeoutError:
            raise UnidirectionalRefused(
                HTTPStatus.SERVICE_UNAVAILABLE, "the subscriptions did not complete in time"
            ) from None
        return b"".join(first)

    def encode(self, message: bytes) -> bytes | None:
        """One message of the session as the stream's events (None: nothing to say)."""
        try:
            parsed = orjson.loads(message)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(parsed, dict):
            return None
        if parsed.get("method") == "message":
            params = parsed.get("params")
            return self._publication(params) if isinstance(params, dict) else None
        index = parsed.get("id")
        if isinstance(index, int) and index in self._pending:
            channel = self._pending.pop(index)
            error = parsed.get("error")
            if isinstance(error, dict):
                code = error.get("code")
                status = (
                    _STATUS.get(code, HTTPStatus.BAD_REQUEST)
                    if isinstance(code, int)
                    else HTTPStatus.BAD_REQUEST
                )
                raise UnidirectionalRefused(status, f"{channel}: {error.get('message')}")
            result = parsed.get("result")
            return self._subscribed(channel, result) if isinstance(result, dict) else None
        return None

    def _subscribed(self, channel: str, result: dict[str, Any]) -> bytes:
        offset, epoch = result.get("offset", 0), result.get("epoch", "")
        recovered = result.get("recovered")
        since = self._since.get(channel)
        if not is_pattern(channel):
            start = since.offset if recovered and since is not None else offset
            self._positions[channel] = StreamPosition(start, epoch)
        body: dict[str, Any] = {"channel": channel, "offset": offset, "epoch": epoch}
        if recovered is not None:
            body["recovered"] = recovered
        out = [self._event("subscribed", body)]
        for publication in result.get("publications") or []:
            if isinstance(publication, dict):
                out.append(self._publication(publication))
        return b"".join(out)

    def _publication(self, params: dict[str, Any]) -> bytes:
        channel = params.get("channel")
        offset = params.get("offset")
        if (
            isinstance(channel, str)
            and channel in self._positions
            and "subscription" not in params
            and isinstance(offset, int)
        ):
            self._positions[channel] = StreamPosition(offset, str(params.get("epoch", "")))
        return self._event("message", params)

    def _event(self, kind: str, body: dict[str, Any]) -> bytes:
        if self._ndjson:
            return ndjson_line({"event": kind, **body})
        event_id = encode_positions(self._positions) if self._positions else None
        return sse_event(
            orjson.dumps(body), event=None if kind == "message" else kind, event_id=event_id
        )
