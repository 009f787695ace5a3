export type State = "disconnected" | "connecting" | "connected" | "closed";
export type StateEvent = {
    state: State;
    previous: State;
    /**
     * close code, when a closed connection caused the change
     */
    code?: number;
    /**
     * close reason, when a closed connection caused the change
     */
    reason?: string;
};
export type NotificationEvent = {
    method: string;
    params: unknown;
};
export type ClientErrorCode = "timeout" | "disconnected" | "closed" | "token";
export type RpcParams = Record<string, unknown> | unknown[];
export type MethodHandler = (params: unknown) => unknown;
export type WebSocketLike = {
    readyState: number;
    send: (data: string) => void;
    close: (code?: number, reason?: string) => void;
    onopen: ((event: Event) => void) | null;
    onmessage: ((event: MessageEvent) => void) | null;
    onclose: ((event: CloseEvent) => void) | null;
    onerror: ((event: Event) => void) | null;
};
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;
export type Transport = "websocket" | "sse";
export type EventSourceLike = {
    onmessage: ((event: MessageEvent) => void) | null;
    onerror: ((event: Event) => void) | null;
    addEventListener: (type: string, listener: (event: MessageEvent) => void) => void;
    close: () => void;
};
export type EventSourceConstructor = new (url: string, init?: {
    withCredentials?: boolean;
}) => EventSourceLike;
export type FetchFunction = (url: string, init: {
    method: string;
    body: string;
    headers: Record<string, string>;
    credentials: "include";
    keepalive?: boolean;
}) => Promise<{
    ok: boolean;
    status: number;
}>;
export type WsHubOptions = {
    /**
     * a JWT, sent as the `tokenParam` query parameter of the URL
     */
    token?: string;
    /**
     * returns a fresh JWT: called before
     * connecting without a usable token (none, expiring, or the last one was refused or
     * expired), and before the token expires, to refresh the open session (`rpc.refresh`)
     */
    getToken?: () => string | Promise<string>;
    /**
     * query parameter of the token (the hub's
     * `auth.jwt.query_param`); default `"token"`
     */
    tokenParam?: string;
    /**
     * ms before the token's `exp` to refresh it, at
     * most half its remaining lifetime; default 10000
     */
    tokenRefreshMargin?: number;
    /**
     * subprotocol(s) offered; default `"channels.v1"`
     */
    protocol?: string | string[];
    /**
     * default `globalThis.WebSocket`
     */
    WebSocket?: WebSocketConstructor;
    /**
     * transports tried in this order when the previous one
     * fails to open; every reconnect starts again from the first. Default `["websocket", "sse"]`;
     * `"sse"` needs `fallbackUrl`
     */
    transports?: Transport[];
    /**
     * `http(s)://` URL of the hub's HTTP fallback listener
     * (`[fallback]` in its config, docs/fallback.md)
     */
    fallbackUrl?: string;
    /**
     * default `globalThis.EventSource`
     */
    EventSource?: EventSourceConstructor;
    /**
     * default `globalThis.fetch`
     */
    fetch?: FetchFunction;
    /**
     * ms before a call rejects with code `timeout`; default 10000
     */
    callTimeout?: number;
    /**
     * backoff base in ms; default 500
     */
    minReconnectDelay?: number;
    /**
     * backoff cap in ms; default 20000
     */
    maxReconnectDelay?: number;
    /**
     * uniform in [0, 1), for backoff jitter; default `Math.random`
     */
    random?: () => number;
};
export type CallOptions = {
    /**
     * overrides the hub's `callTimeout` for this call
     */
    timeout?: number;
};
export type StreamPosition = {
    offset: number;
    epoch: string;
};
export type ClientInfo = {
    user: string;
    client: string;
};
export type Publication = {
    /**
     * the concrete channel
     */
    channel: string;
    data: unknown;
    offset: number;
    epoch: string;
    /**
     * the pattern, when delivered through a pattern subscription
     */
    subscription?: string;
    /**
     * the publisher, when the namespace enables publisher info
     */
    info?: ClientInfo;
    /**
     * content type, user properties, payload format, when set
     */
    meta?: MessageMeta;
};
export type MessageMeta = {
    content_type?: string;
    /**
     * name/value pairs, in order
     */
    user_properties?: Array<[string, string]>;
    /**
     * 1: the payload is UTF-8 text
     */
    payload_format?: 0 | 1;
};
export type Member = {
    user: string;
    info: unknown;
};
export type PresenceEvent = {
    channel: string;
    member: Member;
};
export type SubscribedEvent = {
    channel: string;
    /**
     * true when every missed publication was recovered
     */
    recovered: boolean;
    /**
     * true when the subscribe asked for recovery (`since`);
     * `wasRecovering && !recovered` means publications were lost: reload the state
     */
    wasRecovering: boolean;
    /**
     * the channel's top offset
     */
    offset: number;
    epoch: string;
};
export type UnsubscribedEvent = {
    channel: string;
};
export type SubscribeOptions = {
    /**
     * join the channel's presence set
     */
    presence?: boolean;
    /**
     * presence info for this connection, e.g. `{name: "Ada"}`
     */
    info?: unknown;
    /**
     * recover from this position on the first subscribe
     */
    since?: StreamPosition;
};
export type PresenceMember = {
    user: string;
    info: unknown;
    clients: unknown;
};
export type PresenceResult = {
    /**
     * keyed by user
     */
    members: Record<string, PresenceMember>;
};
export type PresenceStats = {
    clients: number;
    users: number;
};
export type HistoryOptions = {
    limit?: number;
    since?: StreamPosition;
};
export type HistoryResult = {
    /**
     * oldest first
     */
    publications: Publication[];
    offset: number;
    epoch: string;
};
export type SubscribeResult = {
    channel: string;
    offset: number;
    epoch: string;
    recovered?: boolean;
    publications?: Publication[];
};
export type SubscriptionState = "unsubscribed" | "subscribing" | "subscribed";
export type HubEvents = {
    state: StateEvent;
    /**
     * any server notification other than message/join/leave
     */
    notification: NotificationEvent;
    /**
     * a frame from the hub that could not be understood, or a
     * token that could not be had or refreshed (code `token`)
     */
    error: WsHubError;
};
export type SubscriptionEvents = {
    message: Publication;
    join: PresenceEvent;
    leave: PresenceEvent;
    subscribed: SubscribedEvent;
    unsubscribed: UnsubscribedEvent;
    error: WsHubError;
};
export type RpcError = {
    code: number;
    message: string;
    data?: unknown;
};
export type RpcMessage = {
    id?: number | string | null;
    method?: string;
    params?: unknown;
    result?: unknown;
    error?: RpcError;
};
export type ResponseCallback = (error: WsHubError | null, result?: unknown) => void;
export type PendingCall = {
    /**
     * the encoded request
     */
    frame: string;
    sent: boolean;
    timer: ReturnType<typeof setTimeout>;
    done: ResponseCallback;
};
/**
 * Full-jitter exponential backoff: a uniformly random delay in
 * `[0, min(max, min * 2 ** attempt))`.
 * @param {number} attempt 0 for the first retry after a connection was lost
 * @param {{min: number, max: number, random?: () => number}} options
 * @returns {number} delay in milliseconds
 */
