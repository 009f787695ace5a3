"""Subprotocol negotiation: names, aliases, the default, refusals, pins and plug-ins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from hub import CallContext, Hub, HubConfig, ProtocolSpec
from hub.registry import ENTRY_POINT_GROUP, ProtocolRegistry, default_registry
from protocols.jsonrpc import PROTOCOL as JSONRPC
from tests.hub._protocols import ECHO


def with_echo() -> ProtocolRegistry:
    return ProtocolRegistry([JSONRPC, ECHO])


def add_whoami(hub: Hub) -> None:
    @hub.rpc("whoami")
    async def whoami(ctx: CallContext) -> str:
        return ctx.subprotocol


async def refused(connect, hub: Hub, *offered: str, path: str = "/") -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        await connect(hub, *offered, path=path)
    assert info.value.response.status_code == 400
    return info.value


@pytest.mark.parametrize("offered", ["jsonrpc.2.0", "jsonrpc"])
async def test_jsonrpc_by_name_or_alias(hub: Hub, jsonrpc, offered: str) -> None:
    """``jsonrpc.2.0`` or its alias ``jsonrpc`` is accepted; the server echoes the offer."""
    add_whoami(hub)
    peer = await jsonrpc(hub, offered)
    assert peer.ws.subprotocol == offered
    assert await peer.call("whoami") == "jsonrpc.2.0"


async def test_no_offer_gets_the_default_protocol(hub: Hub, jsonrpc) -> None:
    """A client offering no subprotocol is served the default (jsonrpc.2.0) and can call."""
    add_whoami(hub)
    peer = await jsonrpc(hub, bare=True)
    assert peer.ws.subprotocol is None
    assert peer.ws.response is not None
    assert "Sec-WebSocket-Protocol" not in peer.ws.response.headers
    assert await peer.call("whoami") == "jsonrpc.2.0"


async def test_configured_default_protocol(make_hub, connect) -> None:
    """``server.default_subprotocol`` picks what a client offering nothing speaks."""
    hub = await make_hub({"server": {"default_subprotocol": "echo.v1"}}, registry=with_echo())
    ws = await connect(hub)
    await ws.send("hi")
    assert await ws.recv() == "echo.v1:hi"


async def test_unknown_offer_is_refused_with_400_listing_wire_names(hub: Hub, connect) -> None:
    """Offering only unknown names fails the handshake with 400 and a body naming what is spoken."""
    exc = await refused(connect, hub, "stomp", "xmpp")
    body = bytes(exc.response.body).decode()
    assert "unsupported subprotocol stomp, xmpp" in body
    assert "this server speaks " + ", ".join(hub.server.registry.wire_names) in body
    assert "jsonrpc.2.0" in body
    assert 'wshub_handshakes_refused_total{reason="subprotocol"} 1.0' in (
        hub.metrics.render().decode()
    )


async def test_unknown_names_are_skipped_for_a_known_one(hub: Hub, connect) -> None:
    """Unknown names before a known one do not fail the handshake."""
    ws = await connect(hub, "stomp", "jsonrpc")
    assert ws.subprotocol == "jsonrpc"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (("echo.v1", "jsonrpc.2.0"), "echo.v1"),
        (("jsonrpc.2.0", "echo.v1"), "jsonrpc.2.0"),
        (("jsonrpc", "jsonrpc.2.0"), "jsonrpc"),
        (("nope", "echo", "jsonrpc"), "echo"),
    ],
)
async def test_client_preference_order_is_honoured(
    make_hub, connect, offered: tuple[str, ...], chosen: str
) -> None:
    """The first offered name the server speaks wins, whatever the registration order."""
    hub = await make_hub(registry=with_echo())
    ws = await connect(hub, *offered)
    assert ws.subprotocol == chosen


@pytest.mark.parametrize("pinned_as", ["echo.v1", "echo"])
async def test_path_pin(make_hub, connect, jsonrpc, pinned_as: str) -> None:
    """A protocol pinned to a path (by name or alias) is served there only; others everywhere."""
    hub = await make_hub({"server": {"paths": {pinned_as: "/echo"}}}, registry=with_echo())
    exc = await refused(connect, hub, "echo.v1")
    assert "this server speaks jsonrpc.2.0, jsonrpc" in bytes(exc.response.body).decode()

    pinned = await connect(hub, "echo.v1", path="/echo")
    assert pinned.subprotocol == "echo.v1"
    # No offer on the pinned path: the pinned protocol is the default there.
    bare = await connect(hub, path="/echo?token=x")
    await bare.send("hi")
    assert await bare.recv() == "echo.v1:hi"

    add_whoami(hub)
    peer = await jsonrpc(hub, "jsonrpc", path="/anything/else")
    assert await peer.call("whoami") == "jsonrpc.2.0"


async def test_server_subprotocols_restricts_what_is_spoken(make_hub, connect) -> None:
    """``server.subprotocols`` serves only the listed protocols; the others are refused."""
    hub = await make_hub({"server": {"subprotocols": ["jsonrpc.2.0"]}}, registry=with_echo())
    assert hub.server.registry.names == ["jsonrpc.2.0"]
    exc = await refused(connect, hub, "echo.v1")
    assert "echo" not in bytes(exc.response.body).decode().split("speaks", 1)[1]
    assert (await connect(hub, "jsonrpc.2.0")).subprotocol == "jsonrpc.2.0"


def test_restricting_to_an_unknown_protocol_fails_at_construction() -> None:
    """Naming an unregistered protocol in ``server.subprotocols`` fails early, listing choices."""
    config = HubConfig.model_validate({"server": {"subprotocols": ["stomp"]}})
    with pytest.raises(ValueError, match=r"unknown subprotocol\(s\) stomp; built in: jsonrpc"):
        Hub(config, registry=ProtocolRegistry([JSONRPC]))


async def test_default_not_served_refuses_clients_offering_nothing(make_hub, connect) -> None:
    """With the default protocol disabled, a client offering nothing is refused with advice."""
    hub = await make_hub(
        {"server": {"subprotocols": ["echo.v1"]}},
        registry=with_echo(),
    )
    exc = await refused(connect, hub)
    body = bytes(exc.response.body).decode()
    assert "no subprotocol offered" in body
    assert "echo.v1" in body


def test_a_wire_name_cannot_be_claimed_twice() -> None:
    """Registering a second protocol under a taken wire name is an error."""
    clash = ProtocolSpec(name="other", aliases=("jsonrpc",), factory=ECHO.factory)
    with pytest.raises(ValueError, match=r"'jsonrpc' is already served by jsonrpc\.2\.0"):
        ProtocolRegistry([JSONRPC, clash])


THIRD_PARTY = """
from hub import ProtocolSpec, SubprotocolHandler


