"""Configuration: defaults, TOML/YAML loading, and errors a human can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub import ConfigError, HubConfig, load_config


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    """Built-in defaults serve JSON-RPC on 127.0.0.1:8765 with the memory engine."""
    config = HubConfig()
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8765)
    assert config.server.default_subprotocol == "jsonrpc.2.0"
    assert config.server.subprotocols == []
    assert config.engine.backend == "memory"
    assert config.websocket.compression is True
    assert config.websocket.max_message_size == 1024 * 1024
    assert config.rpc.modules == []


def test_toml_file_is_loaded(tmp_path: Path) -> None:
    """Values from a TOML file override the defaults, section by section."""
    path = write(
        tmp_path,
        "hub.toml",
        """
        [server]
        port = 9000
        default_subprotocol = "jsonrpc"

        [websocket]
        ping_interval = 1.5
        compression = false

        [rpc]
        modules = ["svc.methods"]
        """,
    )
    config = load_config(path)
    assert config.server.port == 9000
    assert config.server.default_subprotocol == "jsonrpc"
    assert config.websocket.ping_interval == 1.5
    assert config.websocket.compression is False
    assert config.rpc.modules == ["svc.methods"]
    assert config.server.host == "127.0.0.1"


def test_unknown_key_names_file_and_key_path(tmp_path: Path) -> None:
    """A typo like ``[server] prot`` fails naming the file, ``server.prot`` and "unknown key"."""
    path = write(tmp_path, "typo.toml", "[server]\nprot = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "server.prot" in message
    assert "unknown key" in message


def test_wrong_type_names_key_path_and_expected_type(tmp_path: Path) -> None:
    """A value of the wrong type names its key path and the type expected."""
    path = write(tmp_path, "types.toml", '[server]\nport = "eighty"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "server.port: expected an integer" in message
    assert 'the string "eighty"' in message


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[server]\nport = true\n", "server.port: expected an integer, got the boolean true"),
        (
            '[server]\nport = "8800"\n',
            'server.port: expected an integer, got the string "8800" (write it without quotes)',
        ),
        (
            '[websocket]\ncompression = "no"\n',
            'websocket.compression: expected true or false, got the string "no"',
        ),
        (
            '[websocket]\nping_interval = "5"\n',
            'websocket.ping_interval: expected a number, got the string "5"',
        ),
        ("[limits]\nmessage_rate = true\n", "limits.message_rate: expected a number"),
        ('[server]\nsubprotocols = "mqtt"\n', "server.subprotocols: expected an array"),
        ("[rpc]\nmodules = [1]\n", "rpc.modules[0]: expected a string, got the integer 1"),
        ("[server]\ntls = true\n", "server.tls: expected a table, got the boolean true"),
    ],
    ids=[
        "bool-port",
        "string-port",
        "string-bool",
        "string-float",
        "bool-float",
        "str-list",
        "list-item",
        "bool-table",
    ],
)
def test_values_are_not_coerced(tmp_path: Path, toml: str, expected: str) -> None:
    """TOML values carry their type: a wrong one stops the load naming key, expectation, value."""
    path = write(tmp_path, "strict.toml", toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_integers_are_accepted_for_numbers(tmp_path: Path) -> None:
    """An integer where a number (float) is expected is taken as that number."""
    path = write(tmp_path, "ints.toml", "[websocket]\nping_interval = 5\nclose_timeout = 2\n")
    config = load_config(path)
    assert config.websocket.ping_interval == 5.0
    assert isinstance(config.websocket.ping_interval, float)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[server]\nprot = 1\n", "server.prot: unknown key; did you mean `port`?"),
        ("[serverr]\nport = 1\n", "serverr: unknown key; did you mean `server`?"),
        (
            '[[wamp.realms]]\nnam = "x"\n',
            "wamp.realms[0].nam: unknown key; did you mean `name`?",
        ),
        (
            "[channels.namespaces.chat]\nhistory_sise = 5\n",
            "channels.namespaces.chat.history_sise: unknown key; did you mean `history_size`?",
        ),
        ("[logging]\nzzz = 1\n", "logging.zzz: unknown key; valid keys here: level"),
    ],
    ids=["key", "section", "in-array", "in-namespace", "no-close-match"],
)
def test_unknown_key_names_the_closest_valid_one(tmp_path: Path, toml: str, expected: str) -> None:
    """An unknown key suggests the closest valid key of its table, or lists the valid ones."""
    path = write(tmp_path, "typo.toml", toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)


def test_union_errors_are_one_line_per_key(tmp_path: Path) -> None:
    """A value of a union type gets one line naming every accepted type, keys quoted as in TOML."""
    path = write(
        tmp_path, "claims.toml", '[rpc.permissions."admin.*"]\nclaims = { roles = { a = 1 } }\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "1 problem(s)" in message
    assert 'rpc.permissions."admin.*".claims.roles: expected a string, an integer' in message


def test_secrets_are_not_echoed(tmp_path: Path) -> None:
    """A wrong-typed secret is named by key path, never shown."""
    path = write(
        tmp_path,
        "secret.toml",
        "[auth.jwt]\nsecret = 123456789\n[wamp.wampcra_users.ada]\nsecret = 987654321\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "auth.jwt.secret: expected a string" in message
    assert "wamp.wampcra_users.ada.secret: expected a string" in message
    assert "123456789" not in message
    assert "987654321" not in message


def test_out_of_range_value_says_the_bound(tmp_path: Path) -> None:
    """A number outside its range says which bound it broke."""
    path = write(tmp_path, "range.toml", "[server]\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"server\.port: .*less than or equal to 65535"):
        load_config(path)


def test_opening_burst_must_be_positive(tmp_path: Path) -> None:
    """limits.opening_burst of 0 would close every new connection at its first message."""
    path = write(tmp_path, "opening.toml", "[limits]\nopening_burst = 0\n")
    with pytest.raises(ConfigError, match=r"limits\.opening_burst: .*greater than 0"):
        load_config(path)


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    """Broken TOML syntax is reported with the file name and the line."""
    path = write(tmp_path, "broken.toml", '[server]\nport = 1\nhost = "unterminated\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "invalid TOML" in message
    assert "line 3" in message


def test_missing_file(tmp_path: Path) -> None:
    """A config path that does not exist fails with the path and the reason."""
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "No such file" in str(info.value)


def test_yaml_file_is_loaded(tmp_path: Path) -> None:
    """A ``.yaml`` file is read with the same schema as TOML."""
    path = write(
        tmp_path,
        "hub.yaml",
        "server:\n  port: 9100\nlimits:\n  max_outbound_bytes: 65536\n",
    )
    config = load_config(path)
    assert config.server.port == 9100
    assert config.limits.max_outbound_bytes == 65536


def test_yaml_typo_is_reported_like_toml(tmp_path: Path) -> None:
    """Unknown keys in YAML fail with the same key-path message."""
    path = write(tmp_path, "hub.yml", "websocket:\n  ping_intervall: 3\n")
    with pytest.raises(ConfigError, match=r"websocket\.ping_intervall: unknown key; did you mean"):
        load_config(path)


def test_relative_rpc_paths_resolve_against_config_dir(tmp_path: Path, monkeypatch) -> None:
    """Relative ``rpc.paths`` and ``server.static_dir`` are relative to the config file."""
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    path = write(
        conf_dir,
        "hub.toml",
        '[server]\nstatic_dir = "public"\n[rpc]\npaths = ["lib", "/abs/elsewhere"]\n',
    )
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("conf/hub.toml"))
    assert path.exists()
    assert config.rpc.paths == [(conf_dir / "lib").resolve(), Path("/abs/elsewhere")]
    assert config.server.static_dir == (conf_dir / "public").resolve()


def test_top_level_must_be_a_table(tmp_path: Path) -> None:
    """A YAML document that is not a mapping is refused with the file name."""
    path = write(tmp_path, "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: the top level must be a table"):
        load_config(path)
