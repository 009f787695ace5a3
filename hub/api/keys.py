"""API keys: from ``[api] keys`` and ``[api] keys_file``, compared in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path

from hub.config import ApiConfig
from hub.errors import HubError

MIN_KEY_LENGTH = 16


class KeysFileError(HubError, ValueError):
    """The keys file cannot be used; the message names the file and the line."""


class ApiKeys:
    """The keys the API accepts; :meth:`reload` re-reads the file (SIGHUP)."""

    def __init__(self, config: ApiConfig) -> None:
        self._config = config
        self._keys: tuple[bytes, ...] = self._load()

    def reload(self) -> None:
        """Re-read the keys file; raises (keeping the old keys) on error."""
        self._keys = self._load()

    def __len__(self) -> int:
        return len(self._keys)

    def admits(self, presented: str) -> bool:
        """Whether ``presented`` is a configured key (every key compared, in constant time)."""
        candidate = presented.encode("utf-8", "replace")
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(candidate, key)
        return found

    def _load(self) -> tuple[bytes, ...]:
        keys = list(self._config.keys)
        path = self._config.keys_file
        if path is not None:
            keys.extend(read_keys_file(path))
        return tuple(key.encode() for key in keys)


def read_keys_file(path: Path) -> list[str]:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"{path}: cannot read the API keys file: {exc}") from None
    keys = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) < MIN_KEY_LENGTH or any(c.isspace() for c in line):
            # Never echo the line: it may be a key with a typo.
            raise KeysFileError(
                f"{path}:{number}: an API key needs at least {MIN_KEY_LENGTH} characters "
                "and no whitespace"
            )
        keys.append(line)
    return keys
