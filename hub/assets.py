"""Where the files served over plain HTTP come from: the installed wheel, or a checkout.

The JS client (``js-client/``) and the chat demo (``examples/chat/``) are
authored outside the Python packages. The wheel carries copies of them under
``hub/static/`` (``setup.py``'s build step puts them there, nothing is
committed twice); an editable install or a bare checkout has no copies, and the
hub reads them where they are authored.

Only the standard library is imported here: ``setup.py`` loads this file by
path to learn what to copy, so the list of served client files is written once.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

# Authored locations, relative to the project root.
CLIENT_SOURCE = "js-client"
DEMO_SOURCE = "examples/chat"

# In the wheel: hub/static/client/ and hub/static/chat/.
PACKAGED = "static"
PACKAGED_CLIENT = "client"
PACKAGED_DEMO = "chat"

# The client files served at /<name>, and nothing else of js-client/ (its
# tests, e2e harness and node modules stay private). Name -> content type.
CLIENT_FILES: dict[str, str] = {
    "wshub.js": "text/javascript; charset=utf-8",
    "wshub.d.ts": "application/typescript; charset=utf-8",
}


def demo_files(demo_source: Path) -> list[Path]:
    """The demo's files to ship: every regular, non-hidden file of its directory."""
    return sorted(
        path
        for path in demo_source.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(demo_source).parts)
    )


def _checkout_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _packaged(name: str) -> Path | None:
    """``hub/static/<name>`` of an installed wheel, or None (editable install, checkout)."""
    candidate = files("hub") / PACKAGED / name
    # A wheel is installed unpacked, so the resource is a real directory.
    if isinstance(candidate, Path) and candidate.is_dir():
        return candidate
    return None


@functools.cache
def client_dir() -> Path:
    """The directory holding :data:`CLIENT_FILES`."""
    return _packaged(PACKAGED_CLIENT) or _checkout_root() / CLIENT_SOURCE


@functools.cache
def demo_dir() -> Path:
    """The chat demo, served at ``/`` unless ``server.static_dir`` is set."""
    return _packaged(PACKAGED_DEMO) or _checkout_root() / DEMO_SOURCE
