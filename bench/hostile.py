"""Hostile load: well-behaved clients' round trips while one attack runs (issue 13).

    python -m bench --only hostile        # or: python -m bench.hostile

Each attack gets a fresh hub on its default configuration (the limits an
operator deploys, not the benchmark's raised ones). A probe process runs
PROBES channels.v1 clients, each timing ``presence_stats`` round trips back
to back; an attacker process runs the attack for the same window, reconnecting
whenever the hub closes it. The same probes on a quiet hub are the baseline.
Reported per attack: the probes' p99 and max, and the hub's peak RSS growth
(VmHWM less the RSS before the attack). Targets: p99 within 2x of the quiet
run, growth under 256 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench import processes
from bench.processes import ROOT, Server, free_port, running
from bench.report import Row
from bench.rounds import best_of

PROBES = 10
MIB = 1024 * 1024
# Seconds each attack (and the quiet run) lasts.
WINDOW = 8.0
P99_FACTOR = 2.0
RSS_BOUND_MIB = 256.0


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


@contextlib.contextmanager
def default_hub() -> Iterator[Server]:
    """``python -m hub`` on its built-in defaults (logging quieter), on a free port."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "hub.toml"
        config.write_text('[logging]\nlevel = "error"\n')
        args = [processes.PYTHON, "-m", "hub", "--config", str(config), "--port", str(port)]
        with running(args, "hub", cwd=ROOT, stderr=subprocess.DEVNULL) as process:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("hub did not start") from None
                    time.sleep(0.1)
            yield Server(f"ws://127.0.0.1:{port}/", process.pid)


# -- the probe (its own process) ------------------------------------------------------


async def probe(url: str, seconds: float) -> list[float]:
    """PROBES clients timing round trips for ``seconds``; every round trip, in seconds."""
    times: list[float] = []
    deadline = time.monotonic() + seconds

    async def one(index: int) -> None:
        async with connect(url, subprotocols=["channels.v1"], max_size=None) as ws:  # type: ignore[list-item]
            request_id = 0
            while time.monotonic() < deadline:
                request_id += 1
                message = {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "method": "presence_stats",
                    "params": {"channel": f"quiet/{index}"},
                }
                started = time.perf_counter()
                await ws.send(json.dumps(message))
                while json.loads(await ws.recv()).get("id") != request_id:
                    pass
                times.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)

    await asyncio.gather(*(one(i) for i in range(PROBES)))
    return times


# -- the attacks (their own process) ---------------------------------------------------


def request(request_id: int | None, method: str, params: Any) -> dict[str, Any]:
    message = {"jsonrpc": "2.0", "method": method, "params": params}
    if request_id is not None:
        message["id"] = request_id
    return message


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


def mqtt_connect(client_id: str, clean: bool = True) -> bytes:
    from protocols.mqtt.codec import Connect, encode

    return encode(Connect(client_id=client_id, clean_session=clean, keepalive=600))


async def ws_open(url: str, protocol: str) -> ClientConnection:
    return await connect(url, subprotocols=[protocol], max_size=None, open_timeout=10)  # type: ignore[list-item]


async def drain(ws: ClientConnection) -> None:
    """Read (and drop) whatever the hub sends, until it closes."""
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def attack_history_batch(url: str, until: float) -> None:
    """Batches of 100 history calls on 100 x 60 KB messages (issue: +1.7 GiB each)."""
    setup = await ws_open(url, "channels.v1")
    for i in range(100):
        await setup.send(
            json.dumps(request(i, "publish", {"channel": "big", "data": "x" * 60_000}))
        )
        await setup.recv()
    await setup.close()
    batch = json.dumps([request(i, "history", {"channel": "big"}) for i in range(100)])
    while time.monotonic() < until:
        with contextlib.suppress(ConnectionClosed, InvalidStatus, OSError):
            ws = await ws_open(url, "channels.v1")
            while time.monotonic() < until:
                await ws.send(batch)
                await ws.recv()
            await ws.close()