export declare function backoff(attempt: number, { min, max, random }: {
    min: number;
    max: number;
    random?: () => number;
}): number;
/** An error from the hub (numeric JSON-RPC code) or from the client (string code). */
export declare class WsHubError extends Error {
    /** @type {number | ClientErrorCode} */
    code: number | ClientErrorCode;
    /** @type {unknown} */
    data: unknown;
    /**
     * @param {string} message
     * @param {number | ClientErrorCode} code
     * @param {unknown} [data]
     */
    constructor(message: string, code: number | ClientErrorCode, data?: unknown);
}
/**
 * When a JWT expires, from its `exp` claim (read, not verified: the hub verifies).
 * @param {string} token
 * @returns {number | undefined} milliseconds since the epoch; undefined without a readable `exp`
 */
export declare function tokenExpiry(token: string): number | undefined;
/**
 * Small typed event emitter. A throwing listener does not disturb the others
 * or the client: its error is rethrown asynchronously.
 * @template {object} Events map of event name to payload
 */
declare class Emitter<Events extends object> {
    #private;
    /**
     * Add a listener.
     * @template {keyof Events} K
     * @param {K} event
     * @param {(payload: Events[K]) => void} listener
     * @returns {() => void} a function that removes the listener
     */
    on<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): () => void;
    /**
     * Remove a listener.
     * @template {keyof Events} K
     * @param {K} event
     * @param {(payload: Events[K]) => void} listener
     * @returns {void}
     */
    off<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): void;
    /**
     * @protected
     * @template {keyof Events} K
     * @param {K} event
     * @param {Events[K]} payload
     * @returns {void}
     */
    protected _emit<K extends keyof Events>(event: K, payload: Events[K]): void;
}
/**
 * One channel (or pattern) subscription. Obtain it from {@link WsHub#subscribe};
 * it resubscribes by itself after a reconnect, recovering missed publications.
 * @extends {Emitter<SubscriptionEvents>}
 */
