// A chat room with presence on the channels.v1 protocol, using the bundled
// client served by the hub at /wshub.js.
//
// Opening the page reads the room: the recent messages the hub keeps (history),
// then live ones, and who is here. Picking a name joins the room's presence at
// once, before any message. The name is kept per tab (sessionStorage): two tabs
// are two people unless they pick the same name, and people are listed by name.
import { WsHub } from "/wshub.js";

const params = new URLSearchParams(location.search);
const room = `chat/${params.get("room") || "lobby"}`;
const BACKLOG = 50; // recent messages shown to someone who just arrived
const NAME_KEY = "wshub-chat-name";
const $ = (id) => document.getElementById(id);
const nameInput = $("name");
nameInput.value = params.get("name") || sessionStorage.getItem(NAME_KEY) || "";

const scheme = location.protocol === "https:" ? "wss" : "ws";
// ?reconnect=<ms>: retry at least that often after losing the hub (the
// client's default backoff grows to 20 s); the end-to-end test uses it.
const reconnect = Number(params.get("reconnect")) || undefined;
const hub = new WsHub(`${scheme}://${location.host}/`, {
  maxReconnectDelay: reconnect,
  minReconnectDelay: reconnect && Math.min(500, reconnect),
});
let lost = false;
hub.on("state", ({ state, previous }) => {
  $("state").textContent = state;
  $("state").dataset.state = state;
  // Who is here is unknown while away: dim the list until the resubscribe refreshes it.
  $("presence").classList.toggle("stale", state !== "connected");
  if (state === "disconnected" && previous === "connected") {
    lost = true;
    line([text("connection lost, reconnecting…")], "system");
  } else if (state === "connected" && lost) {
    lost = false;
    line([text("reconnected")], "system");
  }
});

function line(html, cls) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  li.append(...html);
  const list = $("messages");
  // Follow the conversation unless the reader scrolled up to read older lines.
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
  return li;
}

function text(value, cls) {
  const span = document.createElement("span");
  span.textContent = value;
  if (cls) span.className = cls;
  return span;
}

function message(pub) {
  const data = pub.data ?? {};
  const li = line([text(String(data.name || "someone"), "who"), text(String(data.text ?? JSON.stringify(pub.data)))]);
  li.dataset.offset = String(pub.offset);
}

// Connections in the room by user; a person is a name (several tabs may share one).
const members = new Map();
const displayName = (member) => String(member.info?.name || member.user);
const people = () => new Set([...members.values()].map(displayName));
function renderMembers() {
  const names = [...people()].sort((a, b) => a.localeCompare(b));
  $("members").replaceChildren(
    ...names.map((name) => {
      const li = document.createElement("li");
      li.textContent = name;
      return li;
    }),
  );
  $("count").textContent = String(names.length);
}

let sub = null;
let joinedAs = null;
let hint = null;
let started = false; // the first subscribe waits for the backlog (start below)

/**
 * Subscribe to the room, as a reader (no name) or as `name` in its presence.
 * A rename or a join after reading resubscribes from the last position seen,
 * so no message is lost or shown twice.
 */
function subscribe(name, since) {
  const previous = sub;
  if (previous) {
    since = previous.position;
    previous.unsubscribe();
  }
  joinedAs = name;
  const current = hub.subscribe(room, name ? { presence: true, info: { name }, since } : { since });
  sub = current;
  current.on("message", message);
  current.on("join", ({ member }) => {
    const known = people().has(displayName(member));
    members.set(member.user, member);
    renderMembers();
    if (!known) line([text(`${displayName(member)} joined`)], "system");
  });
  current.on("leave", ({ member }) => {
    members.delete(member.user);
    renderMembers();
    if (!people().has(displayName(member))) line([text(`${displayName(member)} left`)], "system");
  });
  current.on("subscribed", async ({ recovered, wasRecovering }) => {
    if (wasRecovering && !recovered) line([text("some messages could not be recovered")], "system");
    try {
      const result = await current.presence();
      if (sub !== current) return; // renamed meanwhile
      members.clear();
      for (const [user, member] of Object.entries(result.members)) members.set(user, member);
      renderMembers();
    } catch {
      // Disconnected meanwhile: the next resubscribe asks again.
    }
    // For the console and the end-to-end test: the room is read (or joined) from here on.
    window.wshubChat ??= { hub, room };
  });
  current.on("error", (err) => line([text(`error: ${err.message}`)], "system"));
  if (name && hint) {
    hint.remove();
    hint = null;
  }
}

/** Join (or rename) as the name in the field; false when it is empty. */
function join() {
  const name = nameInput.value.trim();
  if (!name) return false;
  sessionStorage.setItem(NAME_KEY, name);
  // Before the backlog is in, start() subscribes with the name in the field.
  if (started && joinedAs !== name) subscribe(name);
  return true;
}

$("who").addEventListener("submit", (event) => {
  event.preventDefault();
  if (join()) $("text").focus();
});

$("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = $("text").value.trim();
  if (!body) return;
  if (!join()) {
    nameInput.focus();
    return;
  }
  $("text").value = "";
  try {
    await hub.publish(room, { name: nameInput.value.trim(), text: body });
  } catch (err) {
    line([text(`not sent: ${err.message}`)], "system");
  }
});

/** Show the recent messages the hub keeps, then follow the room from there on. */
async function start() {
  hub.connect(); // right away, so the status shows whether the hub is reachable
  let since;
  try {
    const backlog = await hub.call("history", { channel: room, limit: BACKLOG });
    for (const pub of backlog.publications) message(pub);
    since = { offset: backlog.offset, epoch: backlog.epoch };
  } catch {
    // No history here (refused, disabled, hub away): live messages only.
  }
  started = true;
  const name = nameInput.value.trim();
  if (name) {
    sessionStorage.setItem(NAME_KEY, name);
  } else {
    hint = line([text("Pick a name and join: the others see you here right away.")], "system hint");
    nameInput.focus();
  }
  subscribe(name || null, since);
}

start();
