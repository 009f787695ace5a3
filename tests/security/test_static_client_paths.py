"""Only the JS client's own files are served from js-client/: its tests, e2e harness
and node modules are not, whatever path tricks reach for them (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub import Hub
from tests.hub.test_http import http_get

JS_CLIENT = Path(__file__).resolve().parents[2] / "js-client"


@pytest.mark.parametrize(
    "path",
    [
        "/wshub/../test/rpc.test.js",
        "/wshub../test/rpc.test.js",
        "/wshub.js/../test/rpc.test.js",
        "/wshub%2f..%2ftest%2frpc.test.js",
        "/wshub/%2e%2e/test/fake-websocket.js",
        "/wshub/../e2e/hub-process.js",
        "/wshub/../e2e/chat.e2e.test.js",
        "/wshub/../node_modules/ws/index.js",
        "/wshub/../package.json.js",
        "/wshub-test.js",
        "/wshubx.js",
        "/test/rpc.test.js",
        "/js-client/wshub.js",
        "/js-client/test/rpc.test.js",
        "/../js-client/test/rpc.test.js",
    ],
)
async def test_only_listed_client_files_are_served(hub: Hub, path: str) -> None:
    """Paths that once reached any .js under js-client/ (tests included) now get 404."""
    status, _, body = await http_get(hub, path)
    assert status == 404
    assert b"node:test" not in body
    assert b"import" not in body


def test_the_reached_files_exist() -> None:
    """The files the paths above aim at are really there, so the 404s mean refusal."""
    for relative in ("test/rpc.test.js", "test/fake-websocket.js", "e2e/hub-process.js"):
        assert (JS_CLIENT / relative).is_file(), relative
