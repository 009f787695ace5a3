"""[api] configuration: keys are checked, never echoed, and the keys file's problems named."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub import Hub, HubConfig
from hub.api.keys import KeysFileError
from hub.config import ConfigError, load_config, parse_config


def test_short_key_refused_without_echo() -> None:
    """A key under 16 characters fails the config, and the message does not show it."""
    with pytest.raises(ConfigError) as refused:
        parse_config({"api": {"keys": ["short-secret"]}})
    assert "api.keys" in str(refused.value)
    assert "short-secret" not in str(refused.value)


def test_keys_file_resolves_against_config_dir(tmp_path: Path) -> None:
    """A relative keys_file is read from the config file's directory."""
    (tmp_path / "hub.toml").write_text('[api]\nkeys_file = "keys.txt"\n')
    config = load_config(tmp_path / "hub.toml")
    assert config.api.keys_file == tmp_path / "keys.txt"
    assert config.api.enabled


def test_bad_keys_file_line_named(tmp_path: Path) -> None:
    """A short key in the keys file fails the hub with the file and line, not the key."""
    keys = tmp_path / "keys"
    keys.write_text("# comment\n\nshort-key\n")
    with pytest.raises(KeysFileError) as refused:
        Hub(HubConfig.model_validate({"api": {"keys_file": str(keys)}}))
    assert f"{keys}:3" in str(refused.value)
    assert "short-key" not in str(refused.value)


def test_missing_keys_file(tmp_path: Path) -> None:
    """A keys file that cannot be read fails the hub, naming the file."""
    missing = tmp_path / "nope"
    with pytest.raises(KeysFileError, match="nope"):
        Hub(HubConfig.model_validate({"api": {"keys_file": str(missing)}}))


def test_api_off_by_default() -> None:
    """With no key the API is off: the hub has no API listener."""
    assert not HubConfig().api.enabled
    assert Hub().api is None
