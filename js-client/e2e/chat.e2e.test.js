// End-to-end: the chat demo (examples/chat, served by a real hub at /) in real
// headless Chromium. Two people join, see each other, talk; a late joiner sees
// the recent messages and who is here before joining, and is seen as soon as
// it picks a name; tabs of one browser are people of their own unless they
// pick the same name. The hub restarts with its history saved in a state file;
// both pages reconnect by themselves and show exactly the messages published
// while they were away.

import assert from "node:assert/strict";
import { accessSync, constants, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { freePort, publishAll, startHub } from "./hub-process.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const ROOM = "chat/lobby";
const MISSED = 5; // publications made while the pages are away
const WAIT = 15000; // bound of every wait for the DOM
// The pages retry at least every second while the hub is away (the demo's
// ?reconnect=), so they come back quickly once it listens again.
const RECONNECT_MS = 1000;

/** @typedef {import("playwright-core").Page} Page */
/** @typedef {{who: string, text: string, offset: number}} Line */

/**
 * Wait until `predicate(arg)` is true in the page; on timeout the error says
 * what was awaited and what the page showed.
 * @template A
 * @param {Page} page
 * @param {string} what
 * @param {(arg: A) => boolean} predicate
 * @param {A} [arg]
 */
async function waitUntil(page, what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: WAIT, polling: 50 });
  } catch (err) {
    const shown = await describePage(page).catch((e) => `(page unavailable: ${e})`);
    throw new Error(`${pageName(page)}: timed out after ${WAIT} ms waiting for ${what}\npage shows: ${shown}`, {
      cause: err,
    });
  }
}

/** @type {WeakMap<Page, string>} */
const names = new WeakMap();
/** @param {Page} page */
const pageName = (page) => names.get(page) ?? "page";

/**
 * The chat's message lines (not the system lines), as rendered.
 * @param {Page} page
 * @returns {Promise<Line[]>}
 */
function chatLines(page) {
  return page.$$eval("#messages li:not(.system)", (items) =>
    items.map((li) => ({
      who: li.querySelector(".who")?.textContent ?? "",
      text: li.children[1]?.textContent ?? "",
      offset: Number(/** @type {HTMLElement} */ (li).dataset.offset),
    })),
  );
}

/**
 * @param {Page} page
 * @returns {Promise<string[]>} the "Here now" list, sorted
 */
async function presenceList(page) {
  const names = await page.$$eval("#members li", (items) => items.map((li) => li.textContent ?? ""));
  return names.sort();
}

/** @param {Page} page */
async function describePage(page) {
  return JSON.stringify(
    await page.evaluate(() => ({
      state: document.getElementById("state")?.textContent,
      count: document.getElementById("count")?.textContent,
      members: [...document.querySelectorAll("#members li")].map((li) => li.textContent),
      messages: [...document.querySelectorAll("#messages li")].map((li) => li.textContent),
    })),
  );
}

/**
 * Both names and nothing else in the presence list, and the count agrees.
 * @param {Page} page
 * @param {string[]} expected sorted names
 */
async function waitForPresence(page, expected) {
  await waitUntil(
    page,
    `presence ${JSON.stringify(expected)}`,
    (want) => {
      const shown = [...document.querySelectorAll("#members li")].map((li) => li.textContent).sort();
      return JSON.stringify(shown) === JSON.stringify(want) && document.getElementById("count")?.textContent === String(want.length);
    },
    expected,
  );
}

/**
 * @param {Page} page
 * @param {number} count
 */
async function waitForLines(page, count) {
  await waitUntil(page, `${count} chat messages`, (n) => document.querySelectorAll("#messages li:not(.system)").length >= n, count);
}

/**
 * Type a message into the page's form and send it with Enter, as a person would.
 * @param {Page} page
 * @param {string} text
 */
async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

