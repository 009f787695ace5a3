"""Per-connection message rate and per-address connection slots.

Both are plain bookkeeping touched only from the event loop's thread, so they
take no locks. ``MessageRateLimiter.allow`` runs for every inbound message and
is kept to a clock read and a few float operations.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from enum import Enum
from typing import Protocol


class MessageRateLimiter:
    """A token bucket: ``rate`` tokens per second, holding at most ``burst``.

    Every message takes one token; a message finding none is refused and
    counted in ``refused``. That count is forgiven only once the bucket is full
    again (the client paused long enough to earn back a whole burst), so a
    client that keeps sending over the rate, however fast, accumulates refusals
    and the caller can close it.

    A new connection starts with ``opening`` tokens (at most ``burst``) and may
    be refused as many times before it counts as flooding; both grow at the
    rate with the connection's age up to ``burst``. While young, a connection
    that runs out takes its further tokens from its address's ``pool``
    (:class:`OpeningPool`), shared by the address's connections: one client
    still has its whole burst at once, but N connections opened together to
    flood cost the hub one burst and N openings, not N bursts.
    """

    __slots__ = (
        "_allowance",
        "_burst",
        "_clock",
        "_key",
        "_opened",
        "_opening",
        "_pool",
        "_rate",
        "_stamp",
        "_tokens",
        "_young_until",
        "on_flood",
        "refused",
    )

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        full: bool = True,
        opening: int | None = None,
        pool: OpeningPool | None = None,
        key: str = "",
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        if opening is not None and opening < 1:
            raise ValueError("opening must be at least 1")
        self._rate = float(rate)
        self._burst = float(burst)
        self._clock = clock
        self._stamp = self._opened = clock()
        # A new connection starts with its opening tokens: its opening burst
        # (subscribe to everything, fetch history) is what they are for.
        self._opening = min(self._burst, float(opening if opening is not None else burst))
        # Refusals allowed before ``flooding``: the opening, growing with age
        # (recomputed at each refusal, the slow path).
        self._allowance = self._opening
        # Until its own bucket could hold a whole burst, a connection short of
        # tokens draws on its address's pool (``key``'s).
        self._young_until = self._opened + (self._burst - self._opening) / self._rate
        self._pool = pool if full else None
        self._key = key
        # One from an address just closed for flooding starts empty instead,
        # with no refusal to spare, or reconnecting would buy a fresh burst
        # each time (RatePenalties): it is closed at its first refusal.
        self._tokens = self._opening if full else 0.0
        self.refused = 0 if full else int(self._burst)
        # Called once, by the refusal that makes ``flooding`` true: the
        # server stops reading the connection there (hub.serving).
        self.on_flood: Callable[[], None] | None = None

    @property
    def flooding(self) -> bool:
        """Refused more than a whole burst (a young connection: its allowance)
        without pausing: close the connection."""
        return self.refused > self._allowance

    def take(self) -> bool:
        """A protocol unit after a message's first one (see :class:`WorkMeter`)."""
        return self.allow()

    def charge(self, tokens: float) -> None:
        """Spend ``tokens`` after the fact (a large reply); the bucket may go into debt.

        While young, what its own tokens cannot cover is drawn from its
        address's pool first, as far as the pool goes: the pool stands in for
        the burst a new connection has not had yet, for a large reply as for
        many messages (one client fetching history at once keeps its burst).
        """
        now = self._clock()
        own = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        short = tokens - max(own, 0.0)
        if short > 0.0 and self._pool is not None and now < self._young_until:
            tokens -= self._pool.draw(self._key, short)
        self._tokens = own - tokens
        self._stamp = now

    def allow(self) -> bool:
        """Take a token; False (and one more refusal) when there is none."""
        now = self._clock()
        tokens = self._tokens + (now - self._stamp) * self._rate
        self._stamp = now
        if tokens >= 1.0:
            if tokens >= self._burst:
                tokens = self._burst
                self.refused = 0
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        # Not for one in debt (large replies charged, charge()): the pool
        # stands in for the burst a new connection has not had, and a
        # connection that spent beyond it is over the rate like any other.
        if (
            self._pool is not None
            and tokens >= 0.0
            and now < self._young_until
            and self._pool.take(self._key)
        ):
            return True
        self.refused += 1
        if self._allowance < self._burst:
            self._allowance = min(self._burst, self._opening + (now - self._opened) * self._rate)
        if self.refused > self._allowance and self.on_flood is not None:
            # Once: the allowance still grows, and may pass the count again.
            on_flood, self.on_flood = self.on_flood, None
            on_flood()
        return False


