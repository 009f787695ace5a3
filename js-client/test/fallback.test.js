// The HTTP fallback transport: a fake EventSource and fetch play the hub's
// fallback listener (docs/fallback.md), a fake WebSocket the blocked network.

import assert from "node:assert/strict";
import { test } from "node:test";

import { WsHub } from "../wshub.js";
import { fakeWebSocketClass, flush } from "./fake-websocket.js";

/** A fake EventSource class recording its instances; the test plays the hub's stream. */
function fakeEventSourceClass() {
  class FakeEventSource {
    static instances = [];
    static get last() {
      return FakeEventSource.instances.at(-1);
    }
    constructor(url, init) {
      this.url = url;
      this.init = init;
      this.closed = false;
      this.listeners = new Map();
      this.onmessage = this.onerror = null;
      FakeEventSource.instances.push(this);
    }
    addEventListener(type, listener) {
      this.listeners.set(type, listener);
    }
    close() {
      this.closed = true;
    }
    // ---- the hub's side
    session(token = "node.sid.secret", idle = 60) {
      this.listeners.get("session")?.({ data: JSON.stringify({ session: token, idle_timeout: idle }) });
    }
    message(value) {
      this.onmessage?.({ data: JSON.stringify(value) });
    }
    closeEvent(code, reason) {
      this.listeners.get("close")?.({ data: JSON.stringify({ code, reason }) });
    }
    fail() {
      this.onerror?.({ type: "error" });
    }
  }
  return FakeEventSource;
}

/** A fake fetch: records POSTs; each waits for the test to answer it. */
function fakeFetch() {
  const posts = [];
  const fetch = (url, init) =>
    new Promise((resolve) => {
      posts.push({ url: new URL(url), body: init.body, resolve: (status = 202) => resolve({ ok: status < 300, status }) });
    });
  return { fetch, posts };
}

function client(options = {}) {
  const FakeWebSocket = fakeWebSocketClass();
  const FakeEventSource = fakeEventSourceClass();
  const { fetch, posts } = fakeFetch();
  const hub = new WsHub("ws://127.0.0.1:8765/", {
    WebSocket: FakeWebSocket,
    EventSource: FakeEventSource,
    fetch,
    fallbackUrl: "http://127.0.0.1:8767/",
    random: () => 0.5,
    minReconnectDelay: 1,
    maxReconnectDelay: 1,
    ...options,
  });
  const states = [];
  hub.on("state", ({ state }) => states.push(state));
  return { hub, FakeWebSocket, FakeEventSource, posts, states };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("a WebSocket that fails to open is followed at once by the SSE fallback", async () => {
  const { hub, FakeWebSocket, FakeEventSource, posts, states } = client({ token: "jwt" });
  hub.subscribe("news");
  FakeWebSocket.last.drop(1006);
  const source = FakeEventSource.last;
  assert.ok(source, "no EventSource was opened");
  const url = new URL(source.url);
  assert.equal(url.origin + url.pathname, "http://127.0.0.1:8767/session");
  assert.equal(url.searchParams.get("token"), "jwt");
  assert.deepEqual(source.init, { withCredentials: true });
  assert.equal(hub.transport, "sse");
  assert.ok(!states.includes("disconnected"), `states: ${states}`);
  source.session("n.s.x");
  assert.equal(hub.state, "connected");
  // The subscribe goes up in a POST naming the session.
  assert.equal(posts.length, 1);
  assert.equal(posts[0].url.pathname, "/session/send");
  assert.equal(posts[0].url.searchParams.get("session"), "n.s.x");
  const request = JSON.parse(posts[0].body);
  assert.equal(request.method, "subscribe");
  posts[0].resolve();
  // Its answer comes down the stream.
  source.message({ jsonrpc: "2.0", id: request.id, result: { channel: "news", offset: 0, epoch: "e" } });
  assert.equal(hub.getSubscription("news")?.state, "subscribed");
  hub.disconnect();
});

test("frames sent while a POST is in flight go up together in the next POST, in order", async () => {
  const { hub, FakeWebSocket, FakeEventSource, posts } = client();
  hub.connect();
  FakeWebSocket.last.drop(1006);
  FakeEventSource.last.session();
  const published = [1, 2, 3].map((n) => hub.publish("a", n).catch(() => {}));
  assert.equal(posts.length, 1, "one POST at a time");
  posts[0].resolve();
  await flush();
  assert.equal(posts.length, 2);
  const lines = posts[1].body.split("\n").map((line) => JSON.parse(line).params.data);
  assert.deepEqual(lines, [2, 3]);
  hub.disconnect();
  await Promise.all(published);
});

test("after the fallback session drops, the next reconnect tries WebSocket first", async () => {
  const { hub, FakeWebSocket, FakeEventSource } = client();
  hub.connect();
  FakeWebSocket.last.drop(1006);
  FakeEventSource.last.session();
  assert.equal(hub.transport, "sse");
  FakeEventSource.last.closeEvent(1001, "server shutting down");
  await sleep(20);
  assert.equal(FakeWebSocket.instances.length, 2, "the reconnect did not try WebSocket");
  FakeWebSocket.last.open();
  assert.equal(hub.transport, "websocket");
  assert.equal(hub.state, "connected");
  hub.disconnect();
});

test("a stream error closes the session with 1006 and EventSource does not reconnect by itself", async () => {
  const { hub, FakeWebSocket, FakeEventSource } = client();
  const closes = [];
  hub.on("state", (e) => e.state === "disconnected" && closes.push(e.code));
  hub.connect();
  FakeWebSocket.last.drop(1006);
  const source = FakeEventSource.last;
  source.session();
  source.fail();
  assert.ok(source.closed);
  await sleep(5);
  assert.deepEqual(closes.slice(0, 1), [1006]);
  hub.disconnect();
});

test("a POST refused with 404 (the session ended) drops the connection", async () => {
  const { hub, FakeWebSocket, FakeEventSource, posts } = client();
  const closes = [];
  hub.on("state", (e) => e.state === "disconnected" && closes.push(e.code));
  hub.connect();
  FakeWebSocket.last.drop(1006);
  FakeEventSource.last.session();
  const call = hub.call("x").catch((err) => err);
  posts[0].resolve(404);
  await sleep(5);
  assert.deepEqual(closes, [1006]);
  assert.equal((await call).code, "disconnected");
  hub.disconnect();
});

test("transports: ['sse'] never opens a WebSocket; without fallbackUrl SSE is not tried", async () => {
  const only = client({ transports: ["sse"] });
  only.hub.connect();
  assert.equal(only.FakeWebSocket.instances.length, 0);
  assert.equal(only.FakeEventSource.instances.length, 1);
  only.hub.disconnect();
  const none = client({ fallbackUrl: undefined });
  none.hub.connect();
  none.FakeWebSocket.last.drop(1006);
  assert.equal(none.FakeEventSource.instances.length, 0);
  assert.equal(none.hub.state, "disconnected");
  none.hub.disconnect();
});

test("disconnect() tells the hub with POST /session/close", async () => {
  const { hub, FakeWebSocket, FakeEventSource, posts } = client();
  hub.connect();
  FakeWebSocket.last.drop(1006);
  FakeEventSource.last.session("n.s.x");
  hub.disconnect();
  assert.equal(posts.at(-1)?.url.pathname, "/session/close");
  assert.equal(posts.at(-1)?.url.searchParams.get("session"), "n.s.x");
  assert.ok(FakeEventSource.last.closed);
});
