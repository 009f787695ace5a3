import assert from "node:assert/strict";
import { test } from "node:test";

import { WsHubError } from "../wshub.js";
import { connected, flush, setup } from "./fake-websocket.js";

test("call sends a JSON-RPC request with named params and resolves with the result", async () => {
  const { hub, ws } = await connected();
  const answer = hub.call("math.add", { a: 1, b: 2 });
  const request = ws.request("math.add");
  assert.deepEqual(request, { jsonrpc: "2.0", id: request.id, method: "math.add", params: { a: 1, b: 2 } });
  ws.reply("math.add", 3);
  assert.equal(await answer, 3);
  hub.disconnect();
});

test("call sends positional params as an array and omits params when none are given", async () => {
  const { hub, ws } = await connected();
  const sum = hub.call("math.add", [1, 2]);
  const now = hub.call("clock.now");
  assert.deepEqual(ws.request("math.add").params, [1, 2]);
  assert.equal("params" in ws.request("clock.now"), false);
  ws.reply("clock.now", 42);
  ws.reply("math.add", 3);
  assert.deepEqual(await Promise.all([sum, now]), [3, 42]);
  hub.disconnect();
});

test("concurrent calls get distinct ids and each resolves with its own response", async () => {
  const { hub, ws } = await connected();
  const first = hub.call("echo", ["a"]);
  const second = hub.call("echo", ["b"]);
  const [a, b] = ws.requests("echo");
  assert.notEqual(a.id, b.id);
  ws.receive({ jsonrpc: "2.0", id: b.id, result: "B" });
  ws.receive({ jsonrpc: "2.0", id: a.id, result: "A" });
  assert.deepEqual(await Promise.all([first, second]), ["A", "B"]);
  hub.disconnect();
});

test("a batch of responses from the hub settles every call in it", async () => {
  const { hub, ws } = await connected();
  const first = hub.call("echo", ["a"]);
  const second = hub.call("echo", ["b"]);
  const [a, b] = ws.requests("echo");
  ws.receive([
    { jsonrpc: "2.0", id: a.id, result: "A" },
    { jsonrpc: "2.0", id: b.id, error: { code: -32602, message: "Invalid params" } },
  ]);
  assert.equal(await first, "A");
  await assert.rejects(second, { code: -32602 });
  hub.disconnect();
});

test("call rejects with a WsHubError carrying code, message and data of a JSON-RPC error", async () => {
  const { hub, ws } = await connected();
  const answer = hub.call("math.div", { a: 1, b: 0 });
  ws.replyError("math.div", { code: -32602, message: "Invalid params", data: { field: "b" } });
  const err = await answer.catch((e) => e);
  assert.ok(err instanceof WsHubError);
  assert.ok(err instanceof Error);
  assert.equal(err.code, -32602);
  assert.equal(err.message, "Invalid params");
  assert.deepEqual(err.data, { field: "b" });
  hub.disconnect();
});

test("call rejects with code timeout after callTimeout and ignores a late response", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws } = await connected({ callTimeout: 1000 });
  const answer = hub.call("slow");
  t.mock.timers.tick(999);
  let settled = false;
  answer.then(
    () => (settled = true),
    () => (settled = true),
  );
  await flush();
  assert.equal(settled, false);
  t.mock.timers.tick(1);
  await assert.rejects(answer, { name: "WsHubError", code: "timeout" });
  ws.reply("slow", "too late"); // must not throw or resolve anything
  assert.equal(hub.state, "connected");
  hub.disconnect();
});

test("the timeout option of call overrides callTimeout", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub } = await connected({ callTimeout: 10000 });
  const answer = hub.call("slow", undefined, { timeout: 50 });
  t.mock.timers.tick(50);
  await assert.rejects(answer, { code: "timeout" });
  hub.disconnect();
});

test("calls in flight reject with code disconnected when the connection drops", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws } = await connected();
  const answer = hub.call("math.add", [1, 2]);
  ws.drop(1006);
  const err = await answer.catch((e) => e);
  assert.equal(err.code, "disconnected");
  assert.deepEqual(err.data, { code: 1006, reason: "" });
  hub.disconnect();
});

test("the first call connects implicitly and is sent once the socket opens", async () => {
  const { hub, FakeWebSocket } = await setup();
  const answer = hub.call("math.add", [1, 2]);
  assert.equal(hub.state, "connecting");
  const ws = FakeWebSocket.last;
  assert.deepEqual(ws.sent, []);
  ws.open();
  ws.reply("math.add", 3);
  assert.equal(await answer, 3);
  hub.disconnect();
});

