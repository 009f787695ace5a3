// A chat room with presence on the channels.v1 protocol, using the bundled
// client served by the hub at /wshub.js.
import { WsHub } from "/wshub.js";

const params = new URLSearchParams(location.search);
const room = `chat/${params.get("room") || "lobby"}`;
const $ = (id) => document.getElementById(id);
const nameInput = $("name");
nameInput.value = params.get("name") || localStorage.getItem("wshub-chat-name") || "";

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

const members = new Map();
function renderMembers() {
  const list = $("members");
  list.replaceChildren(
    ...[...members.values()]
      .map((m) => String(m.info?.name || m.user))
      .sort((a, b) => a.localeCompare(b))
      .map((name) => {
        const li = document.createElement("li");
        li.textContent = name;
        return li;
      }),
  );
  $("count").textContent = String(members.size);
}

let sub = null;
let joinedAs = null;
function join(name) {
  if (sub) sub.unsubscribe();
  joinedAs = name;
  const current = hub.subscribe(room, { presence: true, info: { name } });
  sub = current;
  current.on("message", (pub) => {
    const data = pub.data ?? {};
    const li = line([text(String(data.name || "someone"), "who"), text(String(data.text ?? JSON.stringify(pub.data)))]);
    li.dataset.offset = String(pub.offset);
  });
  current.on("join", ({ member }) => {
    members.set(member.user, member);
    renderMembers();
    line([text(`${member.info?.name || member.user} joined`)], "system");
  });
  current.on("leave", ({ member }) => {
    members.delete(member.user);
    renderMembers();
    line([text(`${member.info?.name || member.user} left`)], "system");
  });
  current.on("subscribed", async ({ recovered, wasRecovering }) => {
    // Only a resubscribe after a reconnect can miss messages; a first join has nothing to recover.
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
  });
  current.on("error", (err) => line([text(`error: ${err.message}`)], "system"));
}

$("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = nameInput.value.trim();
  const body = $("text").value.trim();
  if (!name || !body) return;
  localStorage.setItem("wshub-chat-name", name);
  if (joinedAs !== name) join(name);
  $("text").value = "";
  try {
    await hub.publish(room, { name, text: body });
  } catch (err) {
    line([text(`not sent: ${err.message}`)], "system");
  }
});

// Connect right away, so the status shows whether the hub is reachable before anyone joins.
hub.connect();
if (nameInput.value) join(nameInput.value);
else {
  line([text("Pick a name and say something to join the room.")], "system");
  nameInput.focus();
}
window.wshubChat = { hub, room };
