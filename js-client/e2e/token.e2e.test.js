// End-to-end: the client's token handling against a real hub with [auth.jwt].
// Tokens are signed here (HS256 with node:crypto), as an identity provider
// would; the client runs in node with the `ws` package as its WebSocket.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { WsHub } from "../wshub.js";
import { freePort, startHub } from "./hub-process.js";

const SECRET = "an HS256 secret of at least thirty-two bytes";

/**
 * @param {string} sub
 * @param {number} ttl seconds
 * @param {string} [secret]
 */
function sign(sub, ttl, secret = SECRET) {
  const part = (/** @type {object} */ value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const input = `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub, exp: Math.floor(Date.now() / 1000) + ttl })}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/**
 * Resolve with the first event for which `predicate` holds.
 * @param {WsHub} client
 * @param {(event: import("../wshub.js").StateEvent) => boolean} predicate
 * @param {number} timeout
 */
function stateWhere(client, predicate, timeout) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching state event within ${timeout} ms`)), timeout);
    const off = client.on("state", (event) => {
      if (!predicate(event)) return;
      clearTimeout(timer);
      off();
      resolve(event);
    });
  });
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

describe("tokens against a real hub", () => {
  /** @type {import("./hub-process.js").HubProcess} */
  let hub;
  /** @type {string} */
  let dir;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "wshub-token-"));
    const config = join(dir, "hub.toml");
    writeFileSync(config, `[auth]\nallow_anonymous = false\n\n[auth.jwt]\nsecret = "${SECRET}"\n`);
    hub = await startHub({ config, port: await freePort() });
  });

  after(async () => {
    await hub?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("closes with 3000 at exp when the client cannot refresh", async () => {
    const client = new WsHub(hub.wsUrl, { token: sign("ada", 2), WebSocket, minReconnectDelay: 60000 });
    try {
      client.connect();
      await stateWhere(client, (e) => e.state === "connected", 5000);
      const closed = await stateWhere(client, (e) => e.state === "disconnected", 8000);
      assert.equal(closed.code, 3000);
      assert.equal(closed.reason, "token expired");
    } finally {
      client.disconnect();
    }
  });

  it("refreshes before exp with getToken and stays connected past the first token's exp", async () => {
    let issued = 0;
    const client = new WsHub(hub.wsUrl, {
      WebSocket,
      getToken: () => {
        issued += 1;
        return sign("bea", 3);
      },
    });
    const closes = [];
    client.on("state", (e) => {
      if (e.state === "disconnected") closes.push(e.code);
    });
    try {
      client.connect();
      await stateWhere(client, (e) => e.state === "connected", 5000);
      await sleep(5000);
      assert.deepEqual(closes, [], hub.log);
      assert.equal(client.state, "connected");
      assert.ok(issued >= 3, `getToken called ${issued} times`);
      // The refreshed session still answers.
      await client.call("presence_stats", { channel: "room" });
    } finally {
      client.disconnect();
    }
  });

  it("gets a new token from getToken after the hub refused the first one", async () => {
    const tokens = [sign("cy", 60, "a wrong secret that is long enough to sign with"), sign("cy", 60)];
    const client = new WsHub(hub.wsUrl, { WebSocket, getToken: () => tokens.shift() ?? "", minReconnectDelay: 50 });
    try {
      client.connect();
      await stateWhere(client, (e) => e.state === "connected", 8000);
      assert.equal(tokens.length, 0);
    } finally {
      client.disconnect();
    }
  });
});
