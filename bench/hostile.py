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
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
import msgpack
from websockets.asyncio.client import ClientConnection, connect

from bench import processes, rawws
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


async def probe(url: str, seconds: float) -> dict[str, Any]:
    """PROBES clients timing round trips for ``seconds`` once told "go" on stdin.

    Returns every round trip (seconds) and this process's CPU seconds meanwhile.
    """
    times: list[float] = []
    clients = [
        await connect(url, subprotocols=["channels.v1"], max_size=None)  # type: ignore[list-item]
        for _ in range(PROBES)
    ]
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    started = cpu_now()
    deadline = time.monotonic() + seconds

    async def one(index: int, ws: ClientConnection) -> None:
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

    await asyncio.gather(*(one(i, ws) for i, ws in enumerate(clients)))
    cpu = cpu_now() - started
    for ws in clients:
        await ws.close()
    return {"times": times, "cpu": cpu}


# -- the attacks (their own process) ---------------------------------------------------
#
# Each attack is built once (``build``: its frames, deflated where the attack
# relies on compression, see bench/rawws.py) before the window starts, and
# the attacker's CPU time during the window is reported: on the bench's shared
# cores it competes with the hub and the probes, which a real attacker on
# another machine would not.

AttackLoop = Callable[[str, float], Awaitable[None]]


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


def text_frame(message: Any) -> bytes:
    """A JSON message as a compressed text frame."""
    return rawws.frame(json.dumps(message).encode(), text=True, compress=True)


def binary_frame(data: bytes) -> bytes:
    return rawws.frame(data, text=False, compress=True)


# The attacker connects from its own loopback address, as from its own
# machine: the hub's per-address defences (the flood penalty, the hold of a
# repeat flooder) then apply to it and not to the probes on 127.0.0.1.
ATTACKER_ADDRESS = "127.0.0.2"


async def opened(url: str, protocol: str) -> rawws.RawClient:
    return await rawws.RawClient.open(url, protocol, source=ATTACKER_ADDRESS)


# What ends an attack loop's connection: the hub closed it, or refused it.
GONE = (rawws.Closed, OSError, TimeoutError)


def history_batch() -> AttackLoop:
    """Batches of 100 history calls on 100 x 60 KB messages (issue: +1.7 GiB each)."""
    publishes = [
        text_frame(request(i, "publish", {"channel": "big", "data": "x" * 60_000}))
        for i in range(100)
    ]
    batch = text_frame([request(i, "history", {"channel": "big"}) for i in range(100)])

    async def run(url: str, until: float) -> None:
        setup = await opened(url, "channels.v1")
        for publish in publishes:
            await setup.send(publish)
            await setup.recv()
        await setup.close()
        while time.monotonic() < until:
            with contextlib.suppress(*GONE):
                # One connection as long as the hub keeps it: replies are not inflated.
                ws = await opened(url, "channels.v1")
                try:
                    while time.monotonic() < until:
                        await ws.send(batch)
                        await ws.recv()
                finally:
                    await ws.close()

    return run