export declare class Subscription extends Emitter<SubscriptionEvents> {
    #private;
    /** @readonly */
    channel: string;
    /** @readonly MQTT-style pattern: no presence, history or recovery */
    isPattern: boolean;
    /**
     * @param {WsHub} hub
     * @param {string} channel
     * @param {SubscribeOptions} options
     */
    constructor(hub: WsHub, channel: string, options: SubscribeOptions);
    /** @returns {SubscriptionState} */
    get state(): SubscriptionState;
    /** @returns {StreamPosition | undefined} the last position seen, for recovery */
    get position(): StreamPosition | undefined;
    /** @returns {Promise<PresenceResult>} who is in the channel */
    presence(): Promise<PresenceResult>;
    /** @returns {Promise<PresenceStats>} how many clients and users are in the channel */
    presenceStats(): Promise<PresenceStats>;
    /**
     * The channel's retained publications.
     * @param {HistoryOptions} [options]
     * @returns {Promise<HistoryResult>}
     */
    history(options?: HistoryOptions): Promise<HistoryResult>;
    /** Stop receiving; the subscription is finished and emits `unsubscribed`. */
    unsubscribe(): void;
    /**
     * The `subscribe` request's params, asking for recovery when a position is known.
     * @internal
     * @returns {Record<string, unknown>}
     */
    _subscribeParams(): Record<string, unknown>;
    /**
     * The hub answered `subscribe`: become live, then replay recovered publications.
     * @internal
     * @param {SubscribeResult} result
     * @param {boolean} wasRecovering
     */
    _subscribed(result: SubscribeResult, wasRecovering: boolean): void;
    /**
     * Deliver a publication unless already seen (same epoch, offset not newer).
     * @internal
     * @param {Publication} pub
     */
    _deliver(pub: Publication): void;
    /**
     * A join or leave notification.
     * @internal
     * @param {"join" | "leave"} kind
     * @param {PresenceEvent} event
     */
    _presence(kind: "join" | "leave", event: PresenceEvent): void;
    /**
     * The connection dropped: resubscribe on the next one.
     * @internal
     */
    _interrupted(): void;
    /**
     * Finish this subscription.
     * @internal
     * @param {WsHubError} [error] why the hub refused it
     */
    _end(error?: WsHubError): void;
}
/**
 * A connection to a wshub speaking `channels.v1`: JSON-RPC calls, pub/sub,
 * presence, history, and methods the hub may call on the client.
 * @extends {Emitter<HubEvents>}
 */
export declare class WsHub extends Emitter<HubEvents> {
    #private;
    /**
     * @param {string} url `ws://` or `wss://` URL (relative or http(s) URLs are resolved against the page)
     * @param {WsHubOptions} [options]
     */
    constructor(url: string, options?: WsHubOptions);
    /** @returns {State} */
    get state(): State;
    /** @returns {Transport | null} the transport of the open (or opening) connection */
    get transport(): Transport | null;
    /** @returns {string} the URL connected to, token included */
    get url(): string;
    /**
     * Open the connection (a no-op when open or opening). Calls and subscribes
     * connect implicitly, except after {@link WsHub#disconnect}.
     * @returns {void}
     */
    connect(): void;
    /**
     * Close the connection and stop reconnecting. Pending calls reject with code
     * `closed`; subscriptions are kept and resubscribe on the next {@link WsHub#connect}.
     * @returns {void}
     */
    disconnect(): void;
    /**
     * Call a method of the hub's RPC table.
     * @template [T=unknown]
     * @param {string} method
     * @param {RpcParams} [params] named (object) or positional (array)
     * @param {CallOptions} [options]
     * @returns {Promise<T>} the result; rejects with a {@link WsHubError}
     */
    call<T = unknown>(method: string, params?: RpcParams, options?: CallOptions): Promise<T>;
    /**
     * Publish to a channel.
     * @param {string} channel
     * @param {unknown} data any JSON value
     * @param {{meta?: MessageMeta}} [options] `meta`: the message's content type,
     *   user properties and payload format (MQTT 5 subscribers get them as properties)
     * @returns {Promise<StreamPosition>} the publication's offset and epoch
     */
    publish(channel: string, data: unknown, options?: {
        meta?: MessageMeta;
    }): Promise<StreamPosition>;
    /**
     * Subscribe to a channel or an MQTT-style pattern (`sensors/+/temp`, `chat/#`).
     * Sent now when connected, otherwise once connected.
     * @param {string} channel
     * @param {SubscribeOptions} [options]
     * @returns {Subscription}
     * @throws {Error} when this hub already has a subscription to `channel`
     */
    subscribe(channel: string, options?: SubscribeOptions): Subscription;
    /**
     * @param {string} channel
     * @returns {Subscription | undefined} the active subscription to `channel`
     */
    getSubscription(channel: string): Subscription | undefined;
    /**
     * Answer the hub's JSON-RPC requests for `method`. Requests for methods not
     * registered are answered with -32601.
     * @param {string} method
     * @param {MethodHandler} handler
     * @returns {() => void} a function that unregisters the method
     * @throws {Error} when `method` is already registered
     */
    register(method: string, handler: MethodHandler): () => void;
    /**
     * Forget a subscription; tell the hub when it is subscribed there. (One
     * whose subscribe is still in flight is undone when the result arrives.)
     * @internal
     * @param {Subscription} sub
     * @param {boolean} subscribed
     */
    _release(sub: Subscription, subscribed: boolean): void;
}
export {};
