"""Hubs with the server API on, and curl as the backend that calls it (no wshub code)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from hub import Hub
from tests.api.backend import Backend
from tests.conftest import HubFactory

# The protocols' real-client fixtures, for the API's subscribers.
from tests.protocols.channels.conftest import channels  # noqa: F401
from tests.protocols.mqtt.conftest import paho_peer  # noqa: F401
from tests.protocols.wamp.conftest import wamp, wamp_session  # noqa: F401

KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"


def api_config(**api: Any) -> dict[str, Any]:
    """Config sections for a hub whose API listens on a free port with KEY."""
    return {"api": {"keys": [KEY], "port": 0, **api}}


async def curl(
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, Any]:
    """One request with curl: (HTTP status, the body decoded as JSON, or the raw text)."""
    command = ["curl", "-sS", "-X", method, "-o", "-", "-w", "\n%{http_code}", url]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        out, err = await process.communicate(body)
    assert process.returncode == 0, err.decode()
    text, _, status = out.decode().rpartition("\n")
    try:
        return int(status), json.loads(text)
    except ValueError:
        return int(status), text


ApiCall = Callable[..., Awaitable[tuple[int, Any]]]


async def call(
    hub: Hub | str, method: str, params: Any = None, *, key: str | None = KEY
) -> tuple[int, Any]:
    """POST /api/<method> with ``params`` as JSON: (status, decoded body)."""
    base = hub if isinstance(hub, str) else _api_url(hub)
    headers = {"Authorization": f"apikey {key}"} if key is not None else {}
    body = json.dumps({} if params is None else params).encode()
    return await curl(f"{base}/api/{method}", body=body, headers=headers)


async def result(hub: Hub | str, method: str, params: Any = None) -> Any:
    """The result of a call; fails the test on an error."""
    status, body = await call(hub, method, params)
    assert status == 200, (status, body)
    return body["result"]


def _api_url(hub: Hub) -> str:
    assert hub.api is not None, "the hub's API is off"
    return hub.api.url


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    """A real HTTP backend (aiohttp) on a free port, answering {"result": {}} unless told."""
    server = Backend()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def api_hub(make_hub: HubFactory) -> Hub:
    """A hub on the memory engine with the API on (key KEY)."""
    return await make_hub(api_config())
