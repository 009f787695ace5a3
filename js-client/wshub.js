// wshub browser client: RPC, pub/sub, presence and recovery over one
// WebSocket speaking `channels.v1` (JSON-RPC 2.0, see docs/channels.md), or,
// where WebSocket cannot open, over the hub's HTTP fallback (Server-Sent
// Events down, POST up; docs/fallback.md).
//
// One self-contained ES module with no imports: the hub serves this exact
// file at GET /wshub.js. Only browser APIs are used (WebSocket, URL,
// setTimeout, queueMicrotask); the WebSocket constructor is injectable so
// the unit tests run in node.

// ---------------------------------------------------------------- types

/**
 * Connection state of a {@link WsHub}.
 * - `disconnected`: not connected; initially, and while waiting to reconnect
 * - `connecting`: a WebSocket is opening
 * - `connected`: the WebSocket is open
 * - `closed`: {@link WsHub#disconnect} was called; only {@link WsHub#connect} reopens
 * @typedef {"disconnected" | "connecting" | "connected" | "closed"} State
 */

/**
 * @typedef {object} StateEvent
 * @property {State} state
 * @property {State} previous
 * @property {number} [code] close code, when a closed connection caused the change
 * @property {string} [reason] close reason, when a closed connection caused the change
 */

/**
 * @typedef {object} NotificationEvent
 * @property {string} method
 * @property {unknown} params
 */

/**
 * Error codes raised by the client itself (the hub's errors carry JSON-RPC numbers).
 * - `timeout`: no response within the call timeout
 * - `disconnected`: the connection dropped while the request was in flight
 * - `closed`: {@link WsHub#disconnect} was called, or the client is closed
 * - `token`: `getToken` failed, or the hub refused the token it returned
 * @typedef {"timeout" | "disconnected" | "closed" | "token"} ClientErrorCode
 */

/** @typedef {Record<string, unknown> | unknown[]} RpcParams */

/**
 * A server-to-client method: receives the request's params, returns the result
 * (or a Promise of it). Throw a {@link WsHubError} with a numeric code to choose
 * the JSON-RPC error; anything else thrown is answered as -32603.
 * @typedef {(params: unknown) => unknown} MethodHandler
 */

/**
 * Minimal structural type of the browser WebSocket, for injected implementations.
 * @typedef {object} WebSocketLike
 * @property {number} readyState
 * @property {(data: string) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {((event: Event) => void) | null} onopen
 * @property {((event: MessageEvent) => void) | null} onmessage
 * @property {((event: CloseEvent) => void) | null} onclose
 * @property {((event: Event) => void) | null} onerror
 */

/** @typedef {new (url: string, protocols?: string | string[]) => WebSocketLike} WebSocketConstructor */

/**
 * How the client reaches the hub: `websocket`, or `sse` (the hub's HTTP fallback:
 * Server-Sent Events down, POST up) where WebSocket cannot open.
 * @typedef {"websocket" | "sse"} Transport
 */

/**
 * Minimal structural type of the browser EventSource, for injected implementations.
 * @typedef {object} EventSourceLike
 * @property {((event: MessageEvent) => void) | null} onmessage
 * @property {((event: Event) => void) | null} onerror
 * @property {(type: string, listener: (event: MessageEvent) => void) => void} addEventListener
 * @property {() => void} close
 */

/** @typedef {new (url: string, init?: {withCredentials?: boolean}) => EventSourceLike} EventSourceConstructor */

/**
 * @typedef {(url: string, init: {method: string, body: string, headers: Record<string, string>,
 *   credentials: "include", keepalive?: boolean}) => Promise<{ok: boolean, status: number}>} FetchFunction
 */

/**
 * @typedef {object} WsHubOptions
 * @property {string} [token] a JWT, sent as the `tokenParam` query parameter of the URL
 * @property {() => string | Promise<string>} [getToken] returns a fresh JWT: called before
 *   connecting without a usable token (none, expiring, or the last one was refused or
 *   expired), and before the token expires, to refresh the open session (`rpc.refresh`)
 * @property {string} [tokenParam] query parameter of the token (the hub's
 *   `auth.jwt.query_param`); default `"token"`
 * @property {number} [tokenRefreshMargin] ms before the token's `exp` to refresh it, at
 *   most half its remaining lifetime; default 10000
 * @property {string | string[]} [protocol] subprotocol(s) offered; default `"channels.v1"`
 * @property {WebSocketConstructor} [WebSocket] default `globalThis.WebSocket`
 * @property {Transport[]} [transports] transports tried in this order when the previous one
 *   fails to open; every reconnect starts again from the first. Default `["websocket", "sse"]`;
 *   `"sse"` needs `fallbackUrl`
 * @property {string} [fallbackUrl] `http(s)://` URL of the hub's HTTP fallback listener
 *   (`[fallback]` in its config, docs/fallback.md)
 * @property {EventSourceConstructor} [EventSource] default `globalThis.EventSource`
 * @property {FetchFunction} [fetch] default `globalThis.fetch`
 * @property {number} [callTimeout] ms before a call rejects with code `timeout`; default 10000
 * @property {number} [minReconnectDelay] backoff base in ms; default 500
 * @property {number} [maxReconnectDelay] backoff cap in ms; default 20000
 * @property {() => number} [random] uniform in [0, 1), for backoff jitter; default `Math.random`
 */

/**
 * @typedef {object} CallOptions
 * @property {number} [timeout] overrides the hub's `callTimeout` for this call
 */

