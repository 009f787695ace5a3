// Test doubles shared by the suites: a fake WebSocket that records what the
// client sends and lets a test play the hub, plus small helpers.

/** Let queued promise callbacks run (setImmediate is not faked by the tests). */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A fresh fake WebSocket class with its own list of instances.
 * Inject it with `new WsHub(url, { WebSocket: FakeWebSocket })`.
 */
export function fakeWebSocketClass() {
  class FakeWebSocket {
    /** @type {FakeWebSocket[]} every socket the client opened, oldest first */
    static instances = [];

    static get last() {
      return FakeWebSocket.instances.at(-1);
    }

    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      /** @type {object[]} frames sent by the client, decoded */
      this.sent = [];
      /** @type {{code?: number, reason?: string}[]} close() calls made by the client */
      this.closeCalls = [];
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      FakeWebSocket.instances.push(this);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error("send() on a socket that is not open");
      if (typeof data !== "string") throw new Error("channels.v1 frames are text");
      this.sent.push(JSON.parse(data));
    }

    close(code, reason) {
      this.closeCalls.push({ code, reason });
      this.readyState = 3;
      // A browser fires close later; the client must not care by then.
      queueMicrotask(() => this.onclose?.({ code: code ?? 1005, reason: reason ?? "", wasClean: true }));
    }

    // ---- the hub's side

    /** The handshake succeeded. */
    open() {
      this.readyState = 1;
      this.onopen?.({ type: "open" });
    }

    /** Deliver one frame: an object (or array) is JSON-encoded, a string sent as is. */
    receive(message) {
      const data = typeof message === "string" ? message : JSON.stringify(message);
      this.onmessage?.({ data });
    }

    /** The connection was lost or closed by the hub. */
    drop(code = 1006, reason = "") {
      this.readyState = 3;
      this.onerror?.({ type: "error" });
      this.onclose?.({ code, reason, wasClean: false });
    }

    /** Requests the client sent for `method`, oldest first. */
    requests(method) {
      return this.sent.filter((frame) => frame.method === method);
    }

    /** The latest request for `method`; throws when there is none. */
    request(method) {
      const found = this.requests(method).at(-1);
      if (!found) throw new Error(`no ${method} request sent; sent: ${JSON.stringify(this.sent)}`);
      return found;
    }

    /** Answer the latest request for `method` with `result`. */
    reply(method, result) {
      this.receive({ jsonrpc: "2.0", id: this.request(method).id, result });
    }

    /** Answer the latest request for `method` with a JSON-RPC error. */
    replyError(method, error) {
      this.receive({ jsonrpc: "2.0", id: this.request(method).id, error });
    }

    /** Push a notification. */
    notify(method, params) {
      this.receive({ jsonrpc: "2.0", method, params });
    }
  }
  return FakeWebSocket;
}

/**
 * A hub client wired to a fresh fake WebSocket class. `random` defaults to 0.5
 * so that backoff delays are predictable.
 */
export async function setup(options = {}) {
  const { WsHub } = await import("../wshub.js");
  const FakeWebSocket = fakeWebSocketClass();
  const hub = new WsHub("ws://127.0.0.1:8765/", { WebSocket: FakeWebSocket, random: () => 0.5, ...options });
  return { hub, FakeWebSocket };
}

/** A client whose connection is open, and that connection. */
export async function connected(options = {}) {
  const { hub, FakeWebSocket } = await setup(options);
  hub.connect();
  const ws = FakeWebSocket.last;
  ws.open();
  return { hub, ws, FakeWebSocket };
}
