"""The built-in method tables are per class (names of methods), not per connection."""

from __future__ import annotations

import inspect

from protocols.channels.handler import ChannelsHandler
from protocols.jsonrpc.handler import JsonRpcHandler

CHANNELS_METHODS = {
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "refresh",
}


def test_every_builtin_names_a_coroutine_method() -> None:
    for cls in (JsonRpcHandler, ChannelsHandler):
        for wire_name, attribute in cls.builtins.items():
            method = getattr(cls, attribute, None)
            assert inspect.iscoroutinefunction(method), (cls.__name__, wire_name, attribute)


def test_channels_adds_its_methods_to_the_rpc_ones() -> None:
    assert set(JsonRpcHandler.builtins) == {"rpc.discover", "rpc.refresh"}
    assert set(ChannelsHandler.builtins) == CHANNELS_METHODS | set(JsonRpcHandler.builtins)
    assert ChannelsHandler.builtins["refresh"] == JsonRpcHandler.builtins["rpc.refresh"]
