"""WAMP-CRA does not tell which authids exist: an unknown one gets a challenge too.

It used to get ABORT ``wamp.error.not_authorized`` at HELLO while a known one
got a CHALLENGE. Now an unknown authid gets a CHALLENGE shaped like a user's
(salted, with the same salt on every try, when most users are salted) that no
secret answers, and AUTHENTICATE fails as a wrong secret does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import HubFactory
from tests.protocols.wamp.conftest import RawWamp

SALTED = {"secret": "derived", "salt": "c2FsdHNhbHQ=", "iterations": 100, "keylen": 32}
CONFIG = {"wamp": {"wampcra_users": {"alice": SALTED, "bob": SALTED, "cy": {"secret": "plain"}}}}


async def attempt(
    make_raw: Callable[..., Awaitable[RawWamp]], hub: Any, authid: str
) -> tuple[dict[str, Any], list[Any]]:
    """HELLO with wampcra, then a wrong signature: (the CHALLENGE's extra, the ABORT)."""
    client = await make_raw(hub)
    challenge = await client.hello(authmethods=["wampcra"], authid=authid)
    assert challenge[:2] == [4, "wampcra"], challenge
    abort = await client.request([5, "d3Jvbmc=", {}])
    return challenge[2], abort


async def test_unknown_authid_looks_like_a_salted_user(
    make_hub: HubFactory, raw_wamp: Callable[..., Awaitable[RawWamp]]
) -> None:
    """Known and unknown authids both get a salted CHALLENGE, then authentication_failed."""
    hub = await make_hub(CONFIG)
    known, known_abort = await attempt(raw_wamp, hub, "alice")
    unknown, unknown_abort = await attempt(raw_wamp, hub, "mallory")
    again, _ = await attempt(raw_wamp, hub, "mallory")
    assert set(known) == set(unknown) == {"challenge", "salt", "iterations", "keylen"}
    assert (unknown["iterations"], unknown["keylen"]) == (100, 32)
    assert unknown["salt"] == again["salt"]  # stable, as a real user's salt is
    for abort in (known_abort, unknown_abort):
        assert abort[0] == 3
        assert abort[2] == "wamp.error.authentication_failed"
