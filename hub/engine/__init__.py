"""The channel engine: fan-out, presence and history behind narrow store interfaces."""

from hub.engine.base import (
    Broker,
    ClientInfo,
    Encodings,
    HistoryOptions,
    HistoryResult,
    HistoryStore,
    Kind,
    Memo,
    PresenceStore,
    Publication,
    StreamPosition,
)
from hub.engine.core import ChannelEngine, Subscriber
from hub.engine.memory import MemoryBroker, MemoryHistory, MemoryPresence


def memory_engine(node_id: str = "") -> ChannelEngine:
    """The embedded single-process engine."""
    history = MemoryHistory()
    return ChannelEngine(MemoryBroker(history), history, MemoryPresence(), node_id=node_id)


__all__ = [
    "Broker",
    "ChannelEngine",
    "ClientInfo",
    "Encodings",
    "HistoryOptions",
    "HistoryResult",
    "HistoryStore",
    "Kind",
    "Memo",
    "MemoryBroker",
    "MemoryHistory",
    "MemoryPresence",
    "PresenceStore",
    "Publication",
    "StreamPosition",
    "Subscriber",
    "memory_engine",
]
