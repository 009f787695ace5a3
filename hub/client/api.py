"""Clients of the server API (docs/api.md): :class:`ApiClient` (asyncio) and
:class:`SyncApiClient` (blocking, standard library only).

::

    async with ApiClient("http://127.0.0.1:8766", key) as api:
        await api.publish("news", {"headline": "hello"})

    api = SyncApiClient("http://127.0.0.1:8766", key)
    api.publish("news", {"headline": "hello"})
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import aiohttp

from hub.client.errors import ApiRequestError, ApiUnreachable


def _params(**params: Any) -> dict[str, Any]:
    """Drop unset optional parameters (the API has defaults for them)."""
    return {name: value for name, value in params.items() if value is not None}


def _outcome(status: int, body: Any) -> Any:
    if isinstance(body, dict) and status == 200 and "result" in body:
        return body["result"]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        raise ApiRequestError(
            status, int(error.get("code", 0)), str(error.get("message", "")), error.get("data")
        )
    raise ApiUnreachable(f"HTTP {status} without a server API answer: {body!r:.200}")


class _Methods:
    """The API's methods over one ``call``; subclasses say how a request travels."""

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def publish(
        self,
        channel: str,
        data: Any,
        *,
        meta: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """``{offset, epoch}`` of the publication.

        ``meta``: ``{content_type?, user_properties?, payload_format?}``, which
        MQTT 5 subscribers get as PUBLISH properties (docs/api.md).
        """
        return self.call(
            "publish",
            _params(channel=channel, data=data, meta=meta, idempotency_key=idempotency_key),
        )

    def broadcast(
        self, channels: list[str], data: Any, *, meta: dict[str, Any] | None = None
    ) -> Any:
        return self.call("broadcast", _params(channels=channels, data=data, meta=meta))

    def presence(self, channel: str) -> Any:
        return self.call("presence", {"channel": channel})

    def presence_stats(self, channel: str) -> Any:
        return self.call("presence_stats", {"channel": channel})

    def history(
        self,
        channel: str,
        *,
        limit: int | None = None,
        since: dict[str, Any] | None = None,
        reverse: bool | None = None,
    ) -> Any:
        return self.call(
            "history", _params(channel=channel, limit=limit, since=since, reverse=reverse)
        )

    def subscribe(self, user: str, channel: str) -> Any:
        return self.call("subscribe", {"user": user, "channel": channel})

    def unsubscribe(self, user: str, channel: str) -> Any:
        return self.call("unsubscribe", {"user": user, "channel": channel})

    def disconnect(self, user: str, *, code: int | None = None, reason: str | None = None) -> Any:
        return self.call("disconnect", _params(user=user, code=code, reason=reason))

    def revoke(self, user: str, *, before: float | None = None) -> Any:
        return self.call("revoke", _params(user=user, before=before))

    def channels(self, pattern: str | None = None) -> Any:
        return self.call("channels", _params(pattern=pattern))

    def info(self) -> Any:
        return self.call("info", {})

    def rpc(self, method: str, params: Any = None) -> Any:
        return self.call("rpc", _params(method=method, params=params))

    def batch(self, commands: list[dict[str, Any]]) -> Any:
        """``commands``: ``[{"method": ..., "params": {...}}, ...]``; the replies, in order."""
        return self.call("batch", {"commands": commands})


class ApiClient(_Methods):
    """The server API from asyncio: every method is a coroutine.

    One aiohttp session (a bounded connection pool) per client; close it with
    ``await api.close()`` or ``async with``.
    """

    def __init__(
        self, url: str, key: str, *, timeout: float = 10.0, max_connections: int = 16
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"apikey {key}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections),
            )
        return self._session

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Any method by name; its result, or ApiRequestError / ApiUnreachable."""
        url = f"{self.url}/api/{method}"
        try:
            async with self._client().post(url, json=params or {}) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = await response.text()
                return _outcome(response.status, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiUnreachable(f"cannot reach the server API at {url}: {exc!r}") from None


class SyncApiClient(_Methods):
    """The server API from blocking code (scripts, Django views): the standard library only."""

    def __init__(self, url: str, key: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._key = key
        self._timeout = timeout

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Any method by name; its result, or ApiRequestError / ApiUnreachable."""
        url = f"{self.url}/api/{method}"
        request = urllib.request.Request(
            url,
            data=json.dumps(params or {}).encode(),
            headers={"Authorization": f"apikey {self._key}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return _outcome(response.status, _decode(response.read()))
        except urllib.error.HTTPError as exc:
            with exc:
                return _outcome(exc.code, _decode(exc.read()))
        except (urllib.error.URLError, OSError) as exc:
            raise ApiUnreachable(f"cannot reach the server API at {url}: {exc}") from None


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
