"""A protocol brings its own config table: the hub validates it through the protocol's spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import Field

from hub import Hub, ProtocolSpec, Session, SubprotocolHandler
from hub.config import ConfigError, HubConfig, load_config, parse_config
from hub.config_section import Section
from hub.engine import Publication
from hub.registry import ProtocolRegistry, builtin_protocols
from protocols.channels import METHODS
from protocols.mqtt.config import MqttConfig
from protocols.wamp.config import WampConfig
from tests.conftest import Connector, HubFactory


class ShoutConfig(Section):
    """A plug-in's own table, ``[shout]``."""

    suffix: str = "!"
    times: int = Field(1, ge=1)


class ShoutHandler(SubprotocolHandler):
    """Sends every text back upper-cased, with the configured suffix."""

    def __init__(self, session: Session, hub: Hub) -> None:
        self.session = session
        self.config = hub.config.section(ShoutConfig)

    async def on_message(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        self.session.send(text.upper() + self.config.suffix * self.config.times)


SHOUT = ProtocolSpec(
    name="shout.v1", factory=ShoutHandler, config=ShoutConfig, config_section="shout"
)


class TokenConfig(Section):
    token: str


NEEDS_TOKEN = ProtocolSpec(
    name="token.v1", factory=ShoutHandler, config=TokenConfig, config_section="token"
)


def problems(data: dict[str, object], *specs: ProtocolSpec) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, protocols=specs)
    return str(info.value)


async def test_a_plugin_reads_its_own_section(make_hub: HubFactory, connect: Connector) -> None:
    """[shout] is validated with the plug-in's model, and its handler reads it."""
    config = parse_config({"shout": {"suffix": "?", "times": 2}}, protocols=[SHOUT])
    assert config.section(ShoutConfig) == ShoutConfig(suffix="?", times=2)
    hub = await make_hub(config, registry=ProtocolRegistry([*builtin_protocols(), SHOUT]))
    ws = await connect(hub, "shout.v1")
    await ws.send("hi")
    assert await ws.recv() == "HI??"


def test_a_plugin_section_is_checked_like_the_core_ones() -> None:
    """Unknown keys suggest the closest one, types and bounds name the key path."""
    assert "shout.sufix: unknown key; did you mean `suffix`?" in problems(
        {"shout": {"sufix": "?"}}, SHOUT
    )
    assert "shout.times: expected an integer, got the string" in problems(
        {"shout": {"times": "2"}}, SHOUT
    )
    assert "shout.times: expected a value greater than or equal to 1" in problems(
        {"shout": {"times": 0}}, SHOUT
    )


def test_a_section_of_a_protocol_not_served_is_an_unknown_table() -> None:
    """Without the plug-in, [shout] is refused; a near miss of a built-in section is named."""
    assert "shout: unknown key" in problems({"shout": {}})
    assert "mqt: unknown key; did you mean `mqtt`?" in problems({"mqt": {}})


def test_a_section_with_a_required_key_is_required() -> None:
    """A plug-in whose table has a required key needs the table."""
    assert "token: required key is missing" in problems({}, NEEDS_TOKEN)
    config = parse_config({"token": {"token": "s3"}}, protocols=[NEEDS_TOKEN])
    assert config.section(TokenConfig).token == "s3"


def test_a_section_without_its_table_reads_as_its_defaults() -> None:
    """A config built without a protocol's section gives that protocol the model's defaults."""
    assert HubConfig().section(ShoutConfig) == ShoutConfig()
    assert HubConfig().section(MqttConfig) == MqttConfig()


def test_a_protocol_cannot_take_a_core_table() -> None:
    """A plug-in naming its section after one of the core's is refused, naming both."""
    clash = ProtocolSpec(
        name="x.v1", factory=ShoutHandler, config=ShoutConfig, config_section="api"
    )
    with pytest.raises(ValueError, match=r"protocol x.v1: the config already has a \[api\] table"):
        HubConfig.with_protocols([clash])


def test_a_config_model_needs_its_table_name() -> None:
    """``config`` without ``config_section`` (or the reverse) is a mistake in the spec."""
    with pytest.raises(ValueError, match="go together"):
        ProtocolSpec(name="x.v1", factory=ShoutHandler, config=ShoutConfig)


def test_the_builtin_sections_come_from_the_protocols() -> None:
    """[mqtt] and [wamp] are the protocols' own models, in the default config class."""
    config = parse_config({"mqtt": {"max_qos": 1}, "wamp": {"realms": ["r"]}})
    assert config.section(MqttConfig).max_qos == 1
    assert [realm.name for realm in config.section(WampConfig).realms] == ["r"]


def test_the_mqtt_bridge_files_are_relative_to_the_config_file(tmp_path: Path) -> None:
    """The MQTT section resolves its own paths against the config file's folder."""
    path = tmp_path / "hub.toml"
    path.write_text('[mqtt.bridge]\nurl = "mqtts://broker"\nca_file = "ca.pem"\n')
    bridge = load_config(path).section(MqttConfig).bridge
    assert bridge is not None
    assert bridge.ca_file == tmp_path / "ca.pem"


@pytest.mark.parametrize("name", METHODS)
async def test_channels_reserves_the_names_it_answers(
    name: str, make_hub: HubFactory, connect: Connector
) -> None:
    """Each name channels.v1 reserves is refused to an RPC method and answered by channels.v1."""
    hub = await make_hub()
    with pytest.raises(ValueError, match="reserved"):
        hub.add_method(name, lambda: None)
    ws = await connect(hub, "channels.v1")
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": name, "params": {}}))
    reply = json.loads(await ws.recv())
    assert reply.get("error", {}).get("code") != -32601  # not "method not found"


async def test_a_hub_without_channels_leaves_its_names_free(make_hub: HubFactory) -> None:
    """Served only JSON-RPC, a hub lets an RPC method be called "subscribe"."""
    hub = await make_hub({"server": {"subprotocols": ["jsonrpc.2.0"]}})
    hub.add_method("subscribe", lambda: "mine")
    assert "subscribe" in hub.methods.names


async def test_retained_publications_are_opened_by_mqtt(make_hub: HubFactory) -> None:
    """MQTT sizes the hub's retained store from [mqtt]; a hub without MQTT has none."""
    hub = await make_hub({"mqtt": {"max_retained": 1}})
    assert await hub.retained.set(Publication("a", 1))
    assert not await hub.retained.set(Publication("b", 1))  # full at [mqtt] max_retained
    bare = await make_hub({"server": {"subprotocols": ["jsonrpc.2.0"]}})
    with pytest.raises(LookupError, match="no protocol of this hub keeps retained"):
        bare.retained  # noqa: B018
