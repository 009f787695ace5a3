// A real wshub as a child process, for the end-to-end tests: started from the
// project's venv on a port chosen by the test, stopped with SIGTERM like a
// service manager would, its output kept for the failure report.

import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

/** The venv's python, relative to js-client/ (the repository's .venv). */
export const PYTHON = fileURLToPath(new URL("../../.venv/bin/python", import.meta.url));

/**
 * A port that was free a moment ago: bind 0, read it, release it.
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * @param {number} ms
 * @returns {Promise<void>}
 */
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @type {Set<HubProcess>} hubs still running, killed if the test process exits first */
const running = new Set();
process.once("exit", () => {
  for (const hub of running) hub.killNow();
});
// Interrupted (Ctrl-C, a CI timeout): take the hubs down, then die of the signal as usual.
for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM", "SIGHUP"])) {
  process.once(signal, () => {
    for (const hub of running) hub.killNow();
    process.kill(process.pid, signal);
  });
}

/** A running hub child process. */
export class HubProcess {
  /** @type {import("node:child_process").ChildProcess} */
  #child;
  /** @type {Promise<{code: number | null, signal: string | null}>} */
  #exited;
  /** @type {{code: number | null, signal: string | null} | null} */
  exit = null;
  /** @type {string[]} */
  output = [];

  /**
   * @param {{config: string, port: number, name?: string}} options
   */
  constructor({ config, port, name = "hub" }) {
    accessSync(PYTHON, constants.X_OK); // a clear error when the venv is missing
    this.name = name;
    this.port = port;
    this.httpUrl = `http://127.0.0.1:${port}`;
    this.wsUrl = `ws://127.0.0.1:${port}/`;
    this.#child = spawn(PYTHON, ["-m", "hub", "--config", config, "--port", String(port)], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PYTHONUNBUFFERED: "1" },
    });
    for (const stream of [this.#child.stdout, this.#child.stderr]) {
      stream?.setEncoding("utf8");
      stream?.on("data", (chunk) => this.output.push(chunk));
    }
    running.add(this);
    this.#exited = new Promise((resolve) => {
      this.#child.on("exit", (code, signal) => {
        running.delete(this);
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.#child.on("error", (err) => {
        running.delete(this);
        this.output.push(`spawn error: ${err.message}\n`);
        this.exit = { code: null, signal: null };
        resolve(this.exit);
      });
    });
  }

  /** @returns {string} everything the hub printed, for a failure report */
  get log() {
    return this.output.join("");
  }

  /**
   * Wait until GET /healthz answers 200; fail early if the process dies.
   * @param {number} [timeout]
   */
  async ready(timeout = 15000) {
    const deadline = Date.now() + timeout;
    for (;;) {
      if (this.exit) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before it was ready:\n${this.log}`);
      try {
        const res = await fetch(`${this.httpUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`${this.name}: /healthz did not answer within ${timeout} ms:\n${this.log}`);
      await delay(50);
    }
  }

  /**
   * Graceful stop: SIGTERM, then wait for the exit (SIGKILL after `timeout`).
   * @param {number} [timeout]
   * @returns {Promise<{code: number | null, signal: string | null}>}
   */
  async stop(timeout = 10000) {
    if (this.exit) return this.exit;
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), timeout);
    const exit = await this.#exited;
    clearTimeout(timer);
    return exit;
  }

  /** Hard stop, for cleanup after a failure. */
  async kill() {
    if (this.exit) return this.exit;
    this.killNow();
    return this.#exited;
  }

  /** SIGKILL without waiting (from a process "exit" handler). */
  killNow() {
    if (!this.exit) this.#child.kill("SIGKILL");
  }
}

/**
 * Start a hub and wait until it serves.
 * @param {{config: string, port: number, name?: string}} options
 * @returns {Promise<HubProcess>}
 */
export async function startHub(options) {
  const hub = new HubProcess(options);
  try {
    await hub.ready();
  } catch (err) {
    await hub.kill();
    throw err;
  }
  return hub;
}

/**
 * Publish each value of `items` to `channel` over one short-lived channels.v1
 * connection, in order, each after the previous one was acknowledged.
 * @param {string} url ws:// URL of the hub
 * @param {string} channel
 * @param {unknown[]} items
 * @returns {Promise<{offset: number, epoch: string}[]>} the publications' positions
 */
export async function publishAll(url, channel, items) {
  const ws = new WebSocket(url, "channels.v1");
  /** @type {Map<number, {resolve: (value: any) => void, reject: (err: Error) => void}>} */
  const pending = new Map();
  const failAll = (/** @type {Error} */ err) => {
    for (const { reject } of pending.values()) reject(err);
    pending.clear();
  };
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data));
    const waiter = pending.get(msg.id);
    if (!waiter) return; // a notification
    pending.delete(msg.id);
    if (msg.error) waiter.reject(new Error(`publish failed: ${JSON.stringify(msg.error)}`));
    else waiter.resolve(msg.result);
  });
  ws.on("close", (code) => failAll(new Error(`publisher connection closed (${code})`)));
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  if (ws.protocol !== "channels.v1") throw new Error(`hub chose subprotocol ${JSON.stringify(ws.protocol)}`);
  try {
    const positions = [];
    let id = 0;
    for (const data of items) {
      id += 1;
      const answer = new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
      ws.send(JSON.stringify({ jsonrpc: "2.0", id, method: "publish", params: { channel, data } }));
      positions.push(await withTimeout(answer, 5000, `publish #${id}`));
    }
    return positions;
  } finally {
    ws.close(1000);
  }
}

/**
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
function withTimeout(promise, ms, what) {
  /** @type {ReturnType<typeof setTimeout>} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
