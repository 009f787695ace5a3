// End-to-end: the browser client without WebSocket. Two Chromium pages whose
// `WebSocket` was removed before any script ran, and a third whose WebSocket
// exists but cannot get through (every socket goes to a closed port), use the
// hub's HTTP fallback (Server-Sent Events down, POST up) by themselves: they
// subscribe with presence, publish, see each other, and after the hub restarts
// (publications made meanwhile on another hub sharing its state file) they
// reconnect and recover exactly what they missed; the third, whose network now
// lets WebSocket through, comes back on WebSocket.

import assert from "node:assert/strict";
import { accessSync, constants, mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { freePort, publishAll, startHub } from "./hub-process.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const ROOM = "fallback/room";
const WAIT = 15000;

/** @typedef {import("playwright-core").Page} Page */

/**
 * @param {Page} page
 * @param {string} what
 * @param {(arg: any) => boolean} predicate
 * @param {unknown} [arg]
 */
async function waitUntil(page, what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: WAIT, polling: 50 });
  } catch (err) {
    const log = await page.evaluate(() => JSON.stringify(/** @type {any} */ (window).e2e)).catch((e) => String(e));
    throw new Error(`timed out after ${WAIT} ms waiting for ${what}; the page recorded ${log}`, { cause: err });
  }
}

