"""Plain HTTP GETs on the WebSocket port: health, metrics, OpenRPC and static files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from hub import Hub


async def http_get(
    hub: Hub, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Send a raw GET (path sent verbatim, no client-side normalisation); read to EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n".encode()
        )
        async with asyncio.timeout(5):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    received = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        received[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), received, body


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


JS_CLIENT = Path(__file__).resolve().parents[2] / "js-client"


@pytest.mark.parametrize(
    ("path", "source", "content_type"),
    [
        ("/wshub.js", "wshub.js", "text/javascript; charset=utf-8"),
        ("/wshub.js?v=2", "wshub.js", "text/javascript; charset=utf-8"),
        ("/wshub.d.ts", "wshub.d.ts", "application/typescript; charset=utf-8"),
    ],
)
async def test_client_files_are_served(hub: Hub, path: str, source: str, content_type: str) -> None:
    """The JS client and its declarations are served, byte for byte, with their types."""
    status, headers, body = await http_get(hub, path)
    assert status == 200
    assert headers["content-type"] == content_type
    assert body == (JS_CLIENT / source).read_bytes()


@pytest.mark.parametrize("path", ["/wshub.js", "/wshub.d.ts"])
async def test_client_files_may_be_imported_from_any_origin(hub: Hub, path: str) -> None:
    """The public client carries ``Access-Control-Allow-Origin: *`` for a page on another origin."""
    status, headers, _ = await http_get(hub, path, {"Origin": "https://elsewhere.example"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "*"
    # Public code: no credentials are involved, so none may be allowed.
    assert "access-control-allow-credentials" not in headers


async def test_client_cors_does_not_follow_allowed_origins(make_hub) -> None:
    """A hub that admits one origin's sockets still lets any page import the client."""
    hub = await make_hub({"server": {"allowed_origins": ["https://app.example"]}})
    _, headers, _ = await http_get(hub, "/wshub.js", {"Origin": "https://other.example"})
    assert headers["access-control-allow-origin"] == "*"


async def test_hub_pages_carry_no_cors_header(hub: Hub) -> None:
    """The demo page and the JSON endpoints are not opened to other origins."""
    for path in ("/", "/chat.js", "/healthz", "/openrpc.json"):
        status, headers, _ = await http_get(hub, path, {"Origin": "https://elsewhere.example"})
        assert status == 200, path
        assert "access-control-allow-origin" not in headers, path
