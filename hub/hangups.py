"""Tell when the peer of a socket held unread closes its end.

A connection over the connection rate, or from a repeat flooder, is held
before its refusal with reading paused: what it sends is not read. Nothing
then tells the hub when the client leaves, and its socket (and its
address's slot) stayed held to the end. One ``epoll`` per event loop,
itself watched by the loop while it watches anything (closed once it
watches nothing), reports ``EPOLLRDHUP`` (the peer's FIN) and ``EPOLLHUP`` /
``EPOLLERR`` (a reset) for every held socket without reading any of it.
Where epoll is missing (not Linux) nothing is reported: the hold runs to
its end, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import weakref
from collections.abc import Callable
from typing import Any

_EVENTS = (
    getattr(select, "EPOLLRDHUP", 0)
    | getattr(select, "EPOLLHUP", 0)
    | getattr(select, "EPOLLERR", 0)
    | getattr(select, "EPOLLONESHOT", 0)
)


class Hangups:
    """The held sockets of one event loop, and what to call when a peer leaves."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._epoll: Any = None
        self._callbacks: dict[int, Callable[[], None]] = {}

    def watch(self, sock: Any, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once if ``sock``'s peer closes or resets; returns the unwatch."""
        fd = sock.fileno() if sock is not None else -1
        if not hasattr(select, "epoll") or fd < 0 or fd in self._callbacks:
            return _nothing
        epoll = self._epoll
        if epoll is None:
            epoll = self._epoll = select.epoll()
            self._loop.add_reader(epoll.fileno(), self._ready)
        try:
            epoll.register(fd, _EVENTS)
        except OSError:
            self._close_if_idle()
            return _nothing
        self._callbacks[fd] = callback

        def unwatch() -> None:
            if self._callbacks.get(fd) is not callback:
                return
            del self._callbacks[fd]
            with contextlib.suppress(OSError, ValueError):
                epoll.unregister(fd)
            self._close_if_idle()

        return unwatch

    def _close_if_idle(self) -> None:
        epoll = self._epoll
        if epoll is not None and not self._callbacks:
            self._epoll = None
            self._loop.remove_reader(epoll.fileno())
            epoll.close()

    async def hold(self, sock: Any, seconds: float) -> bool:
        """Wait ``seconds``, or until ``sock``'s peer leaves: True if it left."""
        left: asyncio.Future[None] = self._loop.create_future()

        def gone() -> None:
            if not left.done():
                left.set_result(None)

        unwatch = self.watch(sock, gone)
        try:
            async with asyncio.timeout(seconds):
                await left
            return True
        except TimeoutError:
            return False
        finally:
            unwatch()

    def _ready(self) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        callbacks = []
        for fd, _ in epoll.poll(0):
            callback = self._callbacks.pop(fd, None)
            with contextlib.suppress(OSError, ValueError):
                epoll.unregister(fd)
            if callback is not None:
                callbacks.append(callback)
        self._close_if_idle()
        for callback in callbacks:
            callback()


def _nothing() -> None:
    pass


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hangups] = (
    weakref.WeakKeyDictionary()
)


def hangups(loop: asyncio.AbstractEventLoop | None = None) -> Hangups:
    """The running (or given) loop's watch."""
    loop = loop or asyncio.get_running_loop()
    found = _per_loop.get(loop)
    if found is None:
        found = _per_loop[loop] = Hangups(loop)
    return found
