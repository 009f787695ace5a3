import assert from "node:assert/strict";
import { test } from "node:test";

import { connected, flush, setup } from "./fake-websocket.js";

const EPOCH = "e1";

/** A publication as the hub sends it. */
function pub(channel, offset, data = { n: offset }, epoch = EPOCH) {
  return { channel, data, offset, epoch };
}

/** Record every event of a subscription as [name, payload]. */
function record(sub) {
  const events = [];
  for (const name of ["message", "join", "leave", "subscribed", "unsubscribed", "error"]) {
    sub.on(name, (payload) => events.push([name, payload]));
  }
  return events;
}

/** The messages' offsets among recorded events. */
function offsets(events) {
  return events.filter(([name]) => name === "message").map(([, p]) => p.offset);
}

/** Subscribe on an open connection and answer the subscribe. */
function subscribed(hub, ws, channel, { offset = 0, epoch = EPOCH, options } = {}) {
  const sub = hub.subscribe(channel, options);
  const events = record(sub);
  ws.reply("subscribe", { channel, offset, epoch });
  return { sub, events };
}

/** Drop the connection, let the backoff timer fire and open the next one. */
function reconnect(t, ws, FakeWebSocket) {
  ws.drop();
  t.mock.timers.tick(20000);
  const next = FakeWebSocket.last;
  assert.notEqual(next, ws, "a new socket was opened");
  next.open();
  return next;
}

test("subscribe sends channel, presence and info, then emits subscribed with the result", async () => {
  const { hub, ws } = await connected();
  const sub = hub.subscribe("chat/lobby", { presence: true, info: { name: "Ada" } });
  const events = record(sub);
  assert.equal(sub.state, "subscribing");
  assert.deepEqual(ws.request("subscribe").params, { channel: "chat/lobby", presence: true, info: { name: "Ada" } });
  ws.reply("subscribe", { channel: "chat/lobby", offset: 4, epoch: EPOCH });
  assert.equal(sub.state, "subscribed");
  assert.deepEqual(events, [
    ["subscribed", { channel: "chat/lobby", recovered: false, wasRecovering: false, offset: 4, epoch: EPOCH }],
  ]);
  assert.deepEqual(sub.position, { offset: 4, epoch: EPOCH });
  assert.equal(hub.getSubscription("chat/lobby"), sub);
  hub.disconnect();
});

test("message notifications are routed to the subscription of their channel", async () => {
  const { hub, ws } = await connected();
  const lobby = subscribed(hub, ws, "chat/lobby");
  const other = subscribed(hub, ws, "chat/other");
  ws.notify("message", pub("chat/lobby", 1, { text: "hi" }));
  ws.notify("message", pub("chat/nobody", 1)); // no such subscription: ignored
  assert.deepEqual(lobby.events.slice(1), [["message", pub("chat/lobby", 1, { text: "hi" })]]);
  assert.deepEqual(other.events.slice(1), []);
  hub.disconnect();
});

test("a message carrying publisher info is delivered with it", async () => {
  const { hub, ws } = await connected();
  const { events } = subscribed(hub, ws, "chat/lobby");
  const message = { ...pub("chat/lobby", 1), info: { user: "ada", client: "c1" } };
  ws.notify("message", message);
  assert.deepEqual(events.at(-1), ["message", message]);
  hub.disconnect();
});

test("messages of a pattern subscription are routed by their subscription param", async () => {
  const { hub, ws } = await connected();
  const pattern = subscribed(hub, ws, "sensors/+/temp", { options: {} });
  const exact = subscribed(hub, ws, "sensors/kitchen/temp");
  assert.equal(pattern.sub.isPattern, true);
  assert.equal(exact.sub.isPattern, false);
  const viaPattern = { ...pub("sensors/kitchen/temp", 7), subscription: "sensors/+/temp" };
  ws.notify("message", viaPattern);
  ws.notify("message", pub("sensors/kitchen/temp", 7));
  assert.deepEqual(pattern.events.slice(1), [["message", viaPattern]]);
  assert.deepEqual(exact.events.slice(1), [["message", pub("sensors/kitchen/temp", 7)]]);
  hub.disconnect();
});

test("a pattern subscription does not deduplicate offsets of different channels", async () => {
  const { hub, ws } = await connected();
  const { events } = subscribed(hub, ws, "chat/#");
  ws.notify("message", { ...pub("chat/a", 5), subscription: "chat/#" });
  ws.notify("message", { ...pub("chat/b", 1), subscription: "chat/#" });
  assert.deepEqual(offsets(events), [5, 1]);
  assert.equal(events[0][1].offset, 0);
  hub.disconnect();
});

