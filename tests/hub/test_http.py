"""Plain HTTP GETs on the WebSocket port: health, metrics, OpenRPC and static files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from hub import Hub


async def http_get(hub: Hub, path: str) -> tuple[int, dict[str, str], bytes]:
    """Send a raw GET (path sent verbatim, no client-side normalisation); read to EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        )
        async with asyncio.timeout(5):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


class Point(BaseModel):
    x: float
    y: float


def add_methods(hub: Hub) -> None:
    @hub.rpc("math.add")
    async def add(a: int, b: int = 2) -> int:
        """Add two integers."""
        return a + b

    @hub.rpc("geo.mirror")
    def mirror(point: Point) -> Point:
        return Point(x=point.y, y=point.x)


async def test_healthz(hub: Hub, connect) -> None:
    """GET /healthz answers JSON with status ok and the open session count."""
    await connect(hub)
    status, headers, body = await http_get(hub, "/healthz?probe=1")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "sessions": 1}


async def test_metrics_count_connections(hub: Hub, connect) -> None:
    """GET /metrics is Prometheus text counting the connections opened, by subprotocol."""
    await connect(hub, "jsonrpc")
    status, headers, body = await http_get(hub, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert "# TYPE wshub_connections_opened_total counter" in text
    assert 'wshub_connections_opened_total{subprotocol="jsonrpc.2.0"} 1.0' in text
    assert 'wshub_connections_active{subprotocol="jsonrpc.2.0"} 1.0' in text


async def test_openrpc_document_lists_methods_with_schemas(hub: Hub) -> None:
    """GET /openrpc.json describes every method with its param and result schemas."""
    add_methods(hub)
    status, headers, body = await http_get(hub, "/openrpc.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert document["openrpc"].startswith("1.")
    methods = {method["name"]: method for method in document["methods"]}
    assert sorted(methods) == ["geo.mirror", "math.add"]
    add = methods["math.add"]
    assert add["description"] == "Add two integers."
    assert add["params"] == [
        {"name": "a", "required": True, "schema": {"title": "A", "type": "integer"}},
        {"name": "b", "required": False, "schema": {"default": 2, "title": "B", "type": "integer"}},
    ]
    assert add["result"]["schema"] == {"type": "integer"}
    mirror = methods["geo.mirror"]
    assert mirror["params"][0]["schema"] == {"$ref": "#/components/schemas/Point"}
    point = document["components"]["schemas"]["Point"]
    assert point["required"] == ["x", "y"]
    assert point["properties"]["x"]["type"] == "number"
    assert resolve(document, mirror["result"]["schema"]) == point


def resolve(document: dict, schema: dict) -> dict:
    """Follow a local ``$ref`` (OpenRPC allows a schema inline or by reference)."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


async def test_rpc_discover_returns_the_same_document(hub: Hub, jsonrpc) -> None:
    """The reserved method ``rpc.discover`` returns the document served at /openrpc.json."""
    add_methods(hub)
    peer = await jsonrpc(hub)
    discovered = await peer.call("rpc.discover")
    _, _, body = await http_get(hub, "/openrpc.json")
    assert discovered == json.loads(body)
    assert {m["name"] for m in discovered["methods"]} == {"math.add", "geo.mirror"}


@pytest.fixture
async def static_hub(make_hub, tmp_path: Path) -> Hub:
    """A hub serving ``tmp/site``, with a secret file beside (not inside) the site."""
    site = tmp_path / "site"
    (site / "js").mkdir(parents=True)
    (site / "index.html").write_text("<h1>home</h1>")
    (site / "js" / "app.js").write_text("console.log('hi')")
    (site / "my page.html").write_text("spaced")
    (tmp_path / "secret.txt").write_text("do not serve")
    (site / "escape").symlink_to(tmp_path)
    return await make_hub({"server": {"static_dir": str(site)}})


async def test_static_files_are_served(static_hub: Hub) -> None:
    """Files under ``server.static_dir`` are served with a content type; / is index.html."""
    status, headers, body = await http_get(static_hub, "/")
    assert (status, body) == (200, b"<h1>home</h1>")
    assert headers["content-type"] == "text/html; charset=utf-8"
    status, headers, body = await http_get(static_hub, "/js/app.js")
    assert (status, body) == (200, b"console.log('hi')")
    assert "javascript" in headers["content-type"]
    status, _, body = await http_get(static_hub, "/my%20page.html")
    assert (status, body) == (200, b"spaced")


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/js/../../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/js/%2E%2E/%2e%2e/secret.txt",
        "/%00",
        "/" + "a" * 5000,
        "/escape/secret.txt",
        "/missing.html",
        "/js/",
    ],
)
async def test_paths_outside_or_missing_are_404(static_hub: Hub, path: str) -> None:
    """Traversal (``..``, symlinks out of the root) and unknown paths get 404, never the file."""
    status, _, body = await http_get(static_hub, path)
    assert status == 404
    assert b"do not serve" not in body