/**
 * A position in a channel's stream.
 * @typedef {object} StreamPosition
 * @property {number} offset
 * @property {string} epoch
 */

/**
 * @typedef {object} ClientInfo
 * @property {string} user
 * @property {string} client
 */

/**
 * @typedef {object} Publication
 * @property {string} channel the concrete channel
 * @property {unknown} data
 * @property {number} offset
 * @property {string} epoch
 * @property {string} [subscription] the pattern, when delivered through a pattern subscription
 * @property {ClientInfo} [info] the publisher, when the namespace enables publisher info
 * @property {MessageMeta} [meta] content type, user properties, payload format, when set
 */

/**
 * What MQTT 5 calls a message's properties, for every protocol (docs/mqtt.md).
 * @typedef {object} MessageMeta
 * @property {string} [content_type]
 * @property {Array<[string, string]>} [user_properties] name/value pairs, in order
 * @property {0 | 1} [payload_format] 1: the payload is UTF-8 text
 */

/**
 * @typedef {object} Member
 * @property {string} user
 * @property {unknown} info
 */

/**
 * @typedef {object} PresenceEvent
 * @property {string} channel
 * @property {Member} member
 */

/**
 * @typedef {object} SubscribedEvent
 * @property {string} channel
 * @property {boolean} recovered true when every missed publication was recovered
 * @property {boolean} wasRecovering true when the subscribe asked for recovery (`since`);
 *   `wasRecovering && !recovered` means publications were lost: reload the state
 * @property {number} offset the channel's top offset
 * @property {string} epoch
 */

/**
 * @typedef {object} UnsubscribedEvent
 * @property {string} channel
 */

/**
 * @typedef {object} SubscribeOptions
 * @property {boolean} [presence] join the channel's presence set
 * @property {unknown} [info] presence info for this connection, e.g. `{name: "Ada"}`
 * @property {StreamPosition} [since] recover from this position on the first subscribe
 */

/**
 * @typedef {object} PresenceMember
 * @property {string} user
 * @property {unknown} info
 * @property {unknown} clients
 */

/**
 * @typedef {object} PresenceResult
 * @property {Record<string, PresenceMember>} members keyed by user
 */

/**
 * @typedef {object} PresenceStats
 * @property {number} clients
 * @property {number} users
 */

/**
 * @typedef {object} HistoryOptions
 * @property {number} [limit]
 * @property {StreamPosition} [since]
 */

/**
 * @typedef {object} HistoryResult
 * @property {Publication[]} publications oldest first
 * @property {number} offset
 * @property {string} epoch
 */

/**
 * @typedef {object} SubscribeResult
 * @property {string} channel
 * @property {number} offset
 * @property {string} epoch
 * @property {boolean} [recovered]
 * @property {Publication[]} [publications]
 */

/** @typedef {"unsubscribed" | "subscribing" | "subscribed"} SubscriptionState */

/**
 * @typedef {object} HubEvents
 * @property {StateEvent} state
 * @property {NotificationEvent} notification any server notification other than message/join/leave
 * @property {WsHubError} error a frame from the hub that could not be understood, or a
 *   token that could not be had or refreshed (code `token`)
 */

/**
 * @typedef {object} SubscriptionEvents
 * @property {Publication} message
 * @property {PresenceEvent} join
 * @property {PresenceEvent} leave
 * @property {SubscribedEvent} subscribed
 * @property {UnsubscribedEvent} unsubscribed
 * @property {WsHubError} error
 */

/**
 * @typedef {object} RpcError
 * @property {number} code
 * @property {string} message
 * @property {unknown} [data]
 */

/**
 * @typedef {object} RpcMessage
 * @property {number | string | null} [id]
 * @property {string} [method]
 * @property {unknown} [params]
 * @property {unknown} [result]
 * @property {RpcError} [error]
 */

/**
 * @callback ResponseCallback
 * @param {WsHubError | null} error
 * @param {unknown} [result]
 * @returns {void}
 */

/**
 * @typedef {object} PendingCall
 * @property {string} frame the encoded request
 * @property {boolean} sent
 * @property {ReturnType<typeof setTimeout>} timer
 * @property {ResponseCallback} done
 */

const OPEN = 1; // WebSocket.OPEN

// ---------------------------------------------------------------- helpers

/**
 * Full-jitter exponential backoff: a uniformly random delay in
 * `[0, min(max, min * 2 ** attempt))`.
 * @param {number} attempt 0 for the first retry after a connection was lost
 * @param {{min: number, max: number, random?: () => number}} options
 * @returns {number} delay in milliseconds
 */
export function backoff(attempt, { min, max, random = Math.random }) {
  return random() * Math.min(max, min * 2 ** attempt);
}

/** An error from the hub (numeric JSON-RPC code) or from the client (string code). */
export class WsHubError extends Error {
  /**
   * @param {string} message
   * @param {number | ClientErrorCode} code
   * @param {unknown} [data]
   */
  constructor(message, code, data) {
    super(message);
    this.name = "WsHubError";
    /** @type {number | ClientErrorCode} */
    this.code = code;
    /** @type {unknown} */
    this.data = data;
  }
}

/**
 * When a JWT expires, from its `exp` claim (read, not verified: the hub verifies).
 * @param {string} token
 * @returns {number | undefined} milliseconds since the epoch; undefined without a readable `exp`
 */
