"""MQTT and WAMP ticket logins take as long for an unknown user as for a known one.

With a JWT key or an ``on_authenticate`` hook configured, an unknown user used
to skip the password hash: ~1 ms against ~200 ms for a user of the table, so
response times listed who exists. Every refusal now costs one hash (a dummy
one, with the table's own parameters, for unknown users). The comparison is of
medians over several tries, with a generous factor: it catches a missing hash
(a factor of tens), not scheduling noise.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

import pytest
from argon2 import PasswordHasher, extract_parameters

from hub import Hub
from hub.auth.passwords import dummy_hash
from protocols.mqtt.codec import Connack, ConnackCode
from tests.auth_helpers import SECRET
from tests.conftest import HubFactory
from tests.protocols.mqtt.conftest import RawMqtt
from tests.protocols.wamp.conftest import RawWamp

# Costly enough that a skipped hash shows (tens of ms), cheap enough for a test.
HASHER = PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1)
TRIES = 5
FACTOR = 4


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    """A user table, a JWT key and a hook: the configuration that used to leak."""
    hub = await make_hub(
        {"auth": {"basic": {"users": {"ada": HASHER.hash("right")}}, "jwt": {"secret": SECRET}}}
    )
    hub.on_authenticate(lambda credentials: None)
    return hub


def comparable(known: list[float], unknown: list[float]) -> None:
    fast, slow = statistics.median(unknown), statistics.median(known)
    assert slow > 0.002, f"the known user's refusal took {slow:.4f}s: no hash checked?"
    assert fast * FACTOR > slow, f"unknown {fast:.4f}s vs known {slow:.4f}s (medians)"
    assert slow * FACTOR > fast, f"unknown {fast:.4f}s vs known {slow:.4f}s (medians)"


async def test_mqtt_connect_timing_hides_who_exists(
    hub: Hub, raw_mqtt: Callable[..., Awaitable[RawMqtt]]
) -> None:
    """CONNACK 4 for a known user's wrong password and for an unknown user, in comparable time."""
    timings: dict[str, list[float]] = {"ada": [], "ghost": []}
    for n in range(TRIES):
        for user in timings:
            client = await raw_mqtt(hub)
            start = time.perf_counter()
            connack = await client.connect(f"{user}-{n}", username=user, password=b"wrong")
            timings[user].append(time.perf_counter() - start)
            assert connack == Connack(False, ConnackCode.BAD_USERNAME_OR_PASSWORD)
    comparable(timings["ada"], timings["ghost"])


async def test_wamp_ticket_timing_hides_who_exists(
    hub: Hub, raw_wamp: Callable[..., Awaitable[RawWamp]]
) -> None:
    """ABORT authentication_failed for a known and an unknown authid, in comparable time."""
    timings: dict[str, list[float]] = {"ada": [], "ghost": []}
    for _ in range(TRIES):
        for user in timings:
            client = await raw_wamp(hub)
            challenge = await client.hello(authmethods=["ticket"], authid=user)
            assert challenge[:2] == [4, "ticket"]
            start = time.perf_counter()
            abort = await client.request([5, "wrong", {}])
            timings[user].append(time.perf_counter() - start)
            assert (abort[0], abort[2]) == (3, "wamp.error.authentication_failed")
    comparable(timings["ada"], timings["ghost"])


def test_dummy_hash_takes_the_tables_parameters() -> None:
    """The dummy an unknown user is checked against costs what the table's hashes cost."""
    table = [HASHER.hash("a"), HASHER.hash("b"), PasswordHasher().hash("c")]
    dummy = extract_parameters(dummy_hash(table))
    assert dummy == extract_parameters(table[0])