describe("chat demo in Chromium against a real hub", { timeout: 90000 }, () => {
  /** @type {string} */
  let dir;
  /** @type {string} */
  let config;
  /** @type {string} */
  let stateFile;
  /** @type {number} */
  let port;
  /** @type {import("./hub-process.js").HubProcess | undefined} */
  let hub;
  /** @type {import("./hub-process.js").HubProcess[]} */
  const hubs = [];
  /** @type {import("playwright-core").Browser | undefined} */
  let browser;
  /** @type {Page} */
  let ada;
  /** @type {Page} */
  let bob;
  /** @type {string[]} */
  const pageErrors = [];
  /** @type {string[]} */
  const consoleLines = [];
  /** @type {Line[]} what both pages must show, in order */
  const expected = [];
  let finished = false;

  /** @param {number} hubPort */
  async function launchHub(hubPort, name = "hub") {
    const started = await startHub({ config, port: hubPort, name });
    hubs.push(started);
    return started;
  }

  /**
   * Open the demo as `name` in its own browser context (own storage, own socket).
   * @param {string} name
   * @returns {Promise<Page>}
   */
  async function openChat(name) {
    assert.ok(browser);
    const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
    return openTab(context, name, `name=${encodeURIComponent(name)}`);
  }

  /**
   * Open the demo in a new tab of `context` (tabs of one context share storage).
   * @param {import("playwright-core").BrowserContext} context
   * @param {string} label the tab's name in failure reports
   * @param {string} [query] extra query parameters, e.g. `name=Ada`
   * @returns {Promise<Page>}
   */
  async function openTab(context, label, query = "") {
    assert.ok(hub);
    const page = await context.newPage();
    names.set(page, label);
    page.on("pageerror", (err) => pageErrors.push(`${label}: ${err.message}`));
    page.on("console", (msg) => consoleLines.push(`${label} [${msg.type()}] ${msg.text()}`));
    await page.goto(`${hub.httpUrl}/?${query ? `${query}&` : ""}reconnect=${RECONNECT_MS}`);
    await waitUntil(page, "the chat to start", () => "wshubChat" in window);
    // Record what the client reports, to check the close code and the recovery.
    await page.evaluate(() => {
      const { hub, room } = /** @type {any} */ (window).wshubChat;
      const log = { states: /** @type {any[]} */ ([]), subscribed: /** @type {any[]} */ ([]) };
      /** @type {any} */ (window).e2e = log;
      hub.on("state", (/** @type {any} */ e) => log.states.push(e));
      hub.getSubscription(room).on("subscribed", (/** @type {any} */ e) => log.subscribed.push(e));
    });
    await waitUntil(page, "connected", () => document.getElementById("state")?.dataset.state === "connected");
    return page;
  }

  before(async () => {
    // No browser, no test: this must fail loudly, never skip.
    try {
      accessSync(CHROMIUM, constants.X_OK);
    } catch {
      throw new Error(`Chromium not found at ${CHROMIUM}: run scripts/bootstrap (apt-get install chromium) or set CHROMIUM_PATH`);
    }
    dir = await mkdtemp(join(tmpdir(), "wshub-e2e-"));
    stateFile = join(dir, "state.json");
    config = join(dir, "hub.toml");
    writeFileSync(config, `[engine]\nstate_file = ${JSON.stringify(stateFile)}\n`);
    port = await freePort();
    hub = await launchHub(port);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    ada = await openChat("Ada");
    bob = await openChat("Bob");
  });

  after(async () => {
    if (!finished) {
      mkdirSync(ARTIFACTS, { recursive: true });
      for (const page of [ada, bob]) {
        await page
          ?.screenshot({ path: join(ARTIFACTS, `failure-${pageName(page)}.png`), timeout: 5000 })
          .catch(() => {});
      }
      for (const [i, h] of hubs.entries()) {
        writeFileSync(join(ARTIFACTS, `failure-hub-${i}.log`), h.log);
        console.error(`--- ${h.name} #${i} on port ${h.port} (${JSON.stringify(h.exit)}):\n${h.log}`);
      }
      console.error(`--- browser console:\n${consoleLines.join("\n")}`);
    }
    await browser?.close().catch(() => {});
    for (const h of hubs) await h.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("each page sees the other in the presence list", async () => {
    await waitForPresence(ada, ["Ada", "Bob"]);
    await waitForPresence(bob, ["Ada", "Bob"]);
  });

  it("a message sent on one page appears on both, once", async () => {
    await say(ada, "hello from Ada");
    expected.push({ who: "Ada", text: "hello from Ada", offset: 1 });
    await waitForLines(bob, 1);
    await say(bob, "hi Ada, Bob here");
    expected.push({ who: "Bob", text: "hi Ada, Bob here", offset: 2 });
    await waitForLines(ada, 2);
    await waitForLines(bob, 2);
    assert.deepEqual(await chatLines(ada), expected);
    assert.deepEqual(await chatLines(bob), expected);
    // Before the restart nothing may fail: no missing asset, no refused socket.
    assert.deepEqual(
      consoleLines.filter((l) => l.includes(" [error] ")),
      [],
      "errors in the browser console",
    );
  });

  it("a late joiner sees the recent messages and who is here, and is seen on joining, before saying anything", async () => {
    assert.ok(browser);
    const carolBrowser = await browser.newContext({ viewport: { width: 1000, height: 640 } });
    const carol = await openTab(carolBrowser, "Carol");
    // Reading, not joined: the backlog the hub keeps, the people here, the hint.
    assert.deepEqual(await chatLines(carol), expected, "a late joiner must see the recent messages");
    await waitForPresence(carol, ["Ada", "Bob"]);
    assert.equal(await carol.inputValue("#name"), "");
    assert.equal(await carol.locator("#messages li.hint").count(), 1, "the joining hint is shown");
    await waitForPresence(ada, ["Ada", "Bob"]); // a reader is nobody in the presence list

    // Picking a name joins the presence set at once: no message sent.
    await carol.fill("#name", "Carol");
    await carol.click("#join");
    for (const page of [ada, bob, carol]) await waitForPresence(page, ["Ada", "Bob", "Carol"]);
    assert.equal(await carol.locator("#messages li.hint").count(), 0, "the joining hint is gone once joined");
    assert.deepEqual(await chatLines(ada), expected, "joining sent no message");

    // Two more tabs of Carol's browser: each asks for a name (nothing carried
    // over by storage). A new name is a new person; Carol's name is Carol again.
    const dan = await openTab(carolBrowser, "Dan (Carol's browser)");
    assert.equal(await dan.inputValue("#name"), "", "a new tab must not take the other tab's name");
    await dan.fill("#name", "Dan");
    await dan.press("#name", "Enter");
    await waitForPresence(ada, ["Ada", "Bob", "Carol", "Dan"]);
    const carolAgain = await openTab(carolBrowser, "Carol (second tab)");
    assert.equal(await carolAgain.inputValue("#name"), "");
    await carolAgain.fill("#name", "Carol");
    await carolAgain.click("#join");
    await waitForPresence(carolAgain, ["Ada", "Bob", "Carol", "Dan"]);
    // Sent after the join, so shown after it: by then Ada has seen that join.
    await say(carolAgain, "Carol, from a second tab");
    expected.push({ who: "Carol", text: "Carol, from a second tab", offset: expected.length + 1 });
    for (const page of [ada, bob, carol, dan, carolAgain]) {
      await waitForLines(page, expected.length);
      assert.deepEqual(await chatLines(page), expected, `${pageName(page)} shows the wrong messages`);
      await waitForPresence(page, ["Ada", "Bob", "Carol", "Dan"]);
    }
    // The room's view of it: three connections of Carol's browser, three users, two people.
    const stats = await ada.evaluate(() => /** @type {any} */ (window).wshubChat.hub.getSubscription("chat/lobby").presenceStats());
    assert.deepEqual(stats, { clients: 5, users: 5 });

    // Leaving: Dan goes; Carol stays while one of her tabs is open.
    await dan.close();
    await waitForPresence(ada, ["Ada", "Bob", "Carol"]);
    await carol.close();
    await carolAgain.close();
    await waitForPresence(ada, ["Ada", "Bob"]);
    await waitForPresence(bob, ["Ada", "Bob"]);
    const system = await ada.$$eval("#messages li.system", (items) => items.map((li) => li.textContent));
    for (const event of ["Carol joined", "Dan joined", "Dan left", "Carol left"]) {
      assert.equal(system.filter((t) => t === event).length, 1, `Ada should see "${event}" once: ${system}`);
    }
    await carolBrowser.close();
  });

  it("after a hub restart both pages recover what was published while they were away", async () => {
    assert.ok(hub);
    const last = await ada.evaluate(() => /** @type {any} */ (window).wshubChat.hub.getSubscription("chat/lobby").position);
    assert.equal(last.offset, expected.length);

    // Graceful stop: clients get 1001 and the history goes to the state file.
    const exit = await hub.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, `the hub did not exit cleanly on SIGTERM:\n${hub.log}`);
    assert.ok(existsSync(stateFile), `no state file at ${stateFile} after a graceful stop:\n${hub.log}`);
    for (const page of [ada, bob]) {
      await waitUntil(page, "a close with 1001", () =>
        /** @type {any} */ (window).e2e.states.some((/** @type {any} */ e) => e.state === "disconnected" && e.code === 1001),
      );
    }

    // Publish while the pages are away. They keep retrying the hub's port, so
    // the publications go through the same state file to a hub on another
    // port, which the pages cannot reach: they are away for sure, whatever
    // their backoff's jitter.
    const aside = await launchHub(await freePort(), "hub (pages away)");
    const missed = Array.from({ length: MISSED }, (_, i) => ({ name: "Carol", text: `while you were away #${i + 1}` }));
    const positions = await publishAll(aside.wsUrl, ROOM, missed);
    assert.deepEqual(
      positions,
      missed.map((_, i) => ({ offset: last.offset + i + 1, epoch: last.epoch })),
      "the restarted hub did not continue the channel's offsets and epoch from its state file",
    );
    for (const [i, data] of missed.entries()) expected.push({ who: data.name, text: data.text, offset: last.offset + i + 1 });
    assert.deepEqual(await aside.stop(), { code: 0, signal: null }, aside.log);
    for (const page of [ada, bob]) {
      assert.notEqual(await page.textContent("#state"), "connected", `${pageName(page)} reconnected to a hub it cannot reach`);
    }

    // The hub comes back on the pages' port.
    hub = await launchHub(port, "hub (restarted)");
    for (const page of [ada, bob]) {
      await waitUntil(page, "connected again", () => document.getElementById("state")?.dataset.state === "connected");
      await waitForLines(page, expected.length);
      assert.deepEqual(await chatLines(page), expected, `${pageName(page)} shows the wrong messages after recovery`);
      const log = await page.evaluate(() => /** @type {any} */ (window).e2e);
      assert.deepEqual(
        log.subscribed.map((/** @type {any} */ e) => ({ recovered: e.recovered, wasRecovering: e.wasRecovering })),
        [{ recovered: true, wasRecovering: true }],
        `${pageName(page)} did not resubscribe exactly once with recovery`,
      );
      assert.deepEqual(
        log.states.map((/** @type {any} */ e) => e.state).slice(-2),
        ["connecting", "connected"],
      );
      const system = await page.$$eval("#messages li.system", (items) => items.map((li) => li.textContent));
      assert.ok(!system.some((t) => t?.includes("could not be recovered")), `${pageName(page)}: ${system}`);
      assert.equal(system.filter((t) => t === "reconnected").length, 1, `${pageName(page)}: ${system}`);
    }
    await waitForPresence(ada, ["Ada", "Bob"]);
    await waitForPresence(bob, ["Ada", "Bob"]);
  });

  it("live messages flow again after the restart, with no duplicates", async () => {
    // A live message is delivered after anything the recovery could repeat,
    // so once it is shown, the lists are final.
    await say(bob, "welcome back");
    expected.push({ who: "Bob", text: "welcome back", offset: expected.length + 1 });
    for (const page of [ada, bob]) {
      await waitForLines(page, expected.length);
      assert.deepEqual(await chatLines(page), expected, `${pageName(page)} shows the wrong messages`);
    }
    assert.deepEqual(await presenceList(ada), ["Ada", "Bob"]);
    assert.deepEqual(pageErrors, [], "uncaught errors in the pages");

    mkdirSync(ARTIFACTS, { recursive: true });
    await ada.screenshot({ path: join(ARTIFACTS, "chat-ada.png") });
    await bob.screenshot({ path: join(ARTIFACTS, "chat-bob.png") });
    finished = true;
  });
});
