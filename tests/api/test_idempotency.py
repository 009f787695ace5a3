"""The idempotency store: once per key within the window, bounded, failures retried."""

from __future__ import annotations

import asyncio

import pytest

from hub.api.idempotency import IdempotencyStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_same_key_runs_once_even_concurrently() -> None:
    """Two requests with one key in flight together run the operation once."""
    runs = 0
    gate = asyncio.Event()

    async def operation() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        return runs

    store = IdempotencyStore(window=10, max_keys=10)
    first = asyncio.create_task(store.run("k", operation))
    second = asyncio.create_task(store.run("k", operation))
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(first, second) == [1, 1]
    assert runs == 1


async def test_key_forgotten_after_window() -> None:
    """After the window, the same key runs again."""
    clock = Clock()
    store = IdempotencyStore(window=5, max_keys=10, clock=clock)
    counter = iter(range(100))

    async def operation() -> int:
        return next(counter)

    assert await store.run("k", operation) == 0
    clock.now = 4.9
    assert await store.run("k", operation) == 0
    clock.now = 5.1
    assert await store.run("k", operation) == 1


async def test_bounded_oldest_forgotten() -> None:
    """Past max_keys the oldest key is forgotten first."""
    store = IdempotencyStore(window=100, max_keys=2)
    counter = iter(range(100))

    async def operation() -> int:
        return next(counter)

    for key in ("a", "b", "c"):
        await store.run(key, operation)
    assert len(store) == 2
    assert await store.run("c", operation) == 2
    assert await store.run("a", operation) == 3


async def test_failure_not_remembered() -> None:
    """An operation that failed did not happen: the key may be tried again."""
    store = IdempotencyStore(window=100, max_keys=10)

    async def failing() -> int:
        raise ConnectionError("engine away")

    async def working() -> int:
        return 7

    with pytest.raises(ConnectionError):
        await store.run("k", failing)
    assert await store.run("k", working) == 7
