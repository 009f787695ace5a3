"""Hub and baseline measured in alternation, best run of each kept.

The machine is shared: another job can take a core in the middle of a
measurement. Alternating spreads such disturbances over both sides, and the
best of each side's runs is the one least disturbed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def best_of(
    rounds: int, hub: Callable[[], T], baseline: Callable[[], T], score: Callable[[T], float]
) -> tuple[T, T]:
    hubs: list[T] = []
    baselines: list[T] = []
    for _ in range(rounds):
        hubs.append(hub())
        baselines.append(baseline())
    return max(hubs, key=score), max(baselines, key=score)
