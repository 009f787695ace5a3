"""Which browser origins may open a WebSocket (cross-site WebSocket hijacking defence).

Browsers send ``Origin`` with every WebSocket handshake and let any page open a
socket to any host, carrying that host's cookies: without this check, a page
on another site could act as a logged-in user. Non-browser clients send no
``Origin`` (or one they choose), so the check protects browsers only and
requests without the header pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int | None


def _parse(origin: str) -> _Origin | None:
    """scheme://host[:port] lowercased, or None for anything else ("null", paths)."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username is not None:
        return None
    return _Origin(parts.scheme, parts.hostname, port or DEFAULT_PORTS.get(parts.scheme))


class OriginPolicy:
    """An allow-list of exact origins and ``scheme://*.domain[:port]`` wildcards.

    ``"*"`` allows every origin. An empty list allows same-origin requests only:
    the ``Origin`` must name the host and port the request was sent to (its
    ``Host`` header), which is what a page served by the hub itself sends.
    """

    def __init__(self, allowed: list[str]) -> None:
        self.allow_all = "*" in allowed
        self._exact: set[_Origin] = set()
        self._literal: set[str] = set()
        self._wildcards: list[_Origin] = []
        for entry in allowed:
            if entry == "*":
                continue
            wildcard = "://*." in entry
            parsed = _parse(entry.replace("://*.", "://", 1) if wildcard else entry)
            if parsed is None:
                # Opaque origins ("null": sandboxed frames, file:// pages) only
                # match themselves, when listed on purpose.
                self._literal.add(entry.strip().lower())
            elif wildcard:
                self._wildcards.append(parsed)
            else:
                self._exact.add(parsed)
        self.same_origin_only = not allowed

    def allows(self, origin: str | None, host: str | None) -> bool:
        """Whether a handshake with this ``Origin`` (None: absent) to ``Host`` may go on."""
        if origin is None or self.allow_all:
            return True
        if origin.strip().lower() in self._literal:
            return True
        parsed = _parse(origin)
        if parsed is None:
            return False
        if self.same_origin_only:
            return host is not None and _same_host(parsed, host)
        if parsed in self._exact:
            return True
        return any(
            parsed.scheme == pattern.scheme
            and parsed.port == pattern.port
            and parsed.host.endswith("." + pattern.host)
            for pattern in self._wildcards
        )


def _same_host(origin: _Origin, host_header: str) -> bool:
    # Host carries no scheme: take the origin's default port when it names none.
    target = _parse(f"{origin.scheme}://{host_header}")
    return target is not None and (target.host, target.port) == (origin.host, origin.port)
