"""Save and restore the memory engine's history across a graceful restart.

The file is JSON written atomically; bytes are tagged so payloads of every
protocol survive. Only history (offsets, epochs, retained publications) is
kept: presence and subscriptions belong to connections, which a restart ends.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

from hub.engine.base import ClientInfo, Publication
from hub.engine.memory import MemoryHistory, StreamState

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_BYTES = "__wshub_bytes__"


def _pack(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {key: _pack(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_pack(item) for item in value]
    return value


def _unpack(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _BYTES in value:
            return base64.b64decode(value[_BYTES])
        return {key: _unpack(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unpack(item) for item in value]
    return value


def _publication(p: Publication, remaining: float) -> dict[str, Any]:
    return {
        "data": _pack(p.data),
        "offset": p.offset,
        "publisher": None
        if p.publisher is None
        else {"client": p.publisher.client, "user": p.publisher.user, "info": p.publisher.info},
        "extras": _pack(dict(p.extras)),
        "remaining": remaining,
    }


def save_history(history: MemoryHistory, path: Path) -> int:
    """Write every stream to ``path``; returns the number of streams."""
    streams = {
        channel: {
            "epoch": state.epoch,
            "top": state.top,
            "entries": [_publication(p, remaining) for remaining, p in state.entries],
        }
        for channel, state in history.export().items()
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"version": FORMAT_VERSION, "streams": streams}))
    os.replace(tmp, path)
    return len(streams)


def load_history(history: MemoryHistory, path: Path) -> int:
    """Restore streams from ``path`` if it exists; returns the number restored."""
    if not path.exists():
        return 0
    try:
        document = json.loads(path.read_text())
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown format version {document.get('version')!r}")
        streams: dict[str, StreamState] = {}
        for channel, stream in document["streams"].items():
            entries = []
            for entry in stream["entries"]:
                publisher = entry["publisher"]
                publication = Publication(
                    channel,
                    _unpack(entry["data"]),
                    offset=int(entry["offset"]),
                    epoch=stream["epoch"],
                    publisher=None if publisher is None else ClientInfo(**publisher),
                    extras=_unpack(entry["extras"]),
                )
                entries.append((float(entry["remaining"]), publication))
            streams[channel] = StreamState(stream["epoch"], int(stream["top"]), entries)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # A damaged file must not stop the hub: start empty, new epochs tell
        # clients that recovery is impossible.
        logger.warning("ignoring history state file %s: %s", path, exc)
        return 0
    history.restore(streams)
    return len(streams)