def mqtt_pack(packet: bytes) -> Callable[[], AttackLoop]:
    """1 MiB WebSocket messages packed with one tiny MQTT packet, over and over."""

    def build() -> AttackLoop:
        frame = binary_frame(packet * (MIB // len(packet)))

        async def run(url: str, until: float) -> None:
            n = 0
            while time.monotonic() < until:
                n += 1
                with contextlib.suppress(*GONE):
                    # The hub closes it for its rate: a new connection each time.
                    ws = await opened(url, "mqtt")
                    try:
                        await ws.send(binary_frame(mqtt_connect(f"packer-{n}")))
                        await ws.recv()
                        while time.monotonic() < until and not ws.closed.is_set():
                            await ws.send(frame)
                            await asyncio.sleep(0)
                    finally:
                        await ws.close()

        return run

    return build


def notification_batches() -> AttackLoop:
    """A 25k-notification batch, then 100-element batches of publish notifications.

    The 25k batch (775 KB) is refused: by its element count (-32600) where
    channels.v1 takes 1 MiB messages, or by its size (close 1009) at the
    default 128 KiB; either way the batches follow, on a new connection if
    the hub closed that one.
    """
    tiny = rawws.frame(
        json.dumps([{"jsonrpc": "2.0", "method": "x"}] * 25_000, separators=(",", ":")).encode(),
        text=True,
        compress=True,
    )
    batch = text_frame([request(None, "publish", {"channel": "n", "data": 1})] * 100)

    async def run(url: str, until: float) -> None:
        while time.monotonic() < until:
            with contextlib.suppress(*GONE):
                ws = await opened(url, "channels.v1")
                try:
                    await ws.send(tiny)
                    with contextlib.suppress(rawws.Closed):
                        await ws.recv()
                    if ws.closed.is_set():
                        await ws.close()
                        ws = await opened(url, "channels.v1")
                    while time.monotonic() < until and not ws.closed.is_set():
                        await ws.send(batch)
                        await asyncio.sleep(0.001)
                finally:
                    await ws.close()

    return run


def poison() -> AttackLoop:
    """Deep JSON everywhere: channels.v1 params, WAMP msgpack/cbor args, MQTT JSON payloads."""
    from protocols.mqtt.codec import Publish, encode

    deep_json = text_frame(request(1, "publish", {"channel": "p", "data": nested(252)}))
    deep_mqtt = binary_frame(encode(Publish(topic="p/m", payload=b"[" * 999 + b"1" + b"]" * 999)))
    connect = binary_frame(mqtt_connect("poisoner"))
    hello = [1, "realm1", {"roles": {"publisher": {}}}]
    deep_wamp = [16, 1, {"acknowledge": True}, "p.w", [nested(300)]]
    wamp = [
        (wire, binary_frame(dumps(hello)), binary_frame(dumps(deep_wamp)))
        for wire, dumps in (
            ("wamp.2.msgpack", lambda m: msgpack.packb(m, use_bin_type=True)),
            ("wamp.2.cbor", cbor2.dumps),
        )
    ]

    async def run(url: str, until: float) -> None:
        while time.monotonic() < until:
            # Each part on its own: the hub closing one (channels.v1 after its
            # invalid-message budget, WAMP at once) does not spare it the others.
            with contextlib.suppress(*GONE):
                ws = await opened(url, "channels.v1")
                try:
                    for _ in range(50):
                        await ws.send(deep_json)
                        await ws.recv()
                finally:
                    await ws.close()
            with contextlib.suppress(*GONE):
                mqtt = await opened(url, "mqtt")
                try:
                    await mqtt.send(connect)
                    await mqtt.recv()
                    for _ in range(50):
                        await mqtt.send(deep_mqtt)
                finally:
                    await mqtt.close()
            for wire, hello_frame, deep_frame in wamp:
                with contextlib.suppress(*GONE):
                    peer = await opened(url, wire)
                    try:
                        await peer.send(hello_frame)
                        await peer.recv()
                        await peer.send(deep_frame)
                        await peer.closed.wait()
                    finally:
                        await peer.close()

    return run


def store_growth() -> AttackLoop:
    """Cheap uploads once kept forever: history names, retained, sessions, presence info.

    What is the same on every connection (the 900 KB info, the 60 KB retained
    payloads) is deflated once; the names that differ per connection are
    deflated on their own and joined to those pieces (bench/rawws.py).
    """
    from protocols.mqtt.codec import Disconnect, Publish, Subscribe, encode

    info_head = rawws.deflated(
        b'{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"presence":true,'
        b'"info":{"bio":"' + b"x" * 900_000 + b'"},"channel":"room/'
    )
    payloads = [bytes([i]) * 60_000 for i in range(10)]
    deflated_payloads = [rawws.deflated(payload) for payload in payloads]
    disconnect = binary_frame(encode(Disconnect()))

    def retained(n: int) -> bytes:
        """10 retained PUBLISH of 60 KB under r/<n>/: headers deflated here, payloads once."""
        pieces = []
        for i, payload in enumerate(payloads):
            packet = encode(Publish(topic=f"r/{n}/{i}", payload=payload, retain=True))
            pieces += [rawws.deflated(packet[: -len(payload)]), deflated_payloads[i]]
        return rawws.compressed_frame(pieces, text=False)

    # Shared by the loops: every connection's names, topics and client id are new.
    numbers = itertools.count(1)

    async def run(url: str, until: float) -> None:
        while time.monotonic() < until:
            n = next(numbers)
            tag = str(n)
            # Each part on its own: one the hub refuses (the info, closed
            # 1009 at channels.v1's 128 KiB) does not spare it the others.
            with contextlib.suppress(*GONE):
                ws = await opened(url, "channels.v1")
                try:
                    names = [request(i, "history", {"channel": f"h/{tag}/{i}"}) for i in range(100)]
                    await ws.send(text_frame(names))
                    await ws.recv()
                    info_tail = rawws.deflated(f'{tag}"}}}}'.encode())
                    await ws.send(rawws.compressed_frame([info_head, info_tail], text=True))
                    await ws.recv()
                finally:
                    await ws.close()
            with contextlib.suppress(*GONE):
                mqtt = await opened(url, "mqtt")
                try:
                    await mqtt.send(binary_frame(mqtt_connect(f"hoarder-{tag}", clean=False)))
                    await mqtt.recv()
                    await mqtt.send(retained(n))
                    await mqtt.send(binary_frame(encode(Subscribe(1, ((f"q/{tag}", 1),)))))
                    await mqtt.recv()
                    await mqtt.send(disconnect)
                    await mqtt.closed.wait()
                finally:
                    await mqtt.close()

    return run


ATTACKS: dict[str, Callable[[], AttackLoop]] = {
    "history batches (100 x 60 KB)": history_batch,
    "MQTT PUBLISH packed, 1 MiB frames": mqtt_pack(bytes([0x30, 0x06, 0x00, 0x04]) + b"t/ab"),
    "MQTT PINGREQ packed, 1 MiB frames": mqtt_pack(bytes([0xC0, 0x00])),
    "notification batches (25k, 100)": notification_batches,
    "poison: deep JSON, msgpack, CBOR": poison,
    "store growth (names, retained, sessions, info)": store_growth,
}
LOOPS = 4


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def attack(name: str, url: str, seconds: float) -> dict[str, float]:
    """Build the attack, say so, wait for "go" on stdin, then run LOOPS attack
    loops for ``seconds``; the CPU seconds this process spent meanwhile."""
    run = ATTACKS[name]()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    started = cpu_now()
    until = time.monotonic() + seconds
    await asyncio.gather(*(run(url, until) for _ in range(LOOPS)))
    return {"cpu": cpu_now() - started}


# -- the measurement --------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Measured:
    """One window: the probes' round trips and who used the cores meanwhile."""

    times: list[float]
    # Hub peak RSS growth, MiB.
    growth: float
    # CPU cores busy over the window: the hub, the attacker (0 when quiet), the probes.
    hub: float
    attacker: float
    probes: float


# Pinning (HOSTILE_PIN=1, off by default): the hub and the probes on CPU 0, the
# attacker on CPU 1, quiet runs alike. docs/benchmarks.md says why it is off.
PIN = os.environ.get("HOSTILE_PIN") == "1" and (os.cpu_count() or 1) >= 2
HUB_CPUS = {0}
ATTACKER_CPUS = {1}


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` on ``cpus`` (threads it starts later inherit it)."""
    if PIN:
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), cpus)


class Held:
    """A probe or attacker process, set up and waiting for "go" (then for its result)."""

    def __init__(self, args: list[str], cpus: set[int]) -> None:
        self.process = subprocess.Popen(
            args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        pin(self.process.pid, cpus)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{args[3:4]} did not start")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def result(self) -> Any:
        out, _ = self.process.communicate(timeout=WINDOW + 120)
        return json.loads(out)


def measure(name: str | None) -> Measured:
    """The probes' window on a fresh default hub, under attack ``name`` (None: quiet).

    The attacker builds its frames and the probes connect before the window;
    both start it together.
    """
    with default_hub() as server:
        pin(server.pid, HUB_CPUS)
        time.sleep(0.5)
        me = [processes.PYTHON, "-m", "bench.hostile"]
        held = [Held([*me, "--probe", server.url, str(WINDOW)], HUB_CPUS)]
        if name is not None:
            held.append(Held([*me, "--attack", name, server.url, str(WINDOW)], ATTACKER_CPUS))
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")
        before = status_kib(server.pid, "VmRSS")
        cpu_before = processes.cpu_seconds(server.pid)
        for each in held:
            each.go()
        results = [each.result() for each in held]
        growth = (status_kib(server.pid, "VmHWM") - before) / 1024
        busy = (processes.cpu_seconds(server.pid) - cpu_before) / WINDOW
    probe = results[0]
    attacker_cpu = results[1]["cpu"] if name is not None else 0.0
    return Measured(probe["times"], growth, busy, attacker_cpu / WINDOW, probe["cpu"] / WINDOW)


def rows_of(name: str, attacked: Measured, quiet: Measured) -> list[Row]:
    quiet_p99 = percentile(quiet.times, 0.99) * 1000
    p99 = percentile(attacked.times, 0.99) * 1000
    label = f"Hostile: {name}"
    same = "same probes, quiet"
    return [
        Row(
            label,
            "probe p99 ms",
            p99,
            quiet_p99,
            same,
            f"< {P99_FACTOR:g}x quiet",
            p99 < P99_FACTOR * quiet_p99,
        ),
        Row(label, "probe max ms", max(attacked.times) * 1000, max(quiet.times) * 1000, same),
        Row(
            label,
            "hub peak RSS growth MiB",
            attacked.growth,
            quiet.growth,
            same,
            f"< {RSS_BOUND_MIB:g} MiB",
            attacked.growth < RSS_BOUND_MIB,
        ),
        Row(label, "hub CPU busy (cores)", attacked.hub, quiet.hub, same),
        # Who else used the cores: on another machine the attacker would cost the hub nothing.
        Row(label, "attacker CPU (cores)", attacked.attacker, quiet.attacker, same),
        Row(label, "probes CPU (cores)", attacked.probes, quiet.probes, same),
    ]


def hostile_workload(rounds: int = 2) -> list[Row]:
    """Each attack next to a quiet run, alternating, ``rounds`` times; the least disturbed kept."""
    rows = []
    for name in ATTACKS:
        attacked, quiet = best_of(
            rounds,
            lambda name=name: measure(name),  # type: ignore[misc]
            lambda: measure(None),
            lambda result: -percentile(result.times, 0.99),
        )
        rows += rows_of(name, attacked, quiet)
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        url, seconds = sys.argv[2], float(sys.argv[3])
        print(json.dumps(asyncio.run(probe(url, seconds))))
    elif sys.argv[1:2] == ["--attack"]:
        name, url, seconds = sys.argv[2], sys.argv[3], float(sys.argv[4])
        print(json.dumps(asyncio.run(attack(name, url, seconds))))
    else:
        from bench.report import print_table

        print_table(hostile_workload())


if __name__ == "__main__":
    main()