test("a call made while waiting to reconnect is sent on the next connection", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected({ random: () => 1, minReconnectDelay: 100 });
  ws.drop();
  const answer = hub.call("echo", ["x"]);
  assert.deepEqual(ws.requests("echo"), []);
  t.mock.timers.tick(100);
  FakeWebSocket.last.open();
  FakeWebSocket.last.reply("echo", "x");
  assert.equal(await answer, "x");
  hub.disconnect();
});

test("disconnect() rejects sent and queued calls with code closed; later calls reject until connect()", async () => {
  const { hub, FakeWebSocket } = await setup();
  hub.connect();
  const queued = hub.call("queued");
  FakeWebSocket.last.open();
  const sent = hub.call("sent");
  hub.disconnect();
  await assert.rejects(queued, { code: "closed" });
  await assert.rejects(sent, { code: "closed" });
  await assert.rejects(hub.call("after"), { code: "closed" });
  assert.equal(FakeWebSocket.instances.length, 1, "a call after disconnect() does not reconnect");
});

test("params that cannot be encoded as JSON reject the call without sending anything", async () => {
  const { hub, ws } = await connected();
  const cyclic = {};
  cyclic.self = cyclic;
  await assert.rejects(hub.call("x", cyclic), { code: -32602 });
  assert.deepEqual(ws.sent, []);
  hub.disconnect();
});

test("a registered method answers the hub's request with its (async) result", async () => {
  const { hub, ws } = await connected();
  hub.register("client.sum", async (params) => params.reduce((a, b) => a + b, 0));
  hub.register("client.ping", () => undefined);
  ws.receive({ jsonrpc: "2.0", id: "s1", method: "client.sum", params: [1, 2, 3] });
  ws.receive({ jsonrpc: "2.0", id: 7, method: "client.ping" });
  await flush();
  const byId = (a, b) => String(a.id).localeCompare(String(b.id));
  assert.deepEqual(ws.sent.sort(byId), [
    { jsonrpc: "2.0", id: 7, result: null },
    { jsonrpc: "2.0", id: "s1", result: 6 },
  ]);
  hub.disconnect();
});

test("a request for a method the client does not expose is answered with -32601", async () => {
  const { hub, ws } = await connected();
  ws.receive({ jsonrpc: "2.0", id: 9, method: "client.unknown", params: {} });
  await flush();
  assert.equal(ws.sent.length, 1);
  assert.equal(ws.sent[0].id, 9);
  assert.equal(ws.sent[0].error.code, -32601);
  hub.disconnect();
});

test("a method that throws answers with its WsHubError code, or -32603 for other errors", async () => {
  const { hub, ws } = await connected();
  hub.register("client.refuse", () => {
    throw new WsHubError("not now", -32011, { retry: 5 });
  });
  hub.register("client.crash", async () => {
    throw new TypeError("boom");
  });
  ws.receive({ jsonrpc: "2.0", id: 1, method: "client.refuse" });
  ws.receive({ jsonrpc: "2.0", id: 2, method: "client.crash" });
  await flush();
  assert.deepEqual(ws.sent.sort((a, b) => a.id - b.id), [
    { jsonrpc: "2.0", id: 1, error: { code: -32011, message: "not now", data: { retry: 5 } } },
    { jsonrpc: "2.0", id: 2, error: { code: -32603, message: "boom" } },
  ]);
  hub.disconnect();
});

test("register() refuses a duplicate and its return value unregisters the method", async () => {
  const { hub, ws } = await connected();
  const unregister = hub.register("client.m", () => 1);
  assert.throws(() => hub.register("client.m", () => 2), /already registered/);
  unregister();
  ws.receive({ jsonrpc: "2.0", id: 1, method: "client.m" });
  await flush();
  assert.equal(ws.sent[0].error.code, -32601);
  hub.disconnect();
});

test("the answer to a hub request is dropped when its connection is gone", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected({ random: () => 0 });
  let finish;
  hub.register("client.slow", () => new Promise((resolve) => (finish = resolve)));
  ws.receive({ jsonrpc: "2.0", id: 1, method: "client.slow" });
  await flush();
  ws.drop();
  t.mock.timers.tick(0);
  FakeWebSocket.last.open();
  finish("late");
  await flush();
  assert.deepEqual(ws.sent, []);
  assert.deepEqual(FakeWebSocket.last.sent, []);
  hub.disconnect();
});

test("other server notifications are emitted as notification events", async () => {
  const { hub, ws } = await connected();
  const seen = [];
  hub.on("notification", (n) => seen.push(n));
  ws.notify("server.shutdown", { in: 30 });
  ws.receive({ jsonrpc: "2.0", method: "tick" });
  assert.deepEqual(seen, [
    { method: "server.shutdown", params: { in: 30 } },
    { method: "tick", params: undefined },
  ]);
  hub.disconnect();
});
