"""The Redis pub/sub reader's reconnect backoff (hub.engine.redis.link.full_jitter)."""

from __future__ import annotations

from hub.engine.redis.link import full_jitter


def test_backoff_stays_within_cap_after_hours_of_failures() -> None:
    """Attempt 5,000 (hours of Redis down) still gives a delay in [0, cap], no OverflowError."""
    for attempt in (0, 10, 1023, 1024, 1025, 5000, 10**6):
        delay = full_jitter(attempt, base=0.1, cap=5.0)
        assert 0.0 <= delay <= 5.0


def test_backoff_grows_from_base_to_cap() -> None:
    """Early attempts wait at most base * 2**attempt; the bound reaches the cap and stays."""
    assert max(full_jitter(0, base=0.1, cap=5.0) for _ in range(200)) <= 0.1
    assert max(full_jitter(3, base=0.1, cap=5.0) for _ in range(200)) <= 0.8
    delays = [full_jitter(2000, base=0.1, cap=5.0) for _ in range(400)]
    assert max(delays) > 2.5  # uniform over [0, 5]: the cap, not a collapsed range
