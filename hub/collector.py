"""The garbage collector's settings for a serving hub (issue 13).

``settle()`` runs once the hub listens. It freezes what is loaded by then
(modules, config, the protocol tables: alive as long as the process), so a
full collection walks only what serving created (one over everything took
~25 ms under issue 13's hostile load). Freezing leaves a small generation 2,
and CPython 3.11 then runs a full collection nearly every time its count
threshold fires (every 10 collections of generation 1: ~2.5 s under the
store-growth attack of bench/hostile.py, 10 to 15 ms each over the bounded
stores). The threshold is raised tenfold: a full collection at most once per
100 of generation 1. Nothing is kept for good by that: cyclic garbage is
still collected, only later; what waits for it is at most what survives 100
young collections. Only the startup objects are frozen, never later ones: a
frozen cycle is never collected.
"""

from __future__ import annotations

import gc

# Collections of generation 1 between two full ones (CPython's default: 10).
FULL_EVERY = 100


def settle() -> None:
    """Freeze the startup heap and space full collections (call once, when listening)."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)