export function tokenExpiry(token) {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/")));
    return typeof claims?.exp === "number" ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when `channel` uses the MQTT wildcards `+` or `#`.
 * @param {string} channel
 * @returns {boolean}
 */
function isPattern(channel) {
  return channel.includes("+") || channel.includes("#");
}

/**
 * @param {unknown} err
 * @returns {string}
 */
function describe(err) {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The JSON-RPC error object answering a thrown value.
 * @param {unknown} err
 * @returns {RpcError}
 */
function toRpcError(err) {
  if (err instanceof WsHubError && typeof err.code === "number") {
    return err.data === undefined
      ? { code: err.code, message: err.message }
      : { code: err.code, message: err.message, data: err.data };
  }
  return { code: -32603, message: err instanceof Error ? err.message : String(err) };
}

/**
 * Small typed event emitter. A throwing listener does not disturb the others
 * or the client: its error is rethrown asynchronously.
 * @template {object} Events map of event name to payload
 */
class Emitter {
  /** @type {Map<keyof Events, Set<(payload: never) => void>>} */
  #listeners = new Map();

  /**
   * Add a listener.
   * @template {keyof Events} K
   * @param {K} event
   * @param {(payload: Events[K]) => void} listener
   * @returns {() => void} a function that removes the listener
   */
  on(event, listener) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  /**
   * Remove a listener.
   * @template {keyof Events} K
   * @param {K} event
   * @param {(payload: Events[K]) => void} listener
   * @returns {void}
   */
  off(event, listener) {
    this.#listeners.get(event)?.delete(listener);
  }

  /**
   * @protected
   * @template {keyof Events} K
   * @param {K} event
   * @param {Events[K]} payload
   * @returns {void}
   */
  _emit(event, payload) {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        /** @type {(payload: Events[K]) => void} */ (listener)(payload);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

// ---------------------------------------------------------------- Subscription

/**
 * One channel (or pattern) subscription. Obtain it from {@link WsHub#subscribe};
 * it resubscribes by itself after a reconnect, recovering missed publications.
 * @extends {Emitter<SubscriptionEvents>}
 */
export class Subscription extends Emitter {
  /** @type {WsHub} */
  #hub;
  /** @type {SubscribeOptions} */
  #options;
  /** @type {SubscriptionState} */
  #state = "subscribing";
  /** @type {StreamPosition | undefined} last position seen: message or subscribe result */
  #position;

  /**
   * @param {WsHub} hub
   * @param {string} channel
   * @param {SubscribeOptions} options
   */
  constructor(hub, channel, options) {
    super();
    this.#hub = hub;
    this.#options = options;
    /** @readonly */
    this.channel = channel;
    /** @readonly MQTT-style pattern: no presence, history or recovery */
    this.isPattern = isPattern(channel);
    this.#position = this.isPattern ? undefined : options.since;
  }

  /** @returns {SubscriptionState} */
  get state() {
    return this.#state;
  }

  /** @returns {StreamPosition | undefined} the last position seen, for recovery */
  get position() {
    return this.#position;
  }

  /** @returns {Promise<PresenceResult>} who is in the channel */
  presence() {
    return this.#hub.call("presence", { channel: this.channel });
  }

  /** @returns {Promise<PresenceStats>} how many clients and users are in the channel */
  presenceStats() {
    return this.#hub.call("presence_stats", { channel: this.channel });
  }

  /**
   * The channel's retained publications.
   * @param {HistoryOptions} [options]
   * @returns {Promise<HistoryResult>}
   */
  history(options = {}) {
    return this.#hub.call("history", { channel: this.channel, ...options });
  }

  /** Stop receiving; the subscription is finished and emits `unsubscribed`. */
  unsubscribe() {
    if (this.#state === "unsubscribed") return;
    this.#hub._release(this, this.#state === "subscribed");
    this._end();
  }

  // ---- used by WsHub only

  /**
   * The `subscribe` request's params, asking for recovery when a position is known.
   * @internal
   * @returns {Record<string, unknown>}
   */
  _subscribeParams() {
    /** @type {Record<string, unknown>} */
    const params = { channel: this.channel };
    if (this.#options.presence) params.presence = true;
    if (this.#options.info !== undefined) params.info = this.#options.info;
    if (this.#position) params.since = { ...this.#position };
    return params;
  }

  /**
   * The hub answered `subscribe`: become live, then replay recovered publications.
   * @internal
   * @param {SubscribeResult} result
   * @param {boolean} wasRecovering
   */
  _subscribed(result, wasRecovering) {
    const recovered = wasRecovering && result.recovered === true;
    const top = { offset: result.offset, epoch: result.epoch };
    // Without recovery, the stream starts at the channel's current top.
    if (!recovered && !this.isPattern) this.#position = top;
    this.#state = "subscribed";
    this._emit("subscribed", { channel: this.channel, recovered, wasRecovering, ...top });
    for (const pub of recovered ? (result.publications ?? []) : []) this._deliver(pub);
    if (this.#state === "subscribed" && !this.isPattern) this.#position = top;
  }

  /**
   * Deliver a publication unless already seen (same epoch, offset not newer).
   * @internal
   * @param {Publication} pub
   */
  _deliver(pub) {
    if (this.#state !== "subscribed") return;
    if (!this.isPattern) {
      const seen = this.#position;
      if (seen && pub.epoch === seen.epoch && pub.offset <= seen.offset) return;
      this.#position = { offset: pub.offset, epoch: pub.epoch };
    }
    this._emit("message", pub);
  }

  /**
   * A join or leave notification.
   * @internal
   * @param {"join" | "leave"} kind
   * @param {PresenceEvent} event
   */
  _presence(kind, event) {
    if (this.#state === "subscribed") this._emit(kind, event);
  }

  /**
   * The connection dropped: resubscribe on the next one.
   * @internal
   */
  _interrupted() {
    if (this.#state === "subscribed") this.#state = "subscribing";
  }

  /**
   * Finish this subscription.
   * @internal
   * @param {WsHubError} [error] why the hub refused it
   */
  _end(error) {
    this.#state = "unsubscribed";
    if (error) this._emit("error", error);
    this._emit("unsubscribed", { channel: this.channel });
  }
}

// ---------------------------------------------------------------- WsHub

// ---------------------------------------------------------------- HTTP fallback

/**
 * A {@link WebSocketLike} over the hub's HTTP fallback (docs/fallback.md): what the
 * hub sends arrives as Server-Sent Events from `GET /session`, what the client
 * sends goes up in POSTs, one at a time and in order (frames queued meanwhile
 * share the next POST, one per line). The hub's `close` event closes it with
 * the hub's code; a stream that breaks closes it with 1006, as a WebSocket would.
 */
class FallbackSocket {
  readyState = 0;
  /** @type {((event: Event) => void) | null} */
  onopen = null;
  /** @type {((event: MessageEvent) => void) | null} */
  onmessage = null;
  /** @type {((event: CloseEvent) => void) | null} */
  onclose = null;
  /** @type {((event: Event) => void) | null} */
  onerror = null;
  /** @type {EventSourceLike} */
  #source;
  /** @type {URL} */
  #base;
  /** @type {FetchFunction} */
  #fetch;
  #session = "";
  /** @type {string[]} */
  #queue = [];
  #posting = false;
  #lastPost = 0;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #keepalive;

  /**
   * @param {URL} url the fallback's `/session` URL, token included
   * @param {EventSourceConstructor} EventSourceCtor
   * @param {FetchFunction} fetchFn
   */
  constructor(url, EventSourceCtor, fetchFn) {
    this.#base = url;
    this.#fetch = fetchFn;
    const source = new EventSourceCtor(url.href, { withCredentials: true });
    this.#source = source;
    source.addEventListener("session", (event) => {
      const hello = JSON.parse(String(event.data));
      this.#session = String(hello.session);
      this.readyState = OPEN;
      this.#lastPost = Date.now();
      // The hub closes a session without a POST for idle_timeout: say something in time.
      const every = Math.max(1000, (Number(hello.idle_timeout) * 1000) / 3);
      this.#keepalive = setInterval(() => {
        if (Date.now() - this.#lastPost >= every) this.#post("");
      }, every);
      this.onopen?.(new Event("open"));
    });
    source.addEventListener("close", (event) => {
      const { code, reason } = JSON.parse(String(event.data));
      this.#finish(Number(code), String(reason));
    });
    source.onmessage = (event) => {
      if (this.readyState === OPEN) this.onmessage?.(event);
    };
    // EventSource would reconnect by itself to a new session: the client decides instead.
    source.onerror = () => this.#finish(1006, "fallback stream failed");
  }

  /** @param {string} frame */
  send(frame) {
    if (this.readyState !== OPEN) return;
    this.#queue.push(frame);
    if (!this.#posting) this.#post(null);
  }

  /**
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = 1000, reason = "") {
    if (this.readyState >= 2) return;
    if (this.#session) {
      const url = this.#endpoint("close");
      this.#fetch(url, { method: "POST", body: "", headers: { "Content-Type": "text/plain" }, credentials: "include", keepalive: true }).catch(() => {});
    }
    this.#finish(code, reason);
  }

  /** @param {string} action */
  #endpoint(action) {
    const url = new URL(`session/${action}`, this.#base);
    url.search = "";
    url.searchParams.set("session", this.#session);
    return url.href;
  }

  /**
   * POST the queued frames (or `keepalive`, an empty body), then whatever queued meanwhile.
   * @param {string | null} keepalive
   */
  async #post(keepalive) {
    if (this.#posting) return;
    const body = keepalive ?? this.#queue.splice(0).join("\n");
    this.#posting = true;
    this.#lastPost = Date.now();
    try {
      // text/plain: a "simple" request, no CORS preflight per POST.
      const response = await this.#fetch(this.#endpoint("send"), {
        method: "POST",
        body,
        headers: { "Content-Type": "text/plain" },
        credentials: "include",
      });
      if (!response.ok) {
        this.#finish(response.status === 404 ? 1006 : 1008, `fallback POST refused (${response.status})`);
        return;
      }
    } catch {
      this.#finish(1006, "fallback POST failed");
      return;
    } finally {
      this.#posting = false;
    }
    if (this.#queue.length && this.readyState === OPEN) this.#post(null);
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #finish(code, reason) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    clearInterval(this.#keepalive);
    this.#queue = [];
    this.#source.close();
    const onclose = this.onclose;
    // Asynchronously, as a WebSocket's close event.
    setTimeout(() => onclose?.(/** @type {CloseEvent} */ ({ code, reason, wasClean: code !== 1006 })), 0);
  }
}

// ---------------------------------------------------------------- WsHub

/**
 * A connection to a wshub speaking `channels.v1`: JSON-RPC calls, pub/sub,
 * presence, history, and methods the hub may call on the client.
 * @extends {Emitter<HubEvents>}
 */
export class WsHub extends Emitter {
  /** @type {URL} the URL to connect to, without the token */
  #baseUrl;
  /** @type {string | undefined} */
  #token;
  /** @type {string} */
  #tokenParam;
  /** @type {(() => string | Promise<string>) | undefined} */
  #getToken;
  /** @type {number} */
  #refreshMargin;
  /** @type {object | null} set while a getToken() is awaited before opening a socket */
  #fetching = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #refreshTimer;
  /** true when the last token was refused or expired: getToken before reconnecting */
  #tokenRejected = false;
  /** true once the current socket opened (a socket closed before that may mean a refused token) */
  #opened = false;
  /** @type {string | string[]} */
  #protocol;
  /** @type {WebSocketConstructor | undefined} */
  #WebSocket;
  /** @type {Transport[]} */
  #transports;
  /** @type {URL | undefined} */
  #fallbackUrl;
  /** @type {EventSourceConstructor | undefined} */
  #EventSource;
  /** @type {FetchFunction | undefined} */
  #fetch;
  /** index in #transports of the transport of this attempt */
  #transportIndex = 0;
  /** @type {Transport | null} */
  #transport = null;
  /** @type {number} */
  #callTimeout;
  /** @type {{min: number, max: number, random: () => number}} */
  #backoff;

  /** @type {State} */
  #state = "disconnected";
  /** @type {WebSocketLike | null} */
  #ws = null;
  #attempt = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #reconnectTimer;
  #nextId = 1;
  /** @type {Map<number, PendingCall>} requests awaiting a response, in send order */
  #calls = new Map();
  /** @type {Map<string, Subscription>} keyed by channel or pattern */
  #subs = new Map();
  /** @type {Map<string, MethodHandler>} */
  #methods = new Map();
  /** @type {Set<string>} channels with a subscribe or unsubscribe in flight on this socket */
  #busy = new Set();

  /**
   * @param {string} url `ws://` or `wss://` URL (relative or http(s) URLs are resolved against the page)
   * @param {WsHubOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    const u = new URL(url, globalThis.location?.href);
    if (u.protocol === "http:") u.protocol = "ws:";
    if (u.protocol === "https:") u.protocol = "wss:";
    this.#baseUrl = u;
    this.#token = options.token;
    this.#tokenParam = options.tokenParam ?? "token";
    this.#getToken = options.getToken;
    this.#refreshMargin = options.tokenRefreshMargin ?? 10000;
    this.#protocol = options.protocol ?? "channels.v1";
    this.#WebSocket = options.WebSocket;
    this.#transports = options.transports ?? ["websocket", "sse"];
    this.#fallbackUrl = options.fallbackUrl ? new URL(options.fallbackUrl, globalThis.location?.href) : undefined;
    this.#EventSource = options.EventSource;
    this.#fetch = options.fetch;
    this.#callTimeout = options.callTimeout ?? 10000;
    this.#backoff = {
      min: options.minReconnectDelay ?? 500,
      max: options.maxReconnectDelay ?? 20000,
      random: options.random ?? Math.random,
    };
  }

  /** @returns {State} */
  get state() {
    return this.#state;
  }

  /** @returns {Transport | null} the transport of the open (or opening) connection */
  get transport() {
    return this.#ws ? this.#transport : null;
  }

  /** @returns {string} the URL connected to, token included */
  get url() {
    const u = new URL(this.#baseUrl.href);
    // Browsers cannot set headers on a WebSocket handshake: the token rides in the query.
    if (this.#token !== undefined) u.searchParams.set(this.#tokenParam, this.#token);
    return u.href;
  }

  /**
   * Open the connection (a no-op when open or opening). Calls and subscribes
   * connect implicitly, except after {@link WsHub#disconnect}.
   * @returns {void}
   */
  connect() {
    if (this.#ws || this.#fetching) return;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#open();
  }

  /**
   * Close the connection and stop reconnecting. Pending calls reject with code
   * `closed`; subscriptions are kept and resubscribe on the next {@link WsHub#connect}.
   * @returns {void}
   */
  disconnect() {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#fetching = null;
    this.#attempt = 0;
    this.#drop(new WsHubError("client disconnected", "closed"), true, "client disconnected");
    this.#setState("closed");
  }

  /**
   * Call a method of the hub's RPC table.
   * @template [T=unknown]
   * @param {string} method
   * @param {RpcParams} [params] named (object) or positional (array)
   * @param {CallOptions} [options]
   * @returns {Promise<T>} the result; rejects with a {@link WsHubError}
   */
  call(method, params, options = {}) {
    return new Promise((resolve, reject) => {
      this.#request(method, params, options.timeout ?? this.#callTimeout, (err, result) =>
        err ? reject(err) : resolve(/** @type {T} */ (result)),
      );
    });
  }

  /**
   * Publish to a channel.
   * @param {string} channel
   * @param {unknown} data any JSON value
   * @param {{meta?: MessageMeta}} [options] `meta`: the message's content type,
   *   user properties and payload format (MQTT 5 subscribers get them as properties)
   * @returns {Promise<StreamPosition>} the publication's offset and epoch
   */
  publish(channel, data, options = {}) {
    const { meta } = options;
    return this.call("publish", meta === undefined ? { channel, data } : { channel, data, meta });
  }

  /**
   * Subscribe to a channel or an MQTT-style pattern (`sensors/+/temp`, `chat/#`).
   * Sent now when connected, otherwise once connected.
   * @param {string} channel
   * @param {SubscribeOptions} [options]
   * @returns {Subscription}
   * @throws {Error} when this hub already has a subscription to `channel`
   */
  subscribe(channel, options = {}) {
    if (this.#subs.has(channel)) throw new Error(`already subscribed to ${channel}`);
    this.#connectImplicitly();
    const sub = new Subscription(this, channel, options);
    this.#subs.set(channel, sub);
    this.#sendSubscribe(sub);
    return sub;
  }

  /**
   * @param {string} channel
   * @returns {Subscription | undefined} the active subscription to `channel`
   */
  getSubscription(channel) {
    return this.#subs.get(channel);
  }

  /**
   * Answer the hub's JSON-RPC requests for `method`. Requests for methods not
   * registered are answered with -32601.
   * @param {string} method
   * @param {MethodHandler} handler
   * @returns {() => void} a function that unregisters the method
   * @throws {Error} when `method` is already registered
   */
  register(method, handler) {
    if (this.#methods.has(method)) throw new Error(`method ${method} is already registered`);
    this.#methods.set(method, handler);
    return () => {
      if (this.#methods.get(method) === handler) this.#methods.delete(method);
    };
  }

  /**
   * Forget a subscription; tell the hub when it is subscribed there. (One
   * whose subscribe is still in flight is undone when the result arrives.)
   * @internal
   * @param {Subscription} sub
   * @param {boolean} subscribed
   */
  _release(sub, subscribed) {
    if (this.#subs.get(sub.channel) !== sub) return;
    this.#subs.delete(sub.channel);
    if (subscribed) this.#sendUnsubscribe(sub.channel);
  }

  // ---- state and connection

  /**
   * The one place the state changes.
   * @param {State} state
   * @param {{code: number, reason: string}} [close]
   */
  #setState(state, close) {
    const previous = this.#state;
    if (state === previous) return;
    this.#state = state;
    this._emit("state", { state, previous, ...close });
  }

  #connectImplicitly() {
    if (this.#state === "disconnected" && !this.#ws && !this.#fetching && this.#reconnectTimer === undefined) {
      this.connect();
    }
  }

  #open() {
    this.#transportIndex = this.#usable(0);
    if (this.#transportIndex < 0) {
      this.#transportIndex = 0;
      throw new Error(
        "no WebSocket implementation: pass options.WebSocket" +
          (this.#transports.includes("sse") ? " (or fallbackUrl, where EventSource and fetch exist)" : ""),
      );
    }
    const getToken = this.#getToken;
    if (!getToken || !this.#needsToken()) {
      this.#openSocket();
      return;
    }
    const fetching = {};
    this.#fetching = fetching;
    this.#setState("connecting");
    new Promise((resolve) => resolve(getToken())).then(
      (token) => {
        if (this.#fetching !== fetching) return; // disconnect() meanwhile
        this.#fetching = null;
        this.#token = String(token);
        this.#tokenRejected = false;
        this.#openSocket();
      },
      (err) => {
        if (this.#fetching !== fetching) return;
        this.#fetching = null;
        this._emit("error", new WsHubError(`getToken failed: ${describe(err)}`, "token", err));
        this.#setState("disconnected");
        this.#scheduleReconnect();
      },
    );
  }

  /** True when connecting needs a token from getToken first. */
  #needsToken() {
    if (this.#token === undefined || this.#tokenRejected) return true;
    const exp = tokenExpiry(this.#token);
    // A second of slack: the handshake must reach the hub before exp.
    return exp !== undefined && exp - Date.now() < 1000;
  }

  /**
   * The index of the first transport from `from` on that this environment can
   * open (WebSocket may be missing; the fallback needs its URL, EventSource, fetch).
   * @param {number} from
   * @returns {number} -1 when none
   */
  #usable(from) {
    for (let i = from; i < this.#transports.length; i++) {
      const transport = this.#transports[i];
      if (transport === "websocket" && (this.#WebSocket ?? globalThis.WebSocket)) return i;
      if (
        transport === "sse" &&
        this.#fallbackUrl &&
        (this.#EventSource || typeof globalThis.EventSource === "function") &&
        (this.#fetch || typeof globalThis.fetch === "function")
      ) {
        return i;
      }
    }
    return -1;
  }

  /** Open the transport at #transportIndex. */
  #openSocket() {
    const transport = this.#transports[this.#transportIndex];
    /** @type {WebSocketLike} */
    let ws;
    if (transport === "sse" && this.#fallbackUrl) {
      const url = new URL("session", this.#fallbackUrl.href.endsWith("/") ? this.#fallbackUrl : `${this.#fallbackUrl.href}/`);
      for (const [name, value] of this.#fallbackUrl.searchParams) url.searchParams.set(name, value);
      if (this.#token !== undefined) url.searchParams.set(this.#tokenParam, this.#token);
      const fetchFn = this.#fetch ?? /** @type {FetchFunction} */ (globalThis.fetch.bind(globalThis));
      const EventSourceCtor = this.#EventSource ?? /** @type {EventSourceConstructor} */ (globalThis.EventSource);
      ws = new FallbackSocket(url, EventSourceCtor, fetchFn);
    } else {
      const Ctor = /** @type {WebSocketConstructor} */ (this.#WebSocket ?? globalThis.WebSocket);
      ws = new Ctor(this.url, this.#protocol);
    }
    this.#transport = transport;
    this.#ws = ws;
    this.#opened = false;
    ws.onopen = () => this.#onOpen(ws);
    ws.onmessage = (event) => {
      if (this.#ws === ws) this.#onFrame(event.data);
    };
    ws.onclose = (event) => {
      if (this.#ws === ws) this.#onClose(event.code, event.reason);
    };
    ws.onerror = () => {}; // a close event always follows
    this.#setState("connecting");
  }

  /** @param {WebSocketLike} ws */
  #onOpen(ws) {
    if (this.#ws !== ws) return;
    this.#attempt = 0;
    this.#opened = true;
    // Subscriptions first, so that a publish queued after a subscribe is seen by it.
    for (const sub of this.#subs.values()) this.#sendSubscribe(sub);
    for (const call of this.#calls.values()) {
      if (!call.sent) this.#sendCall(call);
    }
    this.#setState("connected");
    this.#scheduleRefresh();
  }

  /** Refresh the session's token before it expires, when getToken can supply one. */
  #scheduleRefresh(afterFailure = false) {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    const exp = this.#getToken && this.#token !== undefined ? tokenExpiry(this.#token) : undefined;
    if (exp === undefined) return;
    const left = exp - Date.now();
    // At most half the remaining lifetime early, so short tokens do not refresh in a loop;
    // a failed refresh is retried after a second at the earliest.
    const delay = Math.max(left - Math.min(this.#refreshMargin, left / 2), afterFailure ? 1000 : 0);
    // Too late: the hub closes with 3000 at exp, and reconnecting asks getToken.
    if (delay >= left) return;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined;
      this.#refresh();
    }, delay);
  }

  async #refresh() {
    const ws = this.#ws;
    const getToken = this.#getToken;
    if (!ws || !getToken) return;
    try {
      const token = String(await getToken());
      if (this.#ws !== ws) return;
      // rpc.refresh: the hub's refresh under its reserved JSON-RPC name (channels.v1 and jsonrpc.2.0)
      await this.call("rpc.refresh", { token });
      if (this.#ws !== ws) return;
      this.#token = token;
      this.#scheduleRefresh();
    } catch (err) {
      if (this.#ws !== ws) return;
      this._emit("error", new WsHubError(`token refresh failed: ${describe(err)}`, "token", err));
      this.#scheduleRefresh(true);
    }
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #onClose(code, reason) {
    // That transport could not open (blocked, refused): try the next one at once.
    const next = this.#opened ? -1 : this.#usable(this.#transportIndex + 1);
    if (next >= 0 && this.#ws) {
      const ws = this.#ws;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      this.#ws = null;
      this.#transportIndex = next;
      this.#openSocket();
      return;
    }
    // 3000: the hub closed for an expired token; a socket that never opened may
    // have been refused (401) for a bad one. Either way, ask getToken again.
    if (code === 3000 || !this.#opened) this.#tokenRejected = true;
    this.#drop(new WsHubError(`connection closed (${code})`, "disconnected", { code, reason }), false, reason);
    this.#setState("disconnected", { code, reason });
    this.#scheduleReconnect();
  }

  #scheduleReconnect() {
    // A state listener may have called connect() or disconnect() meanwhile.
    if (this.#state === "disconnected" && !this.#ws && !this.#fetching && this.#reconnectTimer === undefined) {
      const delay = backoff(this.#attempt++, this.#backoff);
      this.#reconnectTimer = setTimeout(() => {
        this.#reconnectTimer = undefined;
        this.#open();
      }, delay);
    }
  }

  /**
   * Let go of the socket: reject what was sent on it (and, when closing for
   * good, what was waiting to be sent); subscriptions wait for the next one.
   * @param {WsHubError} error
   * @param {boolean} rejectUnsent
   * @param {string} reason sent in the close frame when the socket is still open
   */
  #drop(error, rejectUnsent, reason) {
    const ws = this.#ws;
    this.#ws = null;
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState <= OPEN) ws.close(1000, reason);
    }
    for (const [id, call] of this.#calls) {
      if (call.sent || rejectUnsent) this.#settle(id, call, error);
    }
    this.#busy.clear();
    for (const sub of this.#subs.values()) sub._interrupted();
  }

  /**
   * Drop the connection and reconnect, e.g. when the hub stopped answering.
   * @param {string} reason
   */
  #reconnect(reason) {
    if (this.#ws) this.#onClose(1000, reason);
  }

  // ---- requests

  /**
   * Send a request now, or once connected. `done` is called exactly once.
   * @param {string} method
   * @param {RpcParams | undefined} params
   * @param {number} timeout
   * @param {ResponseCallback} done
   */
  #request(method, params, timeout, done) {
    if (this.#state === "closed") {
      done(new WsHubError("client is closed: call connect() first", "closed"));
      return;
    }
    const id = this.#nextId++;
    let frame;
    try {
      frame = JSON.stringify(params === undefined ? { jsonrpc: "2.0", id, method } : { jsonrpc: "2.0", id, method, params });
    } catch (err) {
      done(new WsHubError(`cannot encode params: ${err}`, -32602));
      return;
    }
    try {
      this.#connectImplicitly();
    } catch (err) {
      done(new WsHubError(String(err), "closed"));
      return;
    }
    const timer = setTimeout(() => {
      this.#settle(id, call, new WsHubError(`${method}: no response within ${timeout} ms`, "timeout"));
    }, timeout);
    /** @type {PendingCall} */
    const call = { frame, sent: false, timer, done };
    this.#calls.set(id, call);
    if (this.#ws?.readyState === OPEN) this.#sendCall(call);
  }

  /** @param {PendingCall} call */
  #sendCall(call) {
    call.sent = true;
    this.#ws?.send(call.frame);
  }

  /**
   * @param {number} id
   * @param {PendingCall} call
   * @param {WsHubError | null} error
   * @param {unknown} [result]
   */
  #settle(id, call, error, result) {
    if (this.#calls.get(id) !== call) return;
    this.#calls.delete(id);
    clearTimeout(call.timer);
    call.done(error, result);
  }

  /**
   * Subscribe on the open socket. The hub sees at most one subscribe or
   * unsubscribe per channel at a time, so that an unsubscribe followed by a
   * new subscribe to the same channel cannot be reordered.
   * @param {Subscription} sub
   */
  #sendSubscribe(sub) {
    const { channel } = sub;
    if (this.#ws?.readyState !== OPEN || this.#busy.has(channel)) return;
    this.#busy.add(channel);
    const params = sub._subscribeParams();
    const wasRecovering = params.since !== undefined;
    // A callback, not a promise, so that no frame is handled before the result.
    this.#request("subscribe", params, this.#callTimeout, (err, result) => {
      this.#busy.delete(channel);
      if (this.#subs.get(channel) !== sub) {
        // Unsubscribed while the request was in flight: undo it at the hub.
        if (err) this.#resume(channel);
        else this.#sendUnsubscribe(channel);
      } else if (!err) {
        sub._subscribed(/** @type {SubscribeResult} */ (result), wasRecovering);
      } else if (err.code === "timeout") {
        // The hub stopped answering: a fresh connection resubscribes everything.
        this.#reconnect("subscribe timeout");
      } else if (typeof err.code === "number") {
        this.#subs.delete(channel);
        sub._end(err);
      }
      // "disconnected" / "closed": resubscribed on the next connection.
    });
  }

  /** @param {string} channel */
  #sendUnsubscribe(channel) {
    if (this.#ws?.readyState !== OPEN) return;
    this.#busy.add(channel);
    this.#request("unsubscribe", { channel }, this.#callTimeout, () => {
      this.#busy.delete(channel);
      this.#resume(channel);
    });
  }

  /**
   * Send the subscribe that waited for the channel's previous request.
   * @param {string} channel
   */
  #resume(channel) {
    const sub = this.#subs.get(channel);
    if (sub?.state === "subscribing") this.#sendSubscribe(sub);
  }

  // ---- incoming frames

  /** @param {unknown} data */
  #onFrame(data) {
    let parsed;
    try {
      parsed = JSON.parse(String(data));
    } catch {
      this._emit("error", new WsHubError("invalid JSON from the hub", -32700, data));
      return;
    }
    for (const msg of Array.isArray(parsed) ? parsed : [parsed]) {
      if (typeof msg === "object" && msg !== null) this.#onMessage(msg);
    }
  }

  /** @param {RpcMessage} msg */
  #onMessage(msg) {
    if (typeof msg.method === "string") {
      if (msg.id === undefined) this.#onNotification(msg.method, msg.params);
      else this.#onServerRequest(msg.id, msg.method, msg.params);
      return;
    }
    const call = typeof msg.id === "number" ? this.#calls.get(msg.id) : undefined;
    if (!call || typeof msg.id !== "number") return; // late (timed out) or unknown response
    if (msg.error) {
      const { code, message, data } = msg.error;
      this.#settle(msg.id, call, new WsHubError(String(message), code, data));
    } else {
      this.#settle(msg.id, call, null, msg.result);
    }
  }

  /**
   * @param {string} method
   * @param {unknown} params
   */
  #onNotification(method, params) {
    const p = /** @type {Record<string, unknown>} */ (params ?? {});
    if (method === "message" && typeof p.channel === "string") {
      // A pattern subscription's deliveries name it in `subscription`.
      const key = typeof p.subscription === "string" ? p.subscription : p.channel;
      this.#subs.get(key)?._deliver(/** @type {Publication} */ (params));
    } else if ((method === "join" || method === "leave") && typeof p.channel === "string") {
      this.#subs.get(p.channel)?._presence(method, /** @type {PresenceEvent} */ (params));
    } else {
      this._emit("notification", { method, params });
    }
  }

  /**
   * Answer a request from the hub with a registered method.
   * @param {number | string | null} id
   * @param {string} method
   * @param {unknown} params
   */
  #onServerRequest(id, method, params) {
    const ws = this.#ws;
    /** @param {{result: unknown} | {error: RpcError}} body */
    const reply = (body) => {
      if (this.#ws !== ws || ws?.readyState !== OPEN) return; // that connection is gone
      let frame;
      try {
        frame = JSON.stringify({ jsonrpc: "2.0", id, ...body });
      } catch (err) {
        frame = JSON.stringify({ jsonrpc: "2.0", id, error: toRpcError(err) });
      }
      ws.send(frame);
    };
    const handler = this.#methods.get(method);
    if (!handler) {
      reply({ error: { code: -32601, message: `Method not found: ${method}` } });
      return;
    }
    Promise.resolve()
      .then(() => handler(params))
      .then(
        (result) => reply({ result: result === undefined ? null : result }),
        (err) => reply({ error: toRpcError(err) }),
      );
  }
}
