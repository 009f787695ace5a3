// End-to-end: a page on another origin imports the client straight from a real
// hub (`import ... from "http://<hub>/wshub.js"`) in real headless Chromium. The
// module import is a CORS request: it works because the hub sends
// `Access-Control-Allow-Origin: *` on the client, while the hub's own pages stay
// closed to other origins and `server.allowed_origins` still decides who may
// open a socket (docs/security.md, "The static client and CORS").

import assert from "node:assert/strict";
import { accessSync, constants, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";
import { freePort, startHub } from "./hub-process.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const WAIT = 15000;

/**
 * The page another site would serve: imports the client from the hub, publishes
 * once, and reports what happened in `window.outcome`.
 * @param {string} hubHttp http://host:port of the hub
 */
function page(hubHttp) {
  const ws = hubHttp.replace(/^http/, "ws");
  return `<!doctype html><meta charset="utf-8"><title>elsewhere</title>
<script type="module">
  const outcome = { states: [] };
  window.outcome = outcome;
  try {
    const { WsHub } = await import(${JSON.stringify(`${hubHttp}/wshub.js`)});
    outcome.imported = typeof WsHub;
    const hub = new WsHub(${JSON.stringify(`${ws}/`)}, { callTimeout: 3000, minReconnectDelay: 60000 });
    hub.on("state", ({ state, code }) => outcome.states.push({ state, code }));
    try {
      outcome.published = await hub.publish("news/elsewhere", { text: "hello from another origin" });
    } catch (err) {
      outcome.publishError = String(err.code);
    }
    hub.disconnect();
  } catch (err) {
    outcome.importError = String(err);
  }
  try {
    await import(${JSON.stringify(`${hubHttp}/chat.js`)});
    outcome.demoImported = true;
  } catch (err) {
    outcome.demoImported = false;
  }
  outcome.done = true;
</script>`;
}

describe("the client imported by a page on another origin", { timeout: 60000 }, () => {
  /** @type {string} */
  let dir;
  /** @type {import("./hub-process.js").HubProcess | undefined} */
  let hub;
  /** @type {import("node:http").Server[]} */
  const sites = [];
  /** @type {import("playwright-core").Browser | undefined} */
  let browser;
  /** @type {string} the origin the hub admits sockets from */
  let allowed;
  /** @type {string} an origin the hub does not admit sockets from */
  let other;

  /**
   * Serve the page at `/` of a new origin (127.0.0.1 on a port of its own).
   * @param {number} port
   */
  async function site(port) {
    assert.ok(hub);
    const body = page(hub.httpUrl);
    const server = createServer((_, res) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(body);
    });
    sites.push(server);
    await new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(undefined)));
    return `http://127.0.0.1:${port}`;
  }

  /**
   * Open `origin` in a fresh context and return the page's outcome.
   * @param {string} origin
   */
  async function visit(origin) {
    assert.ok(browser);
    const context = await browser.newContext();
    const tab = await context.newPage();
    await tab.goto(`${origin}/`);
    await tab.waitForFunction(() => /** @type {any} */ (window).outcome?.done, undefined, { timeout: WAIT });
    const outcome = await tab.evaluate(() => /** @type {any} */ (window).outcome);
    await context.close();
    return outcome;
  }

  before(async () => {
    try {
      accessSync(CHROMIUM, constants.X_OK);
    } catch {
      throw new Error(`Chromium not found at ${CHROMIUM}: run scripts/bootstrap (apt-get install chromium) or set CHROMIUM_PATH`);
    }
    const [hubPort, allowedPort, otherPort] = [await freePort(), await freePort(), await freePort()];
    allowed = `http://127.0.0.1:${allowedPort}`;
    dir = await mkdtemp(join(tmpdir(), "wshub-e2e-cors-"));
    const config = join(dir, "hub.toml");
    writeFileSync(config, `[server]\nallowed_origins = [${JSON.stringify(allowed)}]\n`);
    hub = await startHub({ config, port: hubPort });
    await site(allowedPort);
    other = await site(otherPort);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    for (const server of sites) server.close();
    await hub?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("imports the client and talks to the hub from an origin the hub admits", async () => {
    const outcome = await visit(allowed);
    assert.equal(outcome.importError, undefined, `the import was blocked: ${outcome.importError}\n${hub?.log}`);
    assert.equal(outcome.imported, "function");
    assert.deepEqual(outcome.published?.offset, 1, JSON.stringify(outcome));
    // The control: the hub's own pages send no CORS header, so the same import of them fails.
    assert.equal(outcome.demoImported, false, "the demo's script must not be importable from another origin");
  });

  it("imports the client from any origin, while allowed_origins still refuses the socket", async () => {
    const outcome = await visit(other);
    assert.equal(outcome.imported, "function", JSON.stringify(outcome));
    assert.equal(outcome.published, undefined);
    assert.equal(outcome.publishError, "timeout", JSON.stringify(outcome));
    assert.ok(!outcome.states.some((/** @type {{state: string}} */ s) => s.state === "connected"), JSON.stringify(outcome.states));
    assert.match(hub?.log ?? "", /origin .* is not allowed/);
  });
});
