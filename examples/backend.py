"""A backend for wshub in one file (aiohttp): it decides, it listens, it publishes.

* ``POST /wshub/subscribe``: the hub's subscribe proxy; refuses ``admin/...``
  to everyone but the user "admin".
* ``POST /wshub/rpc``: serves ``shop.*`` methods for every protocol.
* ``POST /wshub/events``: the hub's webhooks, signature checked; on a user's
  join it greets them through the server API.

Run it beside a hub configured with examples/backend.toml::

    WSHUB_API_KEY=example-api-key-0123456789 WEBHOOK_SECRET=example-webhook-secret \\
        python examples/backend.py            # listens on 127.0.0.1:9000
    wshub --config examples/backend.toml
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from typing import Any

from aiohttp import web

from hub.client import ApiClient

SIGNATURE_TOLERANCE = 300  # seconds: older deliveries are refused as replays
# The webhook events received, for whoever wants to look.
EVENTS = web.AppKey("events", list[dict[str, Any]])


def verify(secret: bytes, header: str, body: bytes) -> bool:
    """The X-Wshub-Signature check (docs/webhooks.md)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - timestamp) <= SIGNATURE_TOLERANCE
    return fresh and hmac.compare_digest(expected, fields.get("v1", ""))


def make_app(api: ApiClient, webhook_secret: bytes) -> web.Application:
    app = web.Application()
    app[EVENTS] = []

    async def subscribe(request: web.Request) -> web.Response:
        event = await request.json()
        if event["channel"].startswith("admin/") and event["user"] != "admin":
            return web.json_response({"error": {"code": 403, "message": "admins only"}})
        return web.json_response({"result": {}})

    async def rpc(request: web.Request) -> web.Response:
        event = await request.json()
        if event["method"] == "shop.price":
            return web.json_response({"result": {"sku": event["params"]["sku"], "eur": 9.5}})
        return web.json_response({"error": {"code": -32601, "message": "Method not found"}})

    async def events(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(webhook_secret, request.headers.get("X-Wshub-Signature", ""), body):
            return web.Response(status=401, text="bad signature")
        event: dict[str, Any] = json.loads(body)
        app[EVENTS].append(event)
        if event["event"] == "join":
            await api.publish(event["channel"], {"text": f"welcome, {event['user']}"})
        return web.Response(status=204)

    app.router.add_post("/wshub/subscribe", subscribe)
    app.router.add_post("/wshub/rpc", rpc)
    app.router.add_post("/wshub/events", events)
    return app


async def main(port: int = 9000) -> None:
    api = ApiClient(
        os.environ.get("WSHUB_API_URL", "http://127.0.0.1:8766"), os.environ["WSHUB_API_KEY"]
    )
    runner = web.AppRunner(make_app(api, os.environ["WEBHOOK_SECRET"].encode()))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"backend listening on http://127.0.0.1:{port}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await api.close()


if __name__ == "__main__":
    asyncio.run(main())
