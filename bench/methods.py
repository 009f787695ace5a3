"""The RPC method the benchmark calls on the hub."""

from __future__ import annotations

from typing import Any

from hub import rpc


@rpc("echo")
async def echo(value: Any = None) -> Any:
    return value
