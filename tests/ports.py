"""Ports for the tests' own servers, chosen so that nothing else takes them first.

A port the kernel hands out for ``bind(0)`` is an ephemeral one: between the
moment a test learns it and the moment a server binds it, any outgoing
connection on the machine (the tests open thousands) may be given the same
port, and the server fails with "address in use". Ports below the ephemeral
range are never handed to outgoing connections, so :func:`free_port` picks
there, from an offset of this process's own so parallel runs do not meet.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from pathlib import Path

# Well below the ephemeral range, above the ports of common local services.
_LOWEST = 20000
_DEFAULT_EPHEMERAL_START = 32768


def _ephemeral_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_START


def _candidates() -> Iterator[int]:
    span = max(_ephemeral_start() - _LOWEST, 1000)
    start = (os.getpid() * 97) % span
    for step in itertools.count():
        yield _LOWEST + (start + step) % span


_ports = _candidates()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that a server process can bind now and in a moment."""
    for port in _ports:
        if _bindable(port):
            return port
    raise AssertionError("unreachable: the candidate ports never run out")


def listening_socket() -> socket.socket:
    """A socket bound to a free loopback port, for an in-process server's ``sock=``.

    Binding before anyone is told the port leaves no window for a race at all.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock
