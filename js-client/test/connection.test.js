import assert from "node:assert/strict";
import { test } from "node:test";

import { WsHub } from "../wshub.js";
import { connected, fakeWebSocketClass, flush, setup } from "./fake-websocket.js";

/** Record the hub's state events as "previous>state" strings. */
function recordStates(hub) {
  const seen = [];
  hub.on("state", ({ state, previous }) => seen.push(`${previous}>${state}`));
  return seen;
}

test("the token is sent as a query parameter and channels.v1 is offered by default", async () => {
  const { hub, FakeWebSocket } = await setup({ token: "s3cr:t&x" });
  hub.connect();
  const url = new URL(FakeWebSocket.last.url);
  assert.equal(url.searchParams.get("token"), "s3cr:t&x");
  assert.equal(url.origin + url.pathname, "ws://127.0.0.1:8765/");
  assert.equal(FakeWebSocket.last.protocols, "channels.v1");
});

test("the URL keeps its own query parameters and the protocol option is offered", () => {
  const FakeWebSocket = fakeWebSocketClass();
  const hub = new WsHub("wss://hub.example/ws?room=1", { token: "t", protocol: ["channels.v1", "jsonrpc.2.0"], WebSocket: FakeWebSocket });
  hub.connect();
  assert.equal(FakeWebSocket.last.url, "wss://hub.example/ws?room=1&token=t");
  assert.deepEqual(FakeWebSocket.last.protocols, ["channels.v1", "jsonrpc.2.0"]);
});

test("http(s) URLs are turned into ws(s) URLs and no token means no token parameter", () => {
  const FakeWebSocket = fakeWebSocketClass();
  new WsHub("https://hub.example/ws", { WebSocket: FakeWebSocket }).connect();
  assert.equal(FakeWebSocket.last.url, "wss://hub.example/ws");
});

test("connect() without any WebSocket implementation throws a clear error", () => {
  const hub = new WsHub("ws://127.0.0.1:8765/", { WebSocket: undefined });
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = undefined;
  try {
    assert.throws(() => hub.connect(), /no WebSocket implementation/);
  } finally {
    globalThis.WebSocket = saved;
  }
});

test("state events go disconnected > connecting > connected, and disconnect() ends in closed", async () => {
  const { hub, FakeWebSocket } = await setup();
  const seen = recordStates(hub);
  assert.equal(hub.state, "disconnected");
  hub.connect();
  hub.connect(); // a no-op while connecting
  assert.equal(FakeWebSocket.instances.length, 1);
  FakeWebSocket.last.open();
  assert.equal(hub.state, "connected");
  hub.disconnect();
  assert.deepEqual(seen, ["disconnected>connecting", "connecting>connected", "connected>closed"]);
  assert.deepEqual(FakeWebSocket.last.closeCalls, [{ code: 1000, reason: "client disconnected" }]);
});

test("an unexpected close reports the close code and reason in the state event", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws } = await connected();
  const events = [];
  hub.on("state", (event) => events.push(event));
  ws.drop(1011, "server restart");
  assert.deepEqual(events, [{ state: "disconnected", previous: "connected", code: 1011, reason: "server restart" }]);
  hub.disconnect();
});

test("reconnect waits a jittered exponential delay that grows per failed attempt", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected({ random: () => 0.5, minReconnectDelay: 500, maxReconnectDelay: 3000 });
  const seen = recordStates(hub);
  ws.drop();
  // attempt 0: 0.5 * 500 = 250 ms
  t.mock.timers.tick(249);
  assert.equal(FakeWebSocket.instances.length, 1);
  t.mock.timers.tick(1);
  assert.equal(FakeWebSocket.instances.length, 2);
  // The attempt fails before opening: attempt 1 waits 0.5 * 1000 ms.
  FakeWebSocket.last.drop();
  t.mock.timers.tick(499);
  assert.equal(FakeWebSocket.instances.length, 2);
  t.mock.timers.tick(1);
  assert.equal(FakeWebSocket.instances.length, 3);
  // attempt 2: 0.5 * 2000; attempt 3: 0.5 * min(3000, 4000) (the cap)
  FakeWebSocket.last.drop();
  t.mock.timers.tick(1000);
  assert.equal(FakeWebSocket.instances.length, 4);
  FakeWebSocket.last.drop();
  t.mock.timers.tick(1499);
  assert.equal(FakeWebSocket.instances.length, 4);
  t.mock.timers.tick(1);
  assert.equal(FakeWebSocket.instances.length, 5);
  FakeWebSocket.last.open();
  assert.deepEqual(seen, [
    "connected>disconnected",
    "disconnected>connecting",
    "connecting>disconnected",
    "disconnected>connecting",
    "connecting>disconnected",
    "disconnected>connecting",
    "connecting>disconnected",
    "disconnected>connecting",
    "connecting>connected",
  ]);
  hub.disconnect();
});

