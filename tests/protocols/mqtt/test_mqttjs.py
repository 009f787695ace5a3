"""MQTT.js in node against the hub (node/script.mjs, installed by scripts/bootstrap)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from hub import Hub
from tests.conftest import JsonRpcPeer, PeerFactory

NODE_PROJECT = Path(__file__).parent / "node"


async def run_script(url: str, script: str = "script.mjs") -> dict[str, object]:
    node = shutil.which("node")
    if node is None or not (NODE_PROJECT / "node_modules" / "mqtt").is_dir():
        # Not a skip: MQTT.js must be tested for real.
        raise RuntimeError("node or MQTT.js missing: run scripts/bootstrap")
    process = await asyncio.create_subprocess_exec(
        node,
        script,
        url,
        cwd=NODE_PROJECT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    result: dict[str, object] = json.loads(stdout)
    return result


async def test_mqttjs_publishes_subscribes_and_gets_retained(
    hub: Hub, jsonrpc: PeerFactory
) -> None:
    """MQTT.js: SUBACK grants QoS 2, QoS 0/1/2 and a 50 kB message arrive, retained is flagged."""
    watcher: JsonRpcPeer = await jsonrpc(hub, "channels.v1")
    await watcher.call("subscribe", {"channel": "js/#"})

    result = await run_script(hub.url.rstrip("/") + "/mqtt")

    assert result["granted"] == [2]
    messages = sorted(result["messages"], key=lambda m: m["topic"])  # type: ignore[arg-type]
    assert [(m["topic"], m["qos"], m["size"]) for m in messages] == [
        ("js/big", 1, 50_000),
        ("js/q0", 0, 4),
        ("js/q1", 1, 3),
        ("js/q2", 2, 9),
    ]
    assert all(m["retain"] is False for m in messages)
    assert result["retained"] == {
        "topic": "kept/js",
        "qos": 1,
        "retain": True,
        "size": 8,
        "payload": "retained",
    }
    # What MQTT.js published went through the engine to a channels.v1 client too.
    seen = set()
    for _ in range(4):
        note = await watcher.recv()
        seen.add(note["params"]["channel"])
    assert seen == {"js/q0", "js/q1", "js/q2", "js/big"}


async def test_mqttjs_speaks_mqtt5(hub: Hub) -> None:
    """MQTT.js protocolVersion 5: CONNACK properties, message properties, no local, aliases."""
    result = await run_script(hub.url.rstrip("/") + "/mqtt", "script5.mjs")
    connack = result["connack"]
    assert isinstance(connack, dict)
    assert connack["receiveMaximum"] == 20
    assert connack["subscriptionIdentifiersAvailable"] is True
    assert result["granted"] == [1]
    assert result["ack"] == 0
    first = result["first"]
    assert isinstance(first, dict)
    assert first["topic"] == "js5/req"
    assert first["payload"] == "hello"
    props = first["properties"]
    assert props["contentType"] == "text/plain"
    assert props["responseTopic"] == "js5/resp"
    assert props["correlationData"] == "010203"
    assert props["userProperties"] == {"origin": "mqtt.js"}
    assert props["subscriptionIdentifier"] == 9
    assert 58 <= props["messageExpiryInterval"] <= 60
    aliased = result["aliased"]
    assert isinstance(aliased, dict)
    assert (aliased["topic"], aliased["payload"]) == ("js5/alias", "one")
    # PUBACK 0x87: '$' topics are the server's.
    assert result["refused"] == 0x87
