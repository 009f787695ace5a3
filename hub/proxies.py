"""The client's address behind trusted reverse proxies (``server.trusted_proxies``).

A proxy appends the address it received a connection from to
``X-Forwarded-For``; whatever a client put there itself stays on the left. So
the list is read from the right: entries added by proxies we trust are skipped,
and the first one that is not a trusted proxy is the client. Entries left of it
are the client's own say and are never believed. A connection whose TCP peer is
not a trusted proxy keeps its peer address, whatever headers it sends.

RFC 7239 ``Forwarded`` is deliberately not read: a proxy that appends only
``X-Forwarded-For`` passes a client's own ``Forwarded`` header through
untouched, and reading it would let that client choose its address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from websockets.datastructures import Headers

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_FOR = "X-Forwarded-For"


def parse_network(entry: str) -> IpNetwork:
    """An address (a network of one) or a CIDR network; ValueError when it is neither."""
    return ipaddress.ip_network(entry.strip(), strict=True)


def parse_forwarded_address(entry: str) -> IpAddress | None:
    """One ``X-Forwarded-For`` entry as an address; None when it is not one.

    Besides a bare address, the ``1.2.3.4:port`` and ``[v6]:port`` forms some
    proxies write are accepted (the port is dropped).
    """
    entry = entry.strip()
    if entry.startswith("["):
        end = entry.find("]")
        if end < 0 or not (end + 1 == len(entry) or entry[end + 1] == ":"):
            return None
        entry = entry[1:end]
    elif entry.count(":") == 1:
        entry = entry.split(":", 1)[0]
    try:
        return _unmapped(ipaddress.ip_address(entry))
    except ValueError:
        return None


def _unmapped(address: IpAddress) -> IpAddress:
    # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """Decides, per upgrade request, whose address a connection counts as."""

    __slots__ = ("_networks",)

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(parse_network(entry) for entry in networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: IpAddress) -> bool:
        return any(address in network for network in self._networks)

    def trusts_host(self, peer_host: str) -> bool:
        """``trusts`` for a peer address as text; False for anything but an IP address."""
        if not self._networks:
            return False
        try:
            return self.trusts(_unmapped(ipaddress.ip_address(peer_host.split("%", 1)[0])))
        except ValueError:
            return False

    def forwarded_client(self, peer_host: str, headers: Headers) -> str | None:
        """The client's address from a trusted peer's ``X-Forwarded-For``, else None.

        None means: use the peer's own address. That is the answer for an
        untrusted peer, a trusted one that sent no header, and a header that
        does not parse (a broken proxy must not take the hub down, nor let the
        client pick its address).
        """
        if not self._networks:
            return None
        try:
            peer = _unmapped(ipaddress.ip_address(peer_host.split("%", 1)[0]))
        except ValueError:
            return None  # a Unix socket: no address to trust
        if not self.trusts(peer):
            return None
        entries = ",".join(headers.get_all(FORWARDED_FOR)).split(",")
        if entries == [""]:
            return None
        client: IpAddress | None = None
        for entry in reversed(entries):
            address = parse_forwarded_address(entry)
            if address is None:
                return None
            client = address
            if not self.trusts(address):
                break
        # Every entry a trusted proxy: the left-most is the client (an internal one).
        return str(client) if client is not None else None
