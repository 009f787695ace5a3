"""The admin page's server side: off by default, its own credentials, its methods only."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from hub import Hub
from hub.config import ConfigError, parse_config
from tests.api.conftest import KEY
from tests.auth_helpers import fast_hash
from tests.conftest import HubFactory

PASSWORD = "an admin password"


def admin_config(**sections: Any) -> dict[str, Any]:
    return {
        "api": {"port": 0},
        "admin": {"enabled": True, "users": {"ops": fast_hash(PASSWORD)}},
        **sections,
    }


def basic(user: str = "ops", password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def base(hub: Hub) -> str:
    assert hub.api is not None
    return hub.api.url


async def request(
    method: str, url: str, *, headers: dict[str, str] | None = None, json: Any = None
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers, json=json) as response,
    ):
        return response.status, dict(response.headers), await response.read()


def test_enabled_without_users_is_a_config_error() -> None:
    """[admin] enabled = true without users stops the start with a message naming the key."""
    with pytest.raises(ConfigError, match="admin"):
        parse_config({"admin": {"enabled": True}})


async def test_off_by_default(make_hub: HubFactory) -> None:
    """Without [admin], /admin on the API's listener is a 404."""
    hub = await make_hub({"api": {"keys": [KEY], "port": 0}})
    status, _, _ = await request("GET", f"{base(hub)}/admin", headers=basic())
    assert status == 404


async def test_credentials_are_required(make_hub: HubFactory) -> None:
    """No or wrong credentials get 401 with a Basic challenge; an API key is not enough."""
    hub = await make_hub(admin_config(api={"port": 0, "keys": [KEY]}))
    url = f"{base(hub)}/admin"
    status, headers, _ = await request("GET", url)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Basic realm="wshub admin"')
    assert (await request("GET", url, headers=basic(password="wrong")))[0] == 401
    assert (await request("GET", url, headers={"Authorization": f"apikey {KEY}"}))[0] == 401
    assert (await request("GET", url, headers={"Authorization": "Basic !!!"}))[0] == 401
    assert hub.metrics.auth_failures.labels("admin").value == 4


async def test_serves_the_page_with_a_strict_policy(make_hub: HubFactory) -> None:
    """The page and its files are served (no API key configured); unknown files are 404."""
    hub = await make_hub(admin_config())
    status, headers, body = await request("GET", f"{base(hub)}/admin", headers=basic())
    assert status == 200
    assert b"wshub admin" in body
    assert headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    status, headers, _ = await request("GET", f"{base(hub)}/admin/admin.js", headers=basic())
    assert status == 200
    assert headers["Content-Type"].startswith("text/javascript")
    assert (await request("GET", f"{base(hub)}/admin/secrets.txt", headers=basic()))[0] == 404
    # The API itself stays closed: no key configured.
    assert (await request("POST", f"{base(hub)}/api/info", headers=basic(), json={}))[0] == 401


async def test_methods(make_hub: HubFactory) -> None:
    """info, stats and publish answer; counters move with traffic."""
    hub = await make_hub(admin_config())
    url = f"{base(hub)}/admin/api"
    status, _, body = await request("POST", f"{url}/info", headers=basic(), json={})
    assert status == 200
    assert b'"nodes"' in body
    await hub.publish("a", 1)
    status, _, body = await request("POST", f"{url}/stats", headers=basic(), json={})
    assert status == 200
    assert b'"publications":1' in body
    status, _, body = await request(
        "POST", f"{url}/publish", headers=basic(), json={"channel": "a", "data": 2}
    )
    assert status == 200
    assert b'"offset":2' in body
    status, _, body = await request(
        "POST", f"{url}/publish", headers=basic(), json={"channel": "a/#/b", "data": 2}
    )
    assert status == 400


async def test_only_its_methods_only_json_only_same_origin(make_hub: HubFactory) -> None:
    """Methods outside the page's are 404; a form post is 415; a foreign Origin 403."""
    hub = await make_hub(admin_config())
    url = f"{base(hub)}/admin/api"
    for method in ("rpc", "revoke", "subscribe", "batch"):
        assert (await request("POST", f"{url}/{method}", headers=basic(), json={}))[0] == 404
    form = {**basic(), "Content-Type": "application/x-www-form-urlencoded"}
    assert (await request("POST", f"{url}/info", headers=form))[0] == 415
    foreign = {**basic(), "Origin": "https://evil.example"}
    assert (await request("POST", f"{url}/info", headers=foreign, json={}))[0] == 403
    own = {**basic(), "Origin": base(hub)}
    assert (await request("POST", f"{url}/info", headers=own, json={}))[0] == 200