class InvalidBudget:
    """Invalid messages one connection may send: ``burst``, refilled at ``rate`` per second.

    A message the protocol cannot take (JSON that does not parse, a request
    of the wrong shape or nested too deep) is answered with its error like any
    other, and costs the hub about what a valid one does; a client sending
    them in a row is not a client with a bug. Past the budget the connection
    is closed (issue 13's poison attack: ~950 refused messages a second).
    """

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    def spend(self, count: int = 1) -> bool:
        """Spend ``count``; False once the budget is exhausted (close the connection)."""
        now = self._clock()
        tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate) - count
        self._stamp = now
        self._tokens = max(tokens, -1.0)
        return tokens >= 0.0


class WorkMeter(Protocol):
    """The rate tokens of one connection, as a protocol handler sees them.

    The server takes one token per WebSocket message; a handler takes one more
    per protocol unit after the first that the message holds (a batch element,
    an MQTT packet), so packing work into one frame buys nothing.
    """

    @property
    def flooding(self) -> bool: ...

    def take(self) -> bool: ...

    def charge(self, tokens: float) -> None:
        """Work measured after it was done (reply bytes): later units wait for it."""


class Unmetered:
    """The meter of a handler not run by a server (unit tests of a handler alone)."""

    flooding = False

    def take(self) -> bool:
        return True

    def charge(self, tokens: float) -> None:
        pass


UNMETERED: WorkMeter = Unmetered()


