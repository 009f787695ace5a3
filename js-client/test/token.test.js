import assert from "node:assert/strict";
import { test } from "node:test";

import { tokenExpiry } from "../wshub.js";
import { connected, flush, setup } from "./fake-websocket.js";

/** An unsigned JWT-shaped token expiring at `exp` (seconds): the client only reads it. */
function jwtExpiring(exp, sub = "ada") {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub, exp })}.c2lnbmF0dXJl`;
}

/** A getToken that hands out the given tokens in turn and counts its calls. */
function tokenSource(...tokens) {
  const source = async () => {
    source.calls += 1;
    const token = tokens.shift();
    if (token instanceof Error) throw token;
    return token;
  };
  source.calls = 0;
  return source;
}

function tokenOf(ws, name = "token") {
  return new URL(ws.url).searchParams.get(name);
}

test("tokenExpiry reads exp in milliseconds, and nothing from junk", () => {
  assert.equal(tokenExpiry(jwtExpiring(1700000000)), 1700000000000);
  assert.equal(tokenExpiry("not-a-jwt"), undefined);
  assert.equal(tokenExpiry("a.%%%.c"), undefined);
  assert.equal(tokenExpiry(`x.${Buffer.from('{"sub":"a"}').toString("base64url")}.y`), undefined);
});

test("tokenParam names the query parameter the token rides in", async () => {
  const { hub, FakeWebSocket } = await setup({ token: "t1", tokenParam: "access_token" });
  hub.connect();
  assert.equal(tokenOf(FakeWebSocket.last, "access_token"), "t1");
  assert.equal(tokenOf(FakeWebSocket.last), null);
  hub.disconnect();
});

test("without a token, getToken is awaited before the socket opens", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  const first = jwtExpiring(3600);
  const getToken = tokenSource(first);
  const { hub, FakeWebSocket } = await setup({ getToken });
  hub.connect();
  assert.equal(hub.state, "connecting");
  assert.equal(FakeWebSocket.instances.length, 0);
  hub.connect(); // a no-op while the token is fetched
  await flush();
  assert.equal(getToken.calls, 1);
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.equal(tokenOf(FakeWebSocket.last), first);
  hub.disconnect();
});

test("disconnect() while getToken runs opens no socket", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  const { hub, FakeWebSocket } = await setup({ getToken: tokenSource(jwtExpiring(3600)) });
  hub.connect();
  hub.disconnect();
  await flush();
  assert.equal(FakeWebSocket.instances.length, 0);
  assert.equal(hub.state, "closed");
});

test("a failing getToken is reported with code token and retried with backoff", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  const getToken = tokenSource(new Error("login service down"), jwtExpiring(3600));
  const { hub, FakeWebSocket } = await setup({ getToken, minReconnectDelay: 500 });
  const errors = [];
  hub.on("error", (error) => errors.push(error));
  hub.connect();
  await flush();
  assert.equal(hub.state, "disconnected");
  assert.deepEqual(
    errors.map((e) => [e.code, e.message]),
    [["token", "getToken failed: login service down"]],
  );
  t.mock.timers.tick(250); // attempt 0: 0.5 * 500 ms
  await flush();
  assert.equal(getToken.calls, 2);
  assert.equal(FakeWebSocket.instances.length, 1);
  hub.disconnect();
});

test("the token is refreshed with rpc.refresh before it expires", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  const second = jwtExpiring(120);
  const getToken = tokenSource(second);
  const { hub, ws } = await connected({ token: jwtExpiring(60), getToken, tokenRefreshMargin: 10000 });
  t.mock.timers.tick(49999);
  await flush();
  assert.equal(getToken.calls, 0);
  t.mock.timers.tick(1); // 10 s before exp
  await flush();
  assert.equal(getToken.calls, 1);
  assert.deepEqual(ws.request("rpc.refresh").params, { token: second });
  ws.reply("rpc.refresh", { user: "ada", expires_at: 120 });
  await flush();
  assert.equal(new URL(hub.url).searchParams.get("token"), second);
  // The next refresh follows the new token's exp.
  t.mock.timers.tick(59999);
  await flush();
  assert.equal(getToken.calls, 1);
  t.mock.timers.tick(1);
  await flush();
  assert.equal(getToken.calls, 2);
  hub.disconnect();
});

test("short tokens refresh at half their remaining lifetime, not in a loop", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  const getToken = tokenSource(jwtExpiring(8));
  const { hub, ws } = await connected({ token: jwtExpiring(4), getToken });
  t.mock.timers.tick(1999);
  await flush();
  assert.equal(ws.requests("rpc.refresh").length, 0);
  t.mock.timers.tick(1);
  await flush();
  assert.equal(ws.requests("rpc.refresh").length, 1);
  hub.disconnect();
});

test("a refused refresh is reported and tried again while the token lasts", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  const getToken = tokenSource(jwtExpiring(60, "bob"), jwtExpiring(60));
  const { hub, ws } = await connected({ token: jwtExpiring(20), getToken, tokenRefreshMargin: 10000 });
  const errors = [];
  hub.on("error", (error) => errors.push(error));
  t.mock.timers.tick(10000);
  await flush();
  ws.replyError("rpc.refresh", { code: -32020, message: "Unauthorized", data: "the token names another user" });
  await flush();
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "token");
  assert.match(errors[0].message, /Unauthorized/);
  t.mock.timers.tick(5000); // half the 10 s left
  await flush();
  assert.equal(getToken.calls, 2);
  assert.equal(ws.requests("rpc.refresh").length, 2);
  hub.disconnect();
});

test("a session closed with 3000 reconnects with a token from getToken", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  const fresh = jwtExpiring(3600);
  const getToken = tokenSource(fresh);
  const { hub, ws, FakeWebSocket } = await connected({ token: jwtExpiring(3000), getToken });
  ws.drop(3000, "token expired");
  t.mock.timers.tick(250);
  await flush();
  assert.equal(getToken.calls, 1);
  assert.equal(tokenOf(FakeWebSocket.last), fresh);
  hub.disconnect();
});

test("a socket refused before it opened asks getToken again; a dropped one does not", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  const kept = jwtExpiring(3600);
  const getToken = tokenSource(jwtExpiring(7200));
  const { hub, FakeWebSocket } = await setup({ token: kept, getToken });
  hub.connect();
  FakeWebSocket.last.open();
  FakeWebSocket.last.drop(1006);
  t.mock.timers.tick(250);
  await flush();
  assert.equal(getToken.calls, 0);
  assert.equal(tokenOf(FakeWebSocket.last), kept);
  FakeWebSocket.last.drop(1006); // the handshake failed (a 401 looks like this to a browser)
  t.mock.timers.tick(500);
  await flush();
  assert.equal(getToken.calls, 1);
  assert.notEqual(tokenOf(FakeWebSocket.last), kept);
  hub.disconnect();
});
