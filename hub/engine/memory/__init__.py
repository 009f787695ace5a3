"""The single-process backend: all in this process's memory, nothing kept across a restart."""

from hub.engine.memory.stores import (
    PRUNE_INTERVAL,
    MemoryBroker,
    MemoryHistory,
    MemoryPresence,
    StreamState,
    new_epoch,
)

__all__ = [
    "PRUNE_INTERVAL",
    "MemoryBroker",
    "MemoryHistory",
    "MemoryPresence",
    "StreamState",
    "new_epoch",
]