class _AddressBuckets:
    """A token bucket per address key: ``burst`` tokens refilled at ``rate`` per
    second, full for an address not seen lately; at most ``max_entries``
    addresses, the least recently seen forgotten first (it comes back full)."""

    __slots__ = ("_burst", "_clock", "_max_entries", "_rate", "_tokens")

    def __init__(
        self,
        rate: float,
        burst: int,
        max_entries: int = 10_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = float(rate)
        self._burst = float(burst)
        self._max_entries = max_entries
        self._clock = clock
        # key -> (tokens, when counted), least recently seen first
        self._tokens: dict[str, tuple[float, float]] = {}

    def _refilled(self, key: str, now: float) -> float:
        """``key``'s tokens now, its entry taken out (``_keep`` puts it back, newest)."""
        entry = self._tokens.pop(key, None)
        if entry is None:
            return self._burst
        return min(self._burst, entry[0] + (now - entry[1]) * self._rate)

    def _keep(self, key: str, tokens: float, now: float) -> None:
        self._tokens[key] = (tokens, now)
        if len(self._tokens) > self._max_entries:
            del self._tokens[next(iter(self._tokens))]

    def __len__(self) -> int:
        return len(self._tokens)


class OpeningPool(_AddressBuckets):
    """Per address, the burst its young connections share (see MessageRateLimiter).

    A token bucket per address key, ``burst`` tokens refilled at ``rate`` per
    second, full for an address not seen lately. Bounded: past
    ``max_entries`` the least recently used address is forgotten (it comes
    back full, as after a pause).
    """

    __slots__ = ()

    def take(self, key: str) -> bool:
        """One token of ``key``'s pool; False when it is empty."""
        now = self._clock()
        tokens = self._refilled(key, now)
        taken = tokens >= 1.0
        self._keep(key, tokens - 1.0 if taken else tokens, now)
        return taken

    def draw(self, key: str, wanted: float) -> float:
        """Up to ``wanted`` tokens of ``key``'s pool (a large reply); what it gave."""
        now = self._clock()
        tokens = self._refilled(key, now)
        given = min(max(tokens, 0.0), wanted)
        self._keep(key, tokens - given, now)
        return given


class ConnectionRate(_AddressBuckets):
    """New connections per address: a token bucket per address key.

    ``burst`` tokens refilled at ``rate`` per second, full for an address not
    seen lately; each new connection takes one. A rate of 0 turns it off.
    Bounded: an address idle long enough to be full again is forgotten (it
    would come back full anyway), and past ``max_entries`` the least recently
    seen address is forgotten too.
    """

    __slots__ = ()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def take(self, key: str) -> float | None:
        """Take a token of ``key``'s bucket: None, else the seconds until one is there."""
        if self._rate <= 0:
            return None
        now = self._clock()
        tokens = self._refilled(key, now)
        wait = None if tokens >= 1.0 else (1.0 - tokens) / self._rate
        self._tokens[key] = (tokens - 1.0 if wait is None else tokens, now)
        self._forget(now)
        return wait

    def _forget(self, now: float) -> None:
        # Oldest first: stop at the first address not yet full again (an empty
        # bucket is full after burst / rate seconds; take() runs only with rate > 0).
        full_after = self._burst / self._rate
        tokens = self._tokens
        while tokens:
            oldest = next(iter(tokens))
            if len(tokens) <= self._max_entries and now - tokens[oldest][1] < full_after:
                break
            del tokens[oldest]


class RatePenalties:
    """Addresses whose connection was just closed for its message rate.

    For ``seconds`` after such a close, new connections from the address start
    with an empty token bucket. An address closed again while under its
    penalty (it reconnected and flooded at once: a loop, not a burst) is a
    repeat offender: its upgrades are refused (HTTP 429) until the penalty
    ends, so each reconnect costs the hub a refused handshake, not an inflated
    message. Bounded: past ``max_entries`` the oldest penalty is forgotten.
    """

    __slots__ = ("_clock", "_max_entries", "_seconds", "_until")

    def __init__(
        self,
        seconds: float,
        max_entries: int = 10_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._max_entries = max_entries
        self._clock = clock
        # key -> (penalty's end, whether the key flooded again under it)
        self._until: dict[str, tuple[float, bool]] = {}

    def punish(self, key: str) -> None:
        now = self._clock()
        previous = self._until.pop(key, None)
        repeat = previous is not None and previous[0] > now
        self._until[key] = (now + self._seconds, repeat)
        while len(self._until) > self._max_entries:
            del self._until[next(iter(self._until))]

    def active(self, key: str) -> bool:
        entry = self._until.get(key)
        if entry is None:
            return False
        if entry[0] > self._clock():
            return True
        del self._until[key]
        return False

    def refusal(self, key: str) -> float | None:
        """Seconds a repeat offender's upgrades are still refused; None: not refused."""
        entry = self._until.get(key)
        if entry is None or not entry[1]:
            return None
        left = entry[0] - self._clock()
        return left if left > 0 else None


class SlotRefused(Enum):
    """Why a connection got no slot; the value is the /metrics label."""

    MAX_CONNECTIONS = "max_connections"
    PER_IP = "per_ip"


def address_key(host: str) -> str:
    """The key a client address is counted under.

    IPv4 addresses count alone. An IPv6 client usually holds a whole /64 and can
    pick a fresh address per connection, so IPv6 counts by /64 prefix; an
    IPv4-mapped IPv6 address counts as its IPv4 address.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a Unix socket path or something else without an IP
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectionSlots:
    """Counts connections in all and per client address, up to the configured limits.

    Two kinds of slot share the per-address count: a *pending* one from a TCP
    accept until its request arrives, and an *open* one from an upgrade request
    until the TCP connection is gone. Each kind has ``max_total`` slots of its
    own, so sockets that never send a request cannot crowd out WebSockets, nor
    keep a full hub from answering ``/healthz``; together they bound the hub's
    sockets to twice ``max_total``. ``release`` exactly once per ``acquire``.
    """

    __slots__ = ("_by_address", "_max_per_address", "_max_total", "_pending", "_total")

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self._max_total = max_total
        self._max_per_address = max_per_address
        self._total = 0
        self._pending = 0
        self._by_address: dict[str, int] = {}

    @property
    def in_use(self) -> int:
        return self._total

    @property
    def pending(self) -> int:
        return self._pending

    def held_by(self, key: str) -> int:
        return self._by_address.get(key, 0)

    def acquire(self, key: str, *, pending: bool = False) -> SlotRefused | None:
        """Take a slot for ``key`` (see :func:`address_key`); the reason when refused."""
        if (self._pending if pending else self._total) >= self._max_total:
            return SlotRefused.MAX_CONNECTIONS
        held = self._by_address.get(key, 0)
        if held >= self._max_per_address:
            return SlotRefused.PER_IP
        self._by_address[key] = held + 1
        if pending:
            self._pending += 1
        else:
            self._total += 1
        return None

    def release(self, key: str, *, pending: bool = False) -> None:
        held = self._by_address.get(key, 0)
        if held <= 0:
            raise RuntimeError(f"no connection slot held by {key!r}")
        if held == 1:
            # Forget addresses with nothing open, or the table grows forever.
            del self._by_address[key]
        else:
            self._by_address[key] = held - 1
        if pending:
            self._pending -= 1
        else:
            self._total -= 1