test("join and leave notifications reach the channel's subscription", async () => {
  const { hub, ws } = await connected();
  const { events } = subscribed(hub, ws, "chat/lobby", { options: { presence: true } });
  const member = { user: "ada", info: { name: "Ada" } };
  ws.notify("join", { channel: "chat/lobby", member });
  ws.notify("leave", { channel: "chat/lobby", member });
  ws.notify("join", { channel: "chat/elsewhere", member });
  assert.deepEqual(events.slice(1), [
    ["join", { channel: "chat/lobby", member }],
    ["leave", { channel: "chat/lobby", member }],
  ]);
  hub.disconnect();
});

test("presence, presenceStats and history call the hub's methods for the channel", async () => {
  const { hub, ws } = await connected();
  const { sub } = subscribed(hub, ws, "chat/lobby");

  const presence = sub.presence();
  assert.deepEqual(ws.request("presence").params, { channel: "chat/lobby" });
  const members = { ada: { user: "ada", info: { name: "Ada" }, clients: 2 } };
  ws.reply("presence", { members });
  assert.deepEqual(await presence, { members });

  const stats = sub.presenceStats();
  assert.deepEqual(ws.request("presence_stats").params, { channel: "chat/lobby" });
  ws.reply("presence_stats", { clients: 2, users: 1 });
  assert.deepEqual(await stats, { clients: 2, users: 1 });

  const history = sub.history({ limit: 2 });
  assert.deepEqual(ws.request("history").params, { channel: "chat/lobby", limit: 2 });
  const result = { publications: [pub("chat/lobby", 3), pub("chat/lobby", 4)], offset: 4, epoch: EPOCH };
  ws.reply("history", result);
  assert.deepEqual(await history, result);
  hub.disconnect();
});

test("a presence error from the hub rejects with its code", async () => {
  const { hub, ws } = await connected();
  const { sub } = subscribed(hub, ws, "chat/lobby");
  const presence = sub.presence();
  ws.replyError("presence", { code: -32014, message: "presence disabled" });
  await assert.rejects(presence, { code: -32014, message: "presence disabled" });
  hub.disconnect();
});

test("publish sends channel and data and resolves with offset and epoch", async () => {
  const { hub, ws } = await connected();
  const published = hub.publish("chat/lobby", { text: "hi" });
  assert.deepEqual(ws.request("publish").params, { channel: "chat/lobby", data: { text: "hi" } });
  ws.reply("publish", { offset: 8, epoch: EPOCH });
  assert.deepEqual(await published, { offset: 8, epoch: EPOCH });
  hub.disconnect();
});

test("publish with meta sends it along", async () => {
  const { hub, ws } = await connected();
  const meta = { content_type: "text/plain", user_properties: [["unit", "C"]], payload_format: 1 };
  const published = hub.publish("sensors/hall", "21", { meta });
  assert.deepEqual(ws.request("publish").params, { channel: "sensors/hall", data: "21", meta });
  ws.reply("publish", { offset: 1, epoch: EPOCH });
  await published;
  hub.disconnect();
});

test("a refused subscribe emits error and unsubscribed, and the channel can be subscribed again", async () => {
  const { hub, ws } = await connected();
  const sub = hub.subscribe("admin/secrets");
  const events = record(sub);
  ws.replyError("subscribe", { code: -32011, message: "permission denied" });
  assert.equal(sub.state, "unsubscribed");
  assert.deepEqual(
    events.map(([name, p]) => [name, p.code ?? p.channel]),
    [
      ["error", -32011],
      ["unsubscribed", "admin/secrets"],
    ],
  );
  assert.equal(hub.getSubscription("admin/secrets"), undefined);
  hub.subscribe("admin/secrets");
  assert.equal(ws.requests("subscribe").length, 2);
  hub.disconnect();
});

test("subscribing twice to the same channel throws", async () => {
  const { hub } = await setup();
  hub.subscribe("chat/lobby");
  assert.throws(() => hub.subscribe("chat/lobby"), /already subscribed/);
  hub.disconnect();
});

test("unsubscribe sends unsubscribe, emits unsubscribed and stops delivery", async () => {
  const { hub, ws } = await connected();
  const { sub, events } = subscribed(hub, ws, "chat/lobby");
  sub.unsubscribe();
  sub.unsubscribe(); // a no-op
  assert.equal(sub.state, "unsubscribed");
  assert.deepEqual(ws.requests("unsubscribe").map((r) => r.params), [{ channel: "chat/lobby" }]);
  ws.notify("message", pub("chat/lobby", 1));
  assert.deepEqual(events.slice(1), [["unsubscribed", { channel: "chat/lobby" }]]);
  assert.equal(hub.getSubscription("chat/lobby"), undefined);
  hub.disconnect();
});

