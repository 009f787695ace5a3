"""Taking turns at the event loop: heavy work yields behind the I/O polled next.

``asyncio.sleep(0)`` resumes a task before the callbacks of the I/O that
arrived meanwhile: asyncio runs the handles queued during one iteration
before the next poll's callbacks. A connection cutting its work in slices
that way still runs its next slice ahead of a well-behaved client's request
that arrived during the slice, and a few such connections stack their slices
in every iteration (issue 13: the hostile bench's four attack connections).
A timer due now runs after the poll's callbacks, so the next slice waits
behind what the poll found.
"""

from __future__ import annotations

import asyncio

# A timer this far ahead is due at the next poll: its callback runs after
# the I/O callbacks of that poll (asyncio.sleep(0) would run before them).
_BEHIND_IO = 1e-6

# Seconds of handling a session's messages may take before the session yields
# (hub.serving): a read of small messages parsed at once, or a client sending
# faster than it is served, is otherwise handled in one loop step.
SESSION_STEP = 0.0003
# A gap longer than this between two of a session's messages means it waited
# for the second (a suspension is at least a poll of the loop; a message
# already queued comes in a few microseconds).
WAITED = 0.00005


async def yield_behind_io() -> None:
    """Give the loop back until the I/O it polls next has been served."""
    await asyncio.sleep(_BEHIND_IO)
