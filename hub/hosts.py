"""Which ``Host`` names the hub answers (DNS rebinding defence).

A page on ``attacker.example`` can make its own name resolve to 127.0.0.1
(DNS rebinding) and then talk to a hub on the user's machine as a same-origin
page: its ``Origin`` and ``Host`` agree, so the origin check passes. What gives
it away is the ``Host`` header, which the browser fills with the attacker's
name. A hub bound to a loopback address therefore answers only loopback names
(``localhost``, ``*.localhost``, 127.0.0.0/8, ``[::1]``, any port) unless
``server.allowed_hosts`` lists more, as notebook servers do. Requests without
``Host`` (HTTP/1.0, some non-browser clients) pass: browsers always send it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

# A host name or IP literal as an allowed_hosts entry: no scheme, no port.
_ENTRY: Final = re.compile(r"(\*\.)?[a-z0-9_.-]+|\[[0-9a-f:.]+\]|[0-9a-f:.]+", re.IGNORECASE)


def host_name(header: str) -> str | None:
    """The name of a ``Host`` header, lower-cased, without port or brackets; None if malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not re.fullmatch(r":\d{1,5}", value[end + 1 :])):
            return None
        return value[1:end] or None
    name, colon, port = value.partition(":")
    if colon and not re.fullmatch(r"\d{1,5}", port):
        return None
    return name.rstrip(".") or None


def is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    return is_loopback_address(name)


def is_loopback_address(host: str) -> bool:
    """Whether a peer's address (an IP address as text) is a loopback one, IPv4-mapped too."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_loopback_bind(host: str) -> bool:
    """Whether a listen address reaches this machine only (``""``, 0.0.0.0 and names do not)."""
    return bool(host) and is_loopback_name(host.strip("[]").lower())


def valid_entry(entry: str) -> bool:
    return entry == "*" or _ENTRY.fullmatch(entry) is not None


class HostPolicy:
    """``server.allowed_hosts`` for a hub listening on ``bind``.

    ``["*"]`` allows every name. Otherwise loopback names always pass, and the
    listed names (exact, or ``*.example.com`` for its subdomains) pass too. An
    empty list checks only a hub bound to a loopback address: one listening on
    a public address is reached by names the hub cannot guess.
    """

    def __init__(self, allowed: list[str], bind: str) -> None:
        self.enabled = "*" not in allowed and (bool(allowed) or is_loopback_bind(bind))
        self._exact = {e.strip("[]").lower() for e in allowed if not e.startswith("*.")}
        self._suffixes = tuple(e[1:].lower() for e in allowed if e.startswith("*."))

    def allows(self, header: str | None) -> bool:
        if not self.enabled or header is None:
            return True
        name = host_name(header)
        if name is None:
            return False
        return is_loopback_name(name) or name in self._exact or name.endswith(self._suffixes)
