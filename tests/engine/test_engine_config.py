"""``[engine]``: one settings model per backend, chosen by ``backend``, checked like every table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ConfigError, load_config, parse_config
from hub.engine.memory.config import MemoryEngineConfig
from hub.engine.redis.config import RedisEngineConfig
from hub.engine.sqlite.config import SqliteEngineConfig


def problems(engine: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"engine": engine})
    return str(info.value)


def test_each_backend_gets_its_own_model() -> None:
    """``backend`` picks the model; a table without it is the memory engine's."""
    assert isinstance(parse_config({"engine": {}}).engine, MemoryEngineConfig)
    assert isinstance(parse_config({"engine": {"state_file": "s.json"}}).engine, MemoryEngineConfig)
    sqlite = parse_config({"engine": {"backend": "sqlite", "path": "e.db"}}).engine
    assert isinstance(sqlite, SqliteEngineConfig)
    assert sqlite.path == Path("e.db")
    redis = parse_config({"engine": {"backend": "redis", "command_timeout": 0.5}}).engine
    assert isinstance(redis, RedisEngineConfig)
    assert redis.command_timeout == 0.5


def test_a_key_of_another_backend_names_the_backends_that_use_it() -> None:
    """`url` under the memory engine, `state_file` under Redis: refused, naming their backends."""
    assert (
        'engine.url: not a setting when backend = "memory" (only when backend = "redis")'
        in problems({"url": "redis://127.0.0.1:1/0"})
    )
    assert (
        'engine.state_file: not a setting when backend = "redis" '
        '(only when backend = "memory" or "sqlite")'
    ) in problems({"backend": "redis", "state_file": "s.json"})


def test_a_typo_in_a_backend_table_suggests_its_key() -> None:
    """A misspelt key is matched against the chosen backend's own keys."""
    assert "engine.prefx: unknown key; did you mean `prefix`?" in problems(
        {"backend": "redis", "prefx": "a:"}
    )
    assert "engine.pth: unknown key; did you mean `path`?" in problems(
        {"backend": "sqlite", "pth": "x"}
    )


def test_an_unknown_backend_lists_the_backends() -> None:
    """``backend = "mongo"`` names the key and the accepted values, with what was given."""
    message = problems({"backend": "mongo"})
    assert "engine.backend: expected 'memory', 'sqlite' or 'redis'" in message
    assert '(got the string "mongo")' in message


def test_wrong_types_inside_a_backend_table_name_the_key() -> None:
    """A value's type error names the key as written, not the model's tag."""
    assert "engine.presence_ttl: expected a number, got the string" in problems(
        {"backend": "redis", "presence_ttl": "5"}
    )


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    """The SQLite file and the state file are relative to the config file's folder."""
    config = tmp_path / "hub.toml"
    config.write_text('[engine]\nbackend = "sqlite"\npath = "e.db"\nstate_file = "s.json"\n')
    engine = load_config(config).engine
    assert isinstance(engine, SqliteEngineConfig)
    assert (engine.path, engine.state_file) == (tmp_path / "e.db", tmp_path / "s.json")


def test_reading_the_config_imports_no_backend_client() -> None:
    """Parsing a Redis config and opening a memory backend leave the Redis client unloaded."""
    probe = (
        "import sys\n"
        "from hub.config import parse_config\n"
        "from hub.engine.select import open_backend\n"
        "parse_config({'engine': {'backend': 'redis'}})\n"
        "open_backend(parse_config({}).engine, 'n')\n"
        "print(sorted(m for m in ('redis', 'hub.engine.redis.link', 'hub.engine.sqlite.backend')"
        " if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
