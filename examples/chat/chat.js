// A chat room with presence on the channels.v1 protocol, using the bundled
// client served by the hub at /wshub.js.
import { WsHub } from "/wshub.js";

const params = new URLSearchParams(location.search);
const room = `chat/${params.get("room") || "lobby"}`;
const $ = (id) => document.getElementById(id);
const nameInput = $("name");
nameInput.value = params.get("name") || localStorage.getItem("wshub-chat-name") || "";

const scheme = location.protocol === "https:" ? "wss" : "ws";
const hub = new WsHub(`${scheme}://${location.host}/`);
hub.on("state", ({ state }) => {
  $("state").textContent = state;
  $("state").dataset.state = state;
});

function line(html, cls) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  li.append(...html);
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
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
    ...[...members.values()].map((m) => {
      const li = document.createElement("li");
      li.textContent = m.info?.name || m.user;
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
  sub = hub.subscribe(room, { presence: true, info: { name } });
  sub.on("message", (pub) => {
    const li = line([text(pub.data.name || "someone", "who"), text(pub.data.text)]);
    li.dataset.offset = String(pub.offset);
  });
  sub.on("join", ({ member }) => {
    members.set(member.user, member);
    renderMembers();
    line([text(`${member.info?.name || member.user} joined`)], "system");
  });
  sub.on("leave", ({ member }) => {
    members.delete(member.user);
    renderMembers();
    line([text(`${member.info?.name || member.user} left`)], "system");
  });
  sub.on("subscribed", async ({ recovered }) => {
    if (recovered === false) line([text("some messages could not be recovered")], "system");
    const result = await sub.presence();
    members.clear();
    for (const [user, member] of Object.entries(result.members)) members.set(user, member);
    renderMembers();
  });
  sub.on("error", (err) => line([text(`error: ${err.message}`)], "system"));
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

if (nameInput.value) join(nameInput.value);
window.wshubChat = { hub, room };