class ShoutHandler(SubprotocolHandler):
    def __init__(self, session, hub):
        self.session = session

    async def on_message(self, message):
        self.session.send(message.upper())


PROTOCOL = ProtocolSpec(name="shout.v1", factory=ShoutHandler)


def broken():
    return "not a spec"
"""


def install_dist(root: Path, module: str, entry_points: str) -> None:
    """Write a module and its ``.dist-info`` (as pip would) under ``root``."""
    (root / f"{module}.py").write_text(THIRD_PARTY)
    dist_info = root / f"{module}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def shout_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed third-party distribution declaring a ``wshub.protocols`` entry point."""
    install_dist(
        tmp_path, "wshub_shout", f"[{ENTRY_POINT_GROUP}]\nshout.v1 = wshub_shout:PROTOCOL\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "wshub_shout", raising=False)


@pytest.mark.usefixtures("shout_dist")
async def test_entry_point_protocol_is_negotiated_when_named(make_hub, connect) -> None:
    """A protocol under ``wshub.protocols`` is spoken once server.subprotocols names it."""
    assert "shout.v1" in default_registry(["shout.v1"]).names
    hub = await make_hub({"server": {"subprotocols": ["jsonrpc.2.0", "shout.v1"]}})
    assert hub.server.registry.names == ["jsonrpc.2.0", "shout.v1"]
    ws = await connect(hub, "shout.v1")
    assert ws.subprotocol == "shout.v1"
    await ws.send("quiet please")
    assert await ws.recv() == "QUIET PLEASE"
    # The built-in protocols named beside it are still there.
    assert (await connect(hub, "jsonrpc.2.0")).subprotocol == "jsonrpc.2.0"


@pytest.mark.usefixtures("shout_dist")
async def test_installed_plugin_is_not_served_unless_named(make_hub, connect) -> None:
    """An installed plug-in is neither imported nor served by a hub that does not name it."""
    hub = await make_hub()
    assert "shout.v1" not in hub.server.registry.wire_names
    assert "wshub_shout" not in sys.modules
    exc = await refused(connect, hub, "shout.v1")
    assert "unsupported subprotocol shout.v1" in bytes(exc.response.body).decode()


@pytest.mark.usefixtures("shout_dist")
def test_unknown_name_lists_installed_plugins() -> None:
    """Naming a protocol nobody provides lists the built-in ones and the installed plug-ins."""
    config = HubConfig.model_validate({"server": {"subprotocols": ["shout.v2"]}})
    with pytest.raises(
        ValueError, match=r"installed plug-ins \(wshub.protocols entry points\): shout.v1"
    ):
        Hub(config)


def test_entry_point_not_providing_a_spec_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry point that yields something other than a ProtocolSpec fails naming itself."""
    install_dist(tmp_path, "wshub_broken", f"[{ENTRY_POINT_GROUP}]\nbroken = wshub_broken:broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "wshub_broken", raising=False)
    # Not named: never imported, so it breaks no hub.
    assert "broken" not in default_registry().names
    with pytest.raises(TypeError, match=r"entry point broken \(wshub_broken:broken\) did not"):
        default_registry(["broken"])


def test_entry_point_named_after_another_protocol_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry point whose name is not its protocol's canonical name fails, naming both."""
    install_dist(tmp_path, "wshub_shout", f"[{ENTRY_POINT_GROUP}]\nshout = wshub_shout:PROTOCOL\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "wshub_shout", raising=False)
    with pytest.raises(TypeError, match=r"provides protocol 'shout.v1': name the entry point"):
        default_registry(["shout"])


def test_settings_naming_unserved_protocols_are_reported() -> None:
    """A default or a path pin naming a protocol the server lacks is listed as a problem."""
    config = HubConfig.model_validate(
        {"server": {"default_subprotocol": "jsonrpc2", "paths": {"stomp": "/stomp"}}}
    )
    problems = Hub(config, registry=ProtocolRegistry([JSONRPC])).server.config_problems()
    assert problems == [
        "server.default_subprotocol: 'jsonrpc2' is not served (clients offering no "
        "subprotocol would be refused); this server speaks jsonrpc.2.0, jsonrpc",
        "server.paths: 'stomp' is not served; this server speaks jsonrpc.2.0, jsonrpc",
    ]
    assert Hub(registry=ProtocolRegistry([JSONRPC])).server.config_problems() == []


async def test_a_plugins_handler_modules_are_imported_at_start(make_hub) -> None:
    """A spec's handler_modules are imported by start(): a missing one fails the start,
    not the protocol's first connection."""
    spec = ProtocolSpec(
        name="later.v1", factory=ECHO.factory, handler_modules=("tests.hub.no_such_handler",)
    )
    with pytest.raises(ModuleNotFoundError, match=r"tests\.hub\.no_such_handler"):
        await make_hub(registry=ProtocolRegistry([JSONRPC, spec]))
