// Load generators for `python -m bench`, in node so the client side is not the
// bottleneck (a Python subscriber costs 10-20 µs of CPU per delivery, ws 4-7 µs).
//
//   node load.mjs COMMAND 'JSON options'
//
//   subscribe  {url, protocol, connections, channels}   opens and subscribes (to
//              CHANNELS channels each, 1 by default), prints "ready", counts
//              deliveries until stdin closes
//   publish    {url, protocol, seconds, size, publishers, channels, rate}  PUBLISHERS
//              connections (1 by default), one publish in flight each for
//              SECONDS; publisher i publishes on channel i % CHANNELS; with
//              RATE, each at most RATE publications a second
//   rpc        {url, protocol, clients, seconds}  K clients, one call in flight each
//   idle       {url, protocol, connections, deflate}  opens idle connections,
//              prints how long that took, holds them until stdin closes
//
// protocol: jsonrpc | channels | plain, broadcast (the baselines) | mqtt | mqtt5
// (MQTT 5.0; url mqtt://host:port for TCP) | wamp |
// socketio (python-socketio, bench/socketio_server.py, with socket.io-client),
// and api (publish only: POST /api/publish to the hub's server API; url is the
// API's http:// URL, options.key its key).
// The last stdout line is the JSON result. Timestamps travel in the payload as
// CLOCK_MONOTONIC microseconds (process.hrtime), shared by every process here.
// Every command stops by itself: a hard deadline exits with an error.

import { WebSocket } from "ws";
import mqtt from "mqtt";
import autobahn from "autobahn";
import { io } from "socket.io-client";

// Throughput workloads send uncompressed frames (Mosquitto's listener has no
// permessage-deflate; compression is measured by the idle workload). AutobahnJS
// uses the global WebSocket: make it ws, without compression too.
globalThis.WebSocket = class extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { perMessageDeflate: false });
  }
};

const TOPIC = "bench";
// Channel i of a workload with `count` channels ("bench" when there is one).
const topicOf = (i, count) => (count > 1 ? `${TOPIC}-${i % count}` : TOPIC);
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

function fail(message) {
  console.error(`load: ${message}`);
  process.exit(1);
}

// -- measuring -----------------------------------------------------------------

/** Latency samples in ms; beyond the cap every other sample is kept (halving). */
class Samples {
  constructor(cap = 2_000_000) {
    this.values = new Float64Array(cap);
    this.length = 0;
    this.stride = 1;
    this.seen = 0;
  }

  add(ms) {
    if (this.seen++ % this.stride !== 0) return;
    if (this.length === this.values.length) {
      for (let i = 0; i < this.length / 2; i++) this.values[i] = this.values[2 * i];
      this.length = Math.floor(this.length / 2);
      this.stride *= 2;
    }
    this.values[this.length++] = ms;
  }

  percentile(q) {
    if (this.length === 0) return 0;
    const sorted = this.values.slice(0, this.length).sort();
    return sorted[Math.min(this.length - 1, Math.floor(q * this.length))];
  }
}