test("unsubscribe while the subscribe is in flight undoes it at the hub once it succeeds", async () => {
  const { hub, ws } = await connected();
  const sub = hub.subscribe("chat/lobby");
  const events = record(sub);
  sub.unsubscribe();
  assert.deepEqual(ws.requests("unsubscribe"), []);
  ws.reply("subscribe", { channel: "chat/lobby", offset: 0, epoch: EPOCH });
  assert.deepEqual(ws.request("unsubscribe").params, { channel: "chat/lobby" });
  assert.deepEqual(events, [["unsubscribed", { channel: "chat/lobby" }]]);
  hub.disconnect();
});

test("re-subscribing right after unsubscribing waits for the hub to finish the unsubscribe", async () => {
  const { hub, ws } = await connected();
  hub.subscribe("chat/lobby").unsubscribe(); // e.g. a component mounted twice
  const again = hub.subscribe("chat/lobby");
  assert.equal(ws.requests("subscribe").length, 1, "second subscribe held back");
  ws.reply("subscribe", { channel: "chat/lobby", offset: 0, epoch: EPOCH });
  assert.equal(ws.requests("subscribe").length, 1, "still held back during the unsubscribe");
  ws.reply("unsubscribe", {});
  assert.equal(ws.requests("subscribe").length, 2);
  ws.reply("subscribe", { channel: "chat/lobby", offset: 0, epoch: EPOCH });
  assert.equal(again.state, "subscribed");
  hub.disconnect();
});

test("subscriptions made before connecting are sent once connected, before queued calls", async () => {
  const { hub, FakeWebSocket } = await setup();
  const sub = hub.subscribe("chat/lobby", { presence: true });
  hub.publish("chat/lobby", { text: "hi" }).catch(() => {});
  assert.equal(hub.state, "connecting", "subscribe connects implicitly");
  const ws = FakeWebSocket.last;
  ws.open();
  assert.deepEqual(
    ws.sent.map((f) => f.method),
    ["subscribe", "publish"],
  );
  ws.reply("subscribe", { channel: "chat/lobby", offset: 0, epoch: EPOCH });
  assert.equal(sub.state, "subscribed");
  hub.disconnect();
});

test("subscriptions made after disconnect() wait for connect()", async () => {
  const { hub, ws, FakeWebSocket } = await connected();
  hub.disconnect();
  const sub = hub.subscribe("chat/lobby");
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.deepEqual(ws.requests("subscribe"), []);
  hub.connect();
  FakeWebSocket.last.open();
  assert.equal(FakeWebSocket.last.request("subscribe").params.channel, "chat/lobby");
  assert.equal(sub.state, "subscribing");
  hub.disconnect();
});

test("after a reconnect a subscription resubscribes with since = the last message seen", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected();
  const { sub } = subscribed(hub, ws, "chat/lobby", { offset: 3, options: { presence: true, info: { name: "Ada" } } });
  ws.notify("message", pub("chat/lobby", 4));
  ws.notify("message", pub("chat/lobby", 5));
  const next = reconnect(t, ws, FakeWebSocket);
  assert.equal(sub.state, "subscribing");
  assert.deepEqual(next.request("subscribe").params, {
    channel: "chat/lobby",
    presence: true,
    info: { name: "Ada" },
    since: { offset: 5, epoch: EPOCH },
  });
  hub.disconnect();
});

test("without any message, the resubscribe uses the position from the subscribe result", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected();
  subscribed(hub, ws, "chat/lobby", { offset: 12 });
  const next = reconnect(t, ws, FakeWebSocket);
  assert.deepEqual(next.request("subscribe").params.since, { offset: 12, epoch: EPOCH });
  hub.disconnect();
});

test("a subscription never confirmed resubscribes without since", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected();
  hub.subscribe("chat/lobby");
  const next = reconnect(t, ws, FakeWebSocket);
  assert.deepEqual(next.request("subscribe").params, { channel: "chat/lobby" });
  hub.disconnect();
});