describe("the browser client over the HTTP fallback, WebSocket removed", () => {
  /** @type {import("./hub-process.js").HubProcess[]} */
  const hubs = [];
  /** @type {import("playwright-core").Browser | undefined} */
  let browser;
  /** @type {string} */
  let dir;
  /** @type {string} */
  let config;
  let port = 0;
  let fallbackPort = 0;
  /** @type {Page} */
  let ada;
  /** @type {Page} */
  let bob;
  /** @type {Page} WebSocket blocked, not removed */
  let cy;
  const consoleLines = /** @type {string[]} */ ([]);
  let finished = false;

  /**
   * @param {string} file
   * @param {string} stateFile
   * @param {number} fallback
   */
  function writeConfig(file, stateFile, fallback) {
    writeFileSync(
      file,
      `[engine]\nstate_file = ${JSON.stringify(stateFile)}\n\n[fallback]\nenabled = true\nport = ${fallback}\n`,
    );
  }

  /**
   * A page on the hub's origin with a client subscribed to ROOM. Without
   * `blockedPort`, WebSocket is gone from the page; with it, WebSocket is there
   * but every socket goes to that closed port (a network that breaks WebSocket)
   * until the page sets `window.blockWebSocket = false`.
   * @param {string} name
   * @param {number} [blockedPort]
   */
  async function openPage(name, blockedPort) {
    assert.ok(browser);
    const context = await browser.newContext();
    if (blockedPort === undefined) {
      await context.addInitScript(() => {
        // @ts-ignore
        delete window.WebSocket;
      });
    } else {
      await context.addInitScript((closed) => {
        const Real = window.WebSocket;
        const w = /** @type {any} */ (window);
        w.blockWebSocket = true;
        w.WebSocket = function (/** @type {string} */ url, /** @type {any} */ protocols) {
          return new Real(w.blockWebSocket ? `ws://127.0.0.1:${closed}/` : url, protocols);
        };
      }, blockedPort);
    }
    const page = await context.newPage();
    page.on("console", (msg) => consoleLines.push(`${name} [${msg.type()}] ${msg.text()}`));
    page.on("pageerror", (err) => consoleLines.push(`${name} [pageerror] ${err.message}`));
    await page.goto(`http://127.0.0.1:${port}/healthz`);
    if (blockedPort === undefined) assert.equal(await page.evaluate(() => typeof WebSocket), "undefined");
    await page.evaluate(
      async ({ port, fallbackPort, room, name }) => {
        const { WsHub } = await import(`http://127.0.0.1:${port}/wshub.js`);
        const hub = new WsHub(`ws://127.0.0.1:${port}/`, {
          fallbackUrl: `http://127.0.0.1:${fallbackPort}/`,
          minReconnectDelay: 100,
          maxReconnectDelay: 500,
        });
        const log = {
          states: /** @type {string[]} */ ([]),
          messages: /** @type {any[]} */ ([]),
          joins: /** @type {string[]} */ ([]),
          subscribed: /** @type {any[]} */ ([]),
        };
        const w = /** @type {any} */ (window);
        w.e2e = log;
        w.hub = hub;
        hub.on("state", (/** @type {any} */ e) => log.states.push(e.state));
        const sub = hub.subscribe(room, { presence: true, info: { name } });
        sub.on("message", (/** @type {any} */ m) => log.messages.push({ data: m.data, offset: m.offset }));
        sub.on("join", (/** @type {any} */ e) => log.joins.push(e.member.info?.name));
        sub.on("subscribed", (/** @type {any} */ e) => log.subscribed.push(e));
      },
      { port, fallbackPort, room: ROOM, name },
    );
    await waitUntil(page, "subscribed", () => /** @type {any} */ (window).e2e.subscribed.length > 0);
    return page;
  }

  before(async () => {
    try {
      accessSync(CHROMIUM, constants.X_OK);
    } catch {
      throw new Error(`Chromium not found at ${CHROMIUM}: run scripts/bootstrap or set CHROMIUM_PATH`);
    }
    dir = await mkdtemp(join(tmpdir(), "wshub-fallback-e2e-"));
    config = join(dir, "hub.toml");
    port = await freePort();
    fallbackPort = await freePort();
    writeConfig(config, join(dir, "state.json"), fallbackPort);
    hubs.push(await startHub({ config, port }));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    ada = await openPage("Ada");
    bob = await openPage("Bob");
    cy = await openPage("Cy", await freePort());
  });

  after(async () => {
    if (!finished) {
      mkdirSync(ARTIFACTS, { recursive: true });
      for (const [i, h] of hubs.entries()) {
        writeFileSync(join(ARTIFACTS, `failure-fallback-hub-${i}.log`), h.log);
        console.error(`--- ${h.name} #${i}:\n${h.log}`);
      }
      console.error(`--- browser console:\n${consoleLines.join("\n")}`);
    }
    await browser?.close().catch(() => {});
    for (const h of hubs) await h.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("connects over SSE + POST by itself", async () => {
    for (const page of [ada, bob, cy]) {
      assert.equal(await page.evaluate(() => /** @type {any} */ (window).hub.transport), "sse");
      assert.equal(await page.evaluate(() => /** @type {any} */ (window).hub.state), "connected");
    }
  });

  it("publishes, receives, and sees presence", async () => {
    await bob.evaluate((room) => /** @type {any} */ (window).hub.publish(room, { text: "hello from Bob" }), ROOM);
    for (const page of [ada, bob]) {
      await waitUntil(page, "Bob's message", () =>
        /** @type {any} */ (window).e2e.messages.some((/** @type {any} */ m) => m.data.text === "hello from Bob"),
      );
    }
    await waitUntil(ada, "Bob joining", () => /** @type {any} */ (window).e2e.joins.includes("Bob"));
    const members = await ada.evaluate(async (room) => {
      const result = await /** @type {any} */ (window).hub.getSubscription(room).presence();
      return Object.values(result.members).map((/** @type {any} */ m) => m.info?.name ?? m.user);
    }, ROOM);
    assert.equal(members.length, 3, JSON.stringify(members));
  });

  it("recovers what was published while the hub restarted", async () => {
    const before = await ada.evaluate(() => /** @type {any} */ (window).e2e.messages.length);
    // Cy's network lets WebSocket through from now on.
    await cy.evaluate(() => {
      /** @type {any} */ (window).blockWebSocket = false;
    });
    await hubs[0].stop();
    await waitUntil(ada, "disconnected", () => /** @type {any} */ (window).hub.state !== "connected");
    // Another hub on the same state file takes publications meanwhile.
    const asideConfig = join(dir, "aside.toml");
    writeConfig(asideConfig, join(dir, "state.json"), await freePort());
    const aside = await startHub({ config: asideConfig, port: await freePort(), name: "aside" });
    hubs.push(aside);
    const missed = [1, 2, 3].map((n) => ({ text: `missed ${n}` }));
    await publishAll(aside.wsUrl, ROOM, missed);
    await aside.stop();
    hubs.push(await startHub({ config, port, name: "hub (restarted)" }));
    for (const page of [ada, bob, cy]) {
      await waitUntil(
        page,
        "the missed publications",
        (n) => /** @type {any} */ (window).e2e.messages.filter((/** @type {any} */ m) => m.data.text?.startsWith("missed")).length === n,
        missed.length,
      );
      const log = await page.evaluate(() => /** @type {any} */ (window).e2e);
      const last = log.subscribed[log.subscribed.length - 1];
      assert.equal(last.recovered, true, JSON.stringify(last));
      // Back to WebSocket on the first reconnect where it opens; the others have none.
      const transport = await page.evaluate(() => /** @type {any} */ (window).hub.transport);
      assert.equal(transport, page === cy ? "websocket" : "sse");
    }
    const texts = (await ada.evaluate(() => /** @type {any} */ (window).e2e.messages)).slice(before).map((/** @type {any} */ m) => m.data.text);
    assert.deepEqual(texts, ["missed 1", "missed 2", "missed 3"]);
    mkdirSync(ARTIFACTS, { recursive: true });
    finished = true;
  });
});