function cpuSeconds() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** The publish time stamped in a JSON payload: the digits after `"t":`. */
function stampOf(buffer) {
  let i = buffer.indexOf('"t":');
  if (i < 0) return -1;
  let value = 0;
  for (i += 4; i < buffer.length; i++) {
    const digit = buffer[i] - 48;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  return value;
}

function payload(size) {
  const pad = "x".repeat(Math.max(0, size - 30));
  return () => `{"t":${nowUs()},"pad":"${pad}"}`;
}

// -- connecting ------------------------------------------------------------------

/** Run `open(i)` for i < n with at most `concurrency` handshakes in flight. */
async function openMany(n, open, concurrency = 50) {
  const out = new Array(n);
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      out[i] = await open(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return out;
}

function openWs(url, subprotocols, deflate = false) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, subprotocols, {
      perMessageDeflate: deflate,
      handshakeTimeout: 30_000,
      maxPayload: 64 * 1024 * 1024,
    });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** A function returning the next message on `ws` (a Buffer); installed before sending. */
function replies(ws) {
  const waiting = [];
  ws.on("message", (data) => waiting.shift()?.resolve(data));
  ws.on("close", () => {
    for (const { reject } of waiting.splice(0)) reject(new Error("connection closed"));
  });
  return () => new Promise((resolve, reject) => waiting.push({ resolve, reject }));
}

function nextMessage(ws) {
  return new Promise((resolve) => ws.once("message", resolve));
}

/** socket.io-client on the WebSocket transport only, no reconnection, no compression. */
function socketioConnect(url) {
  return new Promise((resolve, reject) => {
    const socket = io(url.replace(/^ws/, "http"), {
      transports: ["websocket"],
      reconnection: false,
      timeout: 30_000,
      perMessageDeflate: false,
    });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

/** The publish time in a payload received as a string. */
function stampOfText(text) {
  const i = text.indexOf('"t":');
  return i < 0 ? -1 : Number.parseInt(text.slice(i + 4), 10);
}

function withPath(url, path) {
  const u = new URL(url);
  u.pathname = path;
  return u.toString();
}

function mqttConnect(url, protocolVersion = 4) {
  return mqtt.connectAsync(url, {
    protocolVersion,
    clean: true,
    keepalive: 0,
    reconnectPeriod: 0,
    connectTimeout: 30_000,
    wsOptions: { perMessageDeflate: false },
  });
}

function wampConnect(url, onClosed = () => {}) {
  let opened = false;
  return new Promise((resolve, reject) => {
    const connection = new autobahn.Connection({
      url,
      realm: "realm1",
      max_retries: 0,
      serializers: [new autobahn.serializer.JSONSerializer()],
    });
    connection.onopen = (session) => {
      opened = true;
      resolve({ connection, session });
    };
    connection.onclose = (reason) => {
      if (opened) onClosed();
      else reject(new Error(`wamp: ${reason}`));
      return true; // never reconnect
    };
    connection.open();
  });
}

// -- one adapter per protocol: how to subscribe, publish and call --------------------

// The server API's key, from the publish command's options (protocol api).
let apiKey = "";

const RPC_REQUEST = (id) => `{"jsonrpc":"2.0","id":${id},"method":"echo","params":[${id}]}`;

const adapters = {
  channels: {
    async subscriber(url, onDelivery, onClosed, channels = 1) {
      const ws = await openWs(url, ["channels.v1"]);
      for (let i = 0; i < channels; i++) {
        const reply = nextMessage(ws);
        const channel = topicOf(i, channels);
        ws.send(`{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"channel":"${channel}"}}`);
        if (!(await reply).includes('"result"')) fail(`subscribe refused: ${await reply}`);
      }
      ws.on("message", (data) => onDelivery(stampOf(data)));
      ws.on("close", onClosed);
    },
    async publisher(url, topic = TOPIC) {
      const ws = await openWs(url, ["channels.v1"]);
      const next = replies(ws);
      let id = 0;
      return async (body) => {
        id += 1;
        const params = `{"channel":"${topic}","data":${body}}`;
        ws.send(`{"jsonrpc":"2.0","id":${id},"method":"publish","params":${params}}`);
        const reply = await next();
        if (!reply.includes('"result"')) fail(`publish refused: ${reply}`);
      };
    },
    open: (url, deflate) => openWs(url, ["channels.v1"], deflate),
  },

  api: {
    // node's fetch keeps the connection alive: one request in flight, reused.
    async publisher(url) {
      const headers = { Authorization: `apikey ${apiKey}`, "Content-Type": "application/json" };
      return async (body) => {
        const response = await fetch(`${url}/api/publish`, {
          method: "POST",
          headers,
          body: `{"channel":"${TOPIC}","data":${body}}`,
        });
        const reply = await response.text();
        if (response.status !== 200) fail(`API publish refused: ${response.status} ${reply}`);
      };
    },
  },

  jsonrpc: {
    async caller(url) {
      const ws = await openWs(url, ["jsonrpc.2.0"]);
      const next = replies(ws);
      let id = 0;
      return async () => {
        ws.send(RPC_REQUEST(++id));
        const reply = await next();
        if (!reply.includes('"result"')) fail(`call failed: ${reply}`);
      };
    },
  },

  // Baselines: bench/servers.py on the same websockets library.
  broadcast: {
    async subscriber(url, onDelivery, onClosed) {
      const ws = await openWs(withPath(url, "/sub"));
      ws.on("message", (data) => onDelivery(stampOf(data)));
      ws.on("close", onClosed);
    },
    async publisher(url) {
      const ws = await openWs(withPath(url, "/pub"));
      const next = replies(ws);
      return async (body) => {
        ws.send(body);
        await next(); // "ack" once broadcast() returned
      };
    },
  },
  // No subprotocol: the echo baseline answers calls, the idle one holds connections.
  plain: {
    async caller(url) {
      const ws = await openWs(url);
      const next = replies(ws);
      let id = 0;
      return async () => {
        ws.send(RPC_REQUEST(++id));
        await next();
      };
    },
    open: (url, deflate) => openWs(url, undefined, deflate),
  },

  // MQTT 3.1.1 over WebSocket with MQTT.js; the publisher uses QoS 1 so it has
  // an acknowledgement to wait for, deliveries are QoS 0 (subscribed at 0).
  mqtt: {
    async subscriber(url, onDelivery, onClosed) {
      const client = await mqttConnect(url);
      await client.subscribeAsync(TOPIC, { qos: 0 });
      client.on("message", (topic, data) => onDelivery(stampOf(data)));
      client.on("close", onClosed);
    },
    async publisher(url) {
      const client = await mqttConnect(url);
      return (body) => client.publishAsync(TOPIC, body, { qos: 1 });
    },
  },

  // The same with MQTT 5.0 (over TCP when the url is mqtt://): no properties.
  mqtt5: {
    async subscriber(url, onDelivery, onClosed) {
      const client = await mqttConnect(url, 5);
      await client.subscribeAsync(TOPIC, { qos: 0 });
      client.on("message", (topic, data) => onDelivery(stampOf(data)));
      client.on("close", onClosed);
    },
    async publisher(url) {
      const client = await mqttConnect(url, 5);
      return (body) => client.publishAsync(TOPIC, body, { qos: 1 });
    },
  },

  // Socket.IO 5 (Engine.IO 4) against python-socketio: an acknowledged emit is
  // a call; a room gets the publications; payloads travel as strings.
  socketio: {
    async subscriber(url, onDelivery, onClosed) {
      const socket = await socketioConnect(url);
      await socket.timeout(30_000).emitWithAck("sub");
      socket.on("m", (data) => onDelivery(stampOfText(data)));
      socket.on("disconnect", onClosed);
    },
    async publisher(url) {
      const socket = await socketioConnect(url);
      return (body) => socket.timeout(30_000).emitWithAck("pub", body);
    },
    async caller(url) {
      const socket = await socketioConnect(url);
      let id = 0;
      return async () => {
        const value = ++id;
        if ((await socket.timeout(30_000).emitWithAck("echo", value)) !== value) fail("bad echo");
      };
    },
    open: (url) => socketioConnect(url),
  },

  // WAMP v2 JSON with AutobahnJS: the payload travels as args [stamp, pad].
  wamp: {
    async subscriber(url, onDelivery, onClosed) {
      const { session } = await wampConnect(url, onClosed);
      await session.subscribe(TOPIC, (args) => onDelivery(args[0]));
    },
    async publisher(url) {
      const { session } = await wampConnect(url);
      return (body) => {
        const { t, pad } = JSON.parse(body);
        return session.publish(TOPIC, [t, pad], {}, { acknowledge: true });
      };
    },
    async callee(url) {
      const { session } = await wampConnect(url);
      await session.register("bench.echo", (args) => args[0]);
      return session;
    },
    async caller(url) {
      const { session } = await wampConnect(url);
      let id = 0;
      return () => session.call("bench.echo", [++id]);
    },
  },
};

function adapter(protocol, role) {
  const found = adapters[protocol]?.[role];
  if (!found) fail(`protocol ${protocol} has no ${role}`);
  return found;
}

function stdinClosed() {
  return new Promise((resolve) => {
    process.stdin.on("data", () => {});
    process.stdin.on("end", resolve);
    process.stdin.on("close", resolve);
  });
}

// -- commands ----------------------------------------------------------------------

async function subscribe({ url, protocol, connections, channels = 1 }) {
  const open = adapter(protocol, "subscriber");
  const latency = new Samples();
  let received = 0;
  let first = 0;
  let last = 0;
  let closed = 0;
  const onDelivery = (stamp) => {
    const now = nowUs();
    if (received++ === 0) first = now;
    last = now;
    if (stamp > 0) latency.add((now - stamp) / 1000);
  };
  await openMany(connections, () => open(url, onDelivery, () => (closed += 1), channels));
  console.log("ready");
  const cpuBefore = cpuSeconds();
  await stdinClosed();
  return {
    received,
    first_us: first,
    last_us: last,
    closed_early: closed,
    p50_ms: latency.percentile(0.5),
    p99_ms: latency.percentile(0.99),
    cpu_s: cpuSeconds() - cpuBefore,
  };
}

async function publish({ url, protocol, seconds, size, key, publishers = 1, channels = 1, rate = 0 }) {
  apiKey = key ?? "";
  const open = adapter(protocol, "publisher");
  const senders = [];
  for (let i = 0; i < publishers; i++) senders.push(await open(url, topicOf(i, channels)));
  const body = payload(size);
  let published = 0;
  const started = nowUs();
  const deadline = started + seconds * 1e6;
  // rate > 0: each publisher at most RATE publications a second, a fixed offered
  // load (latency compared at equal throughput); 0: as fast as replies come.
  const interval = rate > 0 ? 1e6 / rate : 0;
  await Promise.all(
    senders.map(async (send) => {
      let due = nowUs();
      while (nowUs() < deadline) {
        await send(body());
        published += 1;
        if (interval > 0) {
          due += interval;
          const ahead = due - nowUs();
          if (ahead > 0) await new Promise((resolve) => setTimeout(resolve, ahead / 1000));
        }
      }
    }),
  );
  const ended = nowUs();
  return { published, start_us: started, end_us: ended, seconds: (ended - started) / 1e6 };
}

async function rpc({ url, protocol, clients, seconds }) {
  if (protocol === "wamp") await adapter("wamp", "callee")(url);
  const open = adapter(protocol, "caller");
  const callers = await openMany(clients, () => open(url));
  const latency = new Samples();
  let calls = 0;
  const cpuBefore = cpuSeconds();
  const started = nowUs();
  const deadline = started + seconds * 1e6;
  await Promise.all(
    callers.map(async (call) => {
      while (nowUs() < deadline) {
        const before = nowUs();
        await call();
        latency.add((nowUs() - before) / 1000);
        calls += 1;
      }
    }),
  );
  const elapsed = (nowUs() - started) / 1e6;
  return {
    calls,
    seconds: elapsed,
    rate: calls / elapsed,
    p50_ms: latency.percentile(0.5),
    p99_ms: latency.percentile(0.99),
    cpu_s: cpuSeconds() - cpuBefore,
  };
}

async function idle({ url, protocol, connections, deflate }) {
  const open = adapter(protocol, "open");
  const started = nowUs();
  const sockets = await openMany(connections, () => open(url, deflate));
  const elapsed = (nowUs() - started) / 1e6;
  console.log(JSON.stringify({ opened: sockets.length, seconds: elapsed }));
  await stdinClosed();
  for (const ws of sockets) (ws.terminate ?? ws.disconnect).call(ws);
  return { opened: sockets.length, seconds: elapsed };
}

const commands = { subscribe, publish, rpc, idle };
const [command, options] = process.argv.slice(2);
if (!commands[command]) fail(`unknown command ${command}`);
const parsed = JSON.parse(options ?? "{}");
// Nothing here runs unbounded: past this deadline the process gives up.
setTimeout(() => fail("deadline passed"), (parsed.deadline ?? 600) * 1000).unref();
const result = await commands[command](parsed);
console.log(JSON.stringify(result));
process.exit(0);