test("recovered publications are delivered in order before live ones, without duplicates", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected();
  const { sub, events } = subscribed(hub, ws, "chat/lobby", { offset: 3 });
  ws.notify("message", pub("chat/lobby", 4));
  const next = reconnect(t, ws, FakeWebSocket);
  // The hub's reply repeats offset 4, which was already seen before the drop.
  next.reply("subscribe", {
    channel: "chat/lobby",
    offset: 7,
    epoch: EPOCH,
    recovered: true,
    publications: [pub("chat/lobby", 4), pub("chat/lobby", 5), pub("chat/lobby", 6), pub("chat/lobby", 7)],
  });
  next.notify("message", pub("chat/lobby", 7)); // a duplicate of a recovered one
  next.notify("message", pub("chat/lobby", 8));
  assert.deepEqual(offsets(events), [4, 5, 6, 7, 8]);
  const resubscribed = events.filter(([name]) => name === "subscribed").at(-1)[1];
  assert.deepEqual(resubscribed, { channel: "chat/lobby", recovered: true, wasRecovering: true, offset: 7, epoch: EPOCH });
  assert.deepEqual(sub.position, { offset: 8, epoch: EPOCH });
  hub.disconnect();
});

test("recovered: false is surfaced on subscribed and the stream continues from the new top", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected();
  const { sub, events } = subscribed(hub, ws, "chat/lobby", { offset: 40 });
  const next = reconnect(t, ws, FakeWebSocket);
  // The hub restarted: new epoch, offsets start again.
  next.reply("subscribe", { channel: "chat/lobby", offset: 2, epoch: "e2", recovered: false, publications: [] });
  next.notify("message", pub("chat/lobby", 3, {}, "e2"));
  assert.deepEqual(events.slice(1), [
    ["subscribed", { channel: "chat/lobby", recovered: false, wasRecovering: true, offset: 2, epoch: "e2" }],
    ["message", pub("chat/lobby", 3, {}, "e2")],
  ]);
  assert.deepEqual(sub.position, { offset: 3, epoch: "e2" });
  hub.disconnect();
});

test("subscribe with a since option asks the hub to recover from it on the first subscribe", async () => {
  const { hub, ws } = await connected();
  const sub = hub.subscribe("chat/lobby", { since: { offset: 10, epoch: EPOCH } });
  const events = record(sub);
  assert.deepEqual(ws.request("subscribe").params.since, { offset: 10, epoch: EPOCH });
  ws.reply("subscribe", { channel: "chat/lobby", offset: 11, epoch: EPOCH, recovered: true, publications: [pub("chat/lobby", 11)] });
  assert.deepEqual(events.map(([name]) => name), ["subscribed", "message"]);
  assert.equal(events[0][1].recovered, true);
  hub.disconnect();
});

test("pattern subscriptions resubscribe without since after a reconnect", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected();
  const { events } = subscribed(hub, ws, "sensors/#");
  ws.notify("message", { ...pub("sensors/a", 9), subscription: "sensors/#" });
  const next = reconnect(t, ws, FakeWebSocket);
  assert.deepEqual(next.request("subscribe").params, { channel: "sensors/#" });
  next.reply("subscribe", { channel: "sensors/#", offset: 0, epoch: "" });
  assert.deepEqual(events.at(-1), [
    "subscribed",
    { channel: "sensors/#", recovered: false, wasRecovering: false, offset: 0, epoch: "" },
  ]);
  hub.disconnect();
});

test("every active subscription is resubscribed after a reconnect", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected();
  subscribed(hub, ws, "a");
  subscribed(hub, ws, "b");
  subscribed(hub, ws, "c").sub.unsubscribe();
  const next = reconnect(t, ws, FakeWebSocket);
  assert.deepEqual(next.requests("subscribe").map((r) => r.params.channel), ["a", "b"]);
  hub.disconnect();
});

test("a subscribe the hub does not answer in time forces a reconnect that resubscribes", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected({ callTimeout: 1000, random: () => 1, minReconnectDelay: 100 });
  const sub = hub.subscribe("chat/lobby");
  t.mock.timers.tick(1000);
  assert.equal(hub.state, "disconnected");
  assert.deepEqual(ws.closeCalls, [{ code: 1000, reason: "subscribe timeout" }]);
  t.mock.timers.tick(100);
  FakeWebSocket.last.open();
  FakeWebSocket.last.reply("subscribe", { channel: "chat/lobby", offset: 0, epoch: EPOCH });
  assert.equal(sub.state, "subscribed");
  hub.disconnect();
});

test("messages are not delivered between a drop and the new subscribe result", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { hub, ws, FakeWebSocket } = await connected();
  const { events } = subscribed(hub, ws, "chat/lobby");
  const next = reconnect(t, ws, FakeWebSocket);
  next.notify("message", pub("chat/lobby", 1));
  await flush();
  assert.deepEqual(offsets(events), []);
  hub.disconnect();
});
