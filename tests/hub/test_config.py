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
    assert "server.port" in message
    assert "integer" in message
    assert "'eighty'" in message


def test_out_of_range_value_says_the_bound(tmp_path: Path) -> None:
    """A number outside its range says which bound it broke."""
    path = write(tmp_path, "range.toml", "[server]\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"server\.port: .*less than or equal to 65535"):
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
    with pytest.raises(ConfigError, match=r"websocket\.ping_intervall: unknown key"):
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