async def attack_mqtt_pack(url: str, until: float, packet: bytes) -> None:
    """1 MiB WebSocket messages packed with one tiny MQTT packet, over and over."""
    frame = packet * (MIB // len(packet))
    n = 0
    while time.monotonic() < until:
        n += 1
        with contextlib.suppress(ConnectionClosed, InvalidStatus, OSError):
            ws = await ws_open(url, "mqtt")
            await ws.send(mqtt_connect(f"packer-{n}"))
            await ws.recv()
            reader = asyncio.create_task(drain(ws))
            while time.monotonic() < until and not reader.done():
                await ws.send(frame)
                await asyncio.sleep(0)
            reader.cancel()
            await ws.close()


async def attack_notification_batches(url: str, until: float) -> None:
    """A 25k-notification batch, then 100-element batches of publish notifications."""
    tiny = json.dumps([{"jsonrpc": "2.0", "method": "x"}] * 25_000, separators=(",", ":"))
    batch = json.dumps([request(None, "publish", {"channel": "n", "data": 1})] * 100)
    while time.monotonic() < until:
        with contextlib.suppress(ConnectionClosed, InvalidStatus, OSError):
            ws = await ws_open(url, "channels.v1")
            reader = asyncio.create_task(drain(ws))
            await ws.send(tiny)
            while time.monotonic() < until and not reader.done():
                await ws.send(batch)
                await asyncio.sleep(0.001)
            reader.cancel()
            await ws.close()


async def attack_poison(url: str, until: float) -> None:
    """Deep JSON everywhere: channels.v1 params, WAMP msgpack/cbor args, MQTT JSON payloads."""
    from protocols.mqtt.codec import Publish, encode

    deep_json = json.dumps(request(1, "publish", {"channel": "p", "data": nested(252)}))
    deep_mqtt = encode(Publish(topic="p/m", payload=b"[" * 999 + b"1" + b"]" * 999))
    hello = [1, "realm1", {"roles": {"publisher": {}}}]
    deep_wamp = [16, 1, {"acknowledge": True}, "p.w", [nested(300)]]
    while time.monotonic() < until:
        with contextlib.suppress(ConnectionClosed, InvalidStatus, OSError):
            ws = await ws_open(url, "channels.v1")
            for _ in range(50):
                await ws.send(deep_json)
                await ws.recv()
            await ws.close()
            mqtt = await ws_open(url, "mqtt")
            await mqtt.send(mqtt_connect("poisoner"))
            await mqtt.recv()
            for _ in range(50):
                await mqtt.send(deep_mqtt)
            await mqtt.close()
            for wire, dumps in (
                ("wamp.2.msgpack", lambda m: msgpack.packb(m, use_bin_type=True)),
                ("wamp.2.cbor", cbor2.dumps),
            ):
                wamp = await ws_open(url, wire)
                await wamp.send(dumps(hello))
                await wamp.recv()
                await wamp.send(dumps(deep_wamp))
                await drain(wamp)


async def attack_store_growth(url: str, until: float) -> None:
    """Cheap uploads once kept forever: history names, retained, sessions, presence info."""
    from protocols.mqtt.codec import Disconnect, Publish, Subscribe, encode

    n = 0
    info = {"bio": "x" * 900_000}
    while time.monotonic() < until:
        n += 1
        with contextlib.suppress(ConnectionClosed, InvalidStatus, OSError):
            ws = await ws_open(url, "channels.v1")
            names = [request(i, "history", {"channel": f"h/{n}/{i}"}) for i in range(100)]
            await ws.send(json.dumps(names))
            await ws.recv()
            await ws.send(
                json.dumps(
                    request(
                        1, "subscribe", {"channel": f"room/{n}", "presence": True, "info": info}
                    )
                )
            )
            await ws.recv()
            await ws.close()
            mqtt = await ws_open(url, "mqtt")
            await mqtt.send(mqtt_connect(f"hoarder-{n}", clean=False))
            await mqtt.recv()
            retained = b"".join(
                encode(Publish(topic=f"r/{n}/{i}", payload=bytes([i]) * 60_000, retain=True))
                for i in range(10)
            )
            await mqtt.send(retained)
            await mqtt.send(encode(Subscribe(1, ((f"q/{n}", 1),))))
            await mqtt.recv()
            await mqtt.send(encode(Disconnect()))
            await drain(mqtt)


ATTACKS: dict[str, Callable[[str, float], Awaitable[None]]] = {
    "history batches (100 x 60 KB)": attack_history_batch,
    "MQTT PUBLISH packed, 1 MiB frames": lambda url, until: attack_mqtt_pack(
        url, until, bytes([0x30, 0x06, 0x00, 0x04]) + b"t/ab"
    ),
    "MQTT PINGREQ packed, 1 MiB frames": lambda url, until: attack_mqtt_pack(
        url, until, bytes([0xC0, 0x00])
    ),
    "notification batches (25k, 100)": attack_notification_batches,
    "poison: deep JSON, msgpack, CBOR": attack_poison,
    "store growth (names, retained, sessions, info)": attack_store_growth,
}


async def attack(name: str, url: str, seconds: float) -> None:
    """Four attacker connections in parallel, for ``seconds``."""
    until = time.monotonic() + seconds
    await asyncio.gather(*(ATTACKS[name](url, until) for _ in range(4)))


# -- the measurement --------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(name: str | None) -> tuple[list[float], float, float]:
    """(probe round trips, hub peak RSS growth in MiB, hub CPU cores busy) under ``name``."""
    with default_hub() as server:
        time.sleep(0.5)
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")
        before = status_kib(server.pid, "VmRSS")
        cpu_before = processes.cpu_seconds(server.pid)
        me = [processes.PYTHON, "-m", "bench.hostile"]
        probe_run = subprocess.Popen(
            [*me, "--probe", server.url, str(WINDOW)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        if name is not None:
            subprocess.run([*me, "--attack", name, server.url, str(WINDOW)], cwd=ROOT, check=True)
        out, _ = probe_run.communicate(timeout=WINDOW + 120)
        growth = (status_kib(server.pid, "VmHWM") - before) / 1024
        busy = (processes.cpu_seconds(server.pid) - cpu_before) / WINDOW
    return json.loads(out), growth, busy


def hostile_workload(rounds: int = 2) -> list[Row]:
    """Each attack next to a quiet run, alternating, ``rounds`` times; the least disturbed kept."""
    rows = []
    for name in ATTACKS:
        (times, growth, busy), (quiet, quiet_growth, quiet_busy) = best_of(
            rounds,
            lambda name=name: measure(name),  # type: ignore[misc]
            lambda: measure(None),
            lambda result: -percentile(result[0], 0.99),
        )
        quiet_p99 = percentile(quiet, 0.99) * 1000
        quiet_max = max(quiet) * 1000
        p99 = percentile(times, 0.99) * 1000
        label = f"Hostile: {name}"
        rows += [
            Row(
                label,
                "probe p99 ms",
                p99,
                quiet_p99,
                "same probes, quiet",
                f"< {P99_FACTOR:g}x quiet",
                p99 < P99_FACTOR * quiet_p99,
            ),
            Row(label, "probe max ms", max(times) * 1000, quiet_max, "same probes, quiet"),
            Row(
                label,
                "hub peak RSS growth MiB",
                growth,
                quiet_growth,
                "same probes, quiet",
                f"< {RSS_BOUND_MIB:g} MiB",
                growth < RSS_BOUND_MIB,
            ),
            Row(label, "hub CPU busy (cores)", busy, quiet_busy, "same probes, quiet"),
        ]
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        url, seconds = sys.argv[2], float(sys.argv[3])
        print(json.dumps(asyncio.run(probe(url, seconds))))
    elif sys.argv[1:2] == ["--attack"]:
        name, url, seconds = sys.argv[2], sys.argv[3], float(sys.argv[4])
        asyncio.run(attack(name, url, seconds))
    else:
        from bench.report import print_table

        print_table(hostile_workload())


if __name__ == "__main__":
    main()
