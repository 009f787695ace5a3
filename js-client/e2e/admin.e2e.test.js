// End-to-end: the admin page (/admin on the server API's listener) in real
// headless Chromium against a real hub. Its live figures move when traffic
// flows, it lists channels, presence and the latest publications, and its
// actions work: a publish reaches a subscriber, a disconnect closes a user's
// connection. Screenshots are saved in e2e/artifacts/.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { accessSync, constants, mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import WebSocket from "ws";
import { PYTHON, freePort, publishAll, startHub } from "./hub-process.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const PASSWORD = "admin password for the e2e test";
const ROOM = "admin/room";
const WAIT = 15000;

/** @typedef {import("playwright-core").Page} Page */

/**
 * A channels.v1 client in node (the `ws` package): subscribed to ROOM with presence.
 * @param {string} url
 */
async function subscriber(url) {
  const ws = new WebSocket(url, "channels.v1");
  const received = /** @type {any[]} */ ([]);
  /** @type {{code: number, reason: string} | null} */
  let closed = null;
  ws.on("message", (data) => received.push(JSON.parse(String(data))));
  ws.on("close", (code, reason) => {
    closed = { code, reason: String(reason) };
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscribe", params: { channel: ROOM, presence: true, info: { name: "Ada" } } }));
  return { ws, received, closed: () => closed };
}

/**
 * @param {() => boolean} predicate
 * @param {string} what
 */
async function until(predicate, what) {
  const deadline = Date.now() + WAIT;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("the admin page in Chromium", () => {
  /** @type {import("./hub-process.js").HubProcess | undefined} */
  let hub;
  /** @type {import("playwright-core").Browser | undefined} */
  let browser;
  /** @type {Page} */
  let page;
  /** @type {string} */
  let dir;
  let apiPort = 0;
  /** @type {Awaited<ReturnType<typeof subscriber>>} */
  let ada;
  let finished = false;

  before(async () => {
    try {
      accessSync(CHROMIUM, constants.X_OK);
    } catch {
      throw new Error(`Chromium not found at ${CHROMIUM}: run scripts/bootstrap or set CHROMIUM_PATH`);
    }
    dir = await mkdtemp(join(tmpdir(), "wshub-admin-e2e-"));
    const hash = execFileSync(PYTHON, ["-c", "import sys; from hub.auth import hash_password; print(hash_password(sys.argv[1]))", PASSWORD], {
      encoding: "utf8",
    }).trim();
    apiPort = await freePort();
    const config = join(dir, "hub.toml");
    // The rate test publishes through a fresh connection per batch, hundreds a
    // second from loopback: past limits.connection_rate_per_ip's default (50/s).
    writeFileSync(
      config,
      `[api]\nport = ${apiPort}\n\n[admin]\nenabled = true\nusers = { ops = ${JSON.stringify(hash)} }\n\n` +
        `[limits]\nconnection_rate_per_ip = 0\n`,
    );
    hub = await startHub({ config, port: await freePort() });
    ada = await subscriber(hub.wsUrl);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    const context = await browser.newContext({
      httpCredentials: { username: "ops", password: PASSWORD },
      viewport: { width: 1280, height: 1000 },
    });
    page = await context.newPage();
    page.on("pageerror", (err) => console.error(`page error: ${err.message}`));
    await page.goto(`http://127.0.0.1:${apiPort}/admin`);
  });

  after(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    if (!finished) {
      await page?.screenshot({ path: join(ARTIFACTS, "failure-admin.png"), fullPage: true }).catch(() => {});
      if (hub) console.error(`--- hub:\n${hub.log}`);
    }
    ada?.ws.close();
    await browser?.close().catch(() => {});
    await hub?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("refuses a browser without the admin credentials", async () => {
    assert.ok(browser);
    const context = await browser.newContext();
    const response = await context.request.get(`http://127.0.0.1:${apiPort}/admin`);
    assert.equal(response.status(), 401);
    assert.match(response.headers()["www-authenticate"] ?? "", /^Basic realm="wshub admin"/);
    await context.close();
  });

  it("shows the node, its connections by protocol and the channels", async () => {
    await page.waitForFunction(() => document.querySelectorAll("#nodes tbody tr").length === 1, null, { timeout: WAIT });
    await page.waitForFunction(
      () => document.querySelector('#protocols li[data-protocol="channels.v1"] .figure')?.textContent === "1",
      null,
      { timeout: WAIT },
    );
    await page.waitForFunction(
      (room) => [...document.querySelectorAll("#channels tbody tr")].some((tr) => tr.textContent === `${room}1`),
      ROOM,
      { timeout: WAIT },
    );
  });

  it("draws live message rates that move with traffic", async () => {
    const rate = () => page.evaluate(() => Number(document.getElementById("rate-publications")?.textContent));
    assert.equal(await rate(), 0);
    // Two seconds of steady publishing, acknowledged one by one.
    const started = Date.now();
    let n = 0;
    while (Date.now() - started < 2500) {
      await publishAll(/** @type {any} */ (hub).wsUrl, ROOM, Array.from({ length: 10 }, () => ({ n: n++ })));
    }
    await page.waitForFunction(() => Number(document.getElementById("rate-deliveries")?.textContent) > 0, null, { timeout: WAIT });
    // A line needs two samples.
    await page.waitForFunction(() => /** @type {any} */ (window).adminState.series.publications.length >= 2, null, { timeout: WAIT });
    const peak = await page.evaluate(() => Math.max(.../** @type {any} */ (window).adminState.series.publications));
    assert.ok(peak > 1, `publication rate peaked at ${peak}/s`);
    // The chart drew it: some pixels of the publications colour are on the canvas.
    const bluePixels = () => {
      const canvas = /** @type {HTMLCanvasElement} */ (document.getElementById("chart"));
      const data = canvas.getContext("2d")?.getImageData(0, 0, canvas.width, canvas.height).data ?? [];
      let blue = 0;
      // The line's colour (#2f6fdf), give or take antialiasing, in the plot's right half
      // (the newest samples are drawn on the right).
      for (let i = 0; i < data.length; i += 4) {
        const x = (i / 4) % canvas.width;
        if (x > canvas.width / 2 && data[i + 2] > 180 && data[i] < 110 && data[i + 3] > 0) blue++;
      }
      return blue;
    };
    // Traffic goes on while the chart is read, so its newest (right-hand) samples are
    // non-zero: once traffic stops the line falls to the axis and its peak moves left.
    let drawn = await page.evaluate(bluePixels);
    const reading = Date.now();
    while (drawn <= 20 && Date.now() - reading < WAIT) {
      await publishAll(/** @type {any} */ (hub).wsUrl, ROOM, Array.from({ length: 10 }, () => ({ n: n++ })));
      drawn = await page.evaluate(bluePixels);
    }
    assert.ok(drawn > 20, `only ${drawn} pixels of the publications line`);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "admin-rates.png"), fullPage: true });
  });

  it("shows the presence of a chosen channel and its latest publications", async () => {
    await page.fill("#presence-channel", ROOM);
    await page.click("#presence-form button");
    await page.waitForFunction(() => document.querySelector("#presence-list li")?.textContent?.includes('"name":"Ada"'), null, { timeout: WAIT });
    await publishAll(/** @type {any} */ (hub).wsUrl, ROOM, [{ text: "the latest" }]);
    await page.fill("#history-channel", ROOM);
    await page.click("#history-form button");
    await page.waitForFunction(() => document.querySelector("#history-list li code")?.textContent === '{"text":"the latest"}', null, {
      timeout: WAIT,
    });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "admin-overview.png"), fullPage: true });
  });

  it("publishes to a channel: the subscriber gets it", async () => {
    await page.fill("#publish-channel", ROOM);
    await page.fill("#publish-data", '{"from": "the admin page"}');
    await page.click("#publish-form button");
    await until(() => ada.received.some((m) => m.method === "message" && m.params.data.from === "the admin page"), "the admin's publication");
    await page.waitForFunction(() => document.getElementById("publish-status")?.textContent?.startsWith("published at offset"), null, {
      timeout: WAIT,
    });
    await page.fill("#publish-data", "{not json");
    await page.click("#publish-form button");
    await page.waitForFunction(() => document.getElementById("publish-status")?.textContent === "the data is not JSON", null, { timeout: WAIT });
  });

  it("disconnects a user: the connection closes with the code and reason given", async () => {
    const user = await page.evaluate(() => /** @type {HTMLElement} */ (document.querySelector("#presence-list li")).dataset.user);
    assert.ok(user);
    await page.fill("#disconnect-user", user);
    await page.fill("#disconnect-code", "4100");
    await page.fill("#disconnect-reason", "bye from the admin page");
    await page.click("#disconnect-form button");
    await until(() => ada.closed() !== null, "the user's connection to close");
    assert.deepEqual(ada.closed(), { code: 4100, reason: "bye from the admin page" });
    await page.waitForFunction(() => document.querySelector("#presence-list li")?.textContent?.startsWith("nobody in"), null, {
      timeout: WAIT,
    });
    await page.screenshot({ path: join(ARTIFACTS, "admin.png"), fullPage: true });
    finished = true;
  });
});