test("reconnect delays with real jitter stay within the full-jitter bounds", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected({ random: Math.random, minReconnectDelay: 100, maxReconnectDelay: 1000 });
  ws.drop();
  for (let attempt = 0; attempt < 6; attempt++) {
    const cap = Math.min(1000, 100 * 2 ** attempt);
    const before = FakeWebSocket.instances.length;
    t.mock.timers.tick(cap);
    assert.equal(FakeWebSocket.instances.length, before + 1, `attempt ${attempt} reconnected within ${cap} ms`);
    FakeWebSocket.last.drop();
  }
  hub.disconnect();
});

test("the backoff attempt counter resets after a successful connect", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected({ random: () => 1, minReconnectDelay: 100 });
  ws.drop();
  t.mock.timers.tick(100); // attempt 0
  FakeWebSocket.last.drop();
  t.mock.timers.tick(200); // attempt 1
  FakeWebSocket.last.open();
  FakeWebSocket.last.drop();
  t.mock.timers.tick(99);
  assert.equal(FakeWebSocket.instances.length, 3, "not reconnected before the attempt-0 delay");
  t.mock.timers.tick(1);
  assert.equal(FakeWebSocket.instances.length, 4, "reconnected after the attempt-0 delay again");
  hub.disconnect();
});

test("disconnect() while waiting to reconnect cancels the reconnect", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected();
  ws.drop();
  hub.disconnect();
  t.mock.timers.tick(60000);
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.equal(hub.state, "closed");
});

test("connect() after disconnect() opens a new connection", async () => {
  const { hub, ws, FakeWebSocket } = await connected();
  hub.disconnect();
  hub.connect();
  assert.equal(hub.state, "connecting");
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.notEqual(FakeWebSocket.last, ws);
  FakeWebSocket.last.open();
  assert.equal(hub.state, "connected");
  hub.disconnect();
});

test("a close event from a socket the client already let go of is ignored", async () => {
  const { hub, FakeWebSocket } = await connected();
  const seen = recordStates(hub);
  hub.disconnect(); // the fake fires onclose after a microtask, like a browser
  await flush();
  assert.deepEqual(seen, ["connected>closed"]);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test("a frame that is not JSON is reported as an error event and the connection stays up", async () => {
  const { hub, ws } = await connected();
  const errors = [];
  hub.on("error", (err) => errors.push(err));
  ws.receive("{not json");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, -32700);
  assert.equal(hub.state, "connected");
  hub.disconnect();
});

test("a listener that throws does not stop the other listeners; its error is rethrown asynchronously", async () => {
  const { hub, FakeWebSocket } = await setup();
  const seen = [];
  const deferred = [];
  const stop = hub.on("state", () => {
    throw new Error("listener bug");
  });
  hub.on("state", ({ state }) => seen.push(state));
  const saved = globalThis.queueMicrotask;
  globalThis.queueMicrotask = (fn) => deferred.push(fn);
  try {
    hub.connect();
    FakeWebSocket.last.open();
  } finally {
    globalThis.queueMicrotask = saved;
  }
  assert.deepEqual(seen, ["connecting", "connected"]);
  assert.equal(deferred.length, 2);
  assert.throws(deferred[0], /listener bug/);
  stop();
  hub.disconnect();
});

test("off() and the function returned by on() remove a listener", async () => {
  const { hub } = await setup();
  const seen = [];
  const listener = ({ state }) => seen.push(`a:${state}`);
  const stop = hub.on("state", ({ state }) => seen.push(`b:${state}`));
  hub.on("state", listener);
  hub.off("state", listener);
  stop();
  hub.disconnect();
  assert.deepEqual(seen, []);
});
