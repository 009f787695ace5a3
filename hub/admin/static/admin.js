// The wshub admin page: polls the hub's admin methods (the server API's own,
// plus per-node counters) and draws what it gets. Plain DOM and a canvas: no
// build step, no library. Everything from the hub is inserted as text.

const POLL_MS = 1000;
const PRESENCE_MS = 2000;
const POINTS = 120; // two minutes of rates at one sample a second

/** @type {{t: number, publications: number, deliveries: number, received: number} | null} */
let last = null;
/** Rates over time, oldest first; window.adminState exposes them to tests. */
const series = { publications: /** @type {number[]} */ ([]), deliveries: /** @type {number[]} */ ([]) };
/** @type {string | null} */
let presenceChannel = null;
/** @type {any} */ (window).adminState = { series, polls: 0 };

/**
 * Call an admin method.
 * @param {string} method
 * @param {object} [params]
 */
async function api(method, params = {}) {
  const response = await fetch(`/admin/api/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(params),
    credentials: "same-origin",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
  return body.result;
}

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * A table row of text cells; numbers are right-aligned.
 * @param {(string | number)[]} cells
 */
function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    td.textContent = String(cell);
    if (typeof cell === "number") td.className = "number";
    tr.append(td);
  }
  return tr;
}

/** @param {number} seconds */
function duration(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

/** @param {string} text @param {"ok" | "error"} state */
function status(text, state) {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = state;
}

// ---------------------------------------------------------------- live figures

async function poll() {
  try {
    const [info, stats] = await Promise.all([api("info"), api("stats")]);
    showNodes(info);
    showRates(stats);
    /** @type {any} */ (window).adminState.polls += 1;
    const partial = info.partial || stats.partial ? " (some nodes did not answer)" : "";
    status(`${info.nodes.length} node(s), updated ${new Date().toLocaleTimeString()}${partial}`, "ok");
  } catch (err) {
    status(`cannot reach the hub: ${err instanceof Error ? err.message : err}`, "error");
  }
}

/** @param {{nodes: {node: string, connections: number, subscriptions: number, protocols: Record<string, number>, uptime: number}[]}} info */
function showNodes(info) {
  const body = /** @type {HTMLTableSectionElement} */ ($("nodes").querySelector("tbody"));
  body.replaceChildren(...info.nodes.map((n) => row([n.node, n.connections, n.subscriptions, duration(n.uptime)])));
  /** @type {Record<string, number>} */
  const totals = {};
  for (const node of info.nodes) {
    for (const [protocol, count] of Object.entries(node.protocols)) totals[protocol] = (totals[protocol] ?? 0) + count;
  }
  const items = Object.entries(totals).map(([protocol, count]) => {
    const li = document.createElement("li");
    li.dataset.protocol = protocol;
    const figure = document.createElement("span");
    figure.className = "figure";
    figure.textContent = String(count);
    li.append(figure, ` ${protocol}`);
    return li;
  });
  if (!items.length) {
    const li = document.createElement("li");
    li.textContent = "no connections";
    items.push(li);
  }
  $("protocols").replaceChildren(...items);
}

/** @param {{nodes: {publications: number, deliveries: number, received: number, fallback: Record<string, number>}[]}} stats */
function showRates(stats) {
  const now = performance.now() / 1000;
  const sum = (/** @type {"publications" | "deliveries" | "received"} */ key) =>
    stats.nodes.reduce((total, node) => total + node[key], 0);
  const current = { t: now, publications: sum("publications"), deliveries: sum("deliveries"), received: sum("received") };
  if (last) {
    const dt = Math.max(now - last.t, 0.001);
    // A node that restarted counts from 0 again: no negative rates.
    const rate = (/** @type {"publications" | "deliveries" | "received"} */ key) => Math.max(0, (current[key] - last[key]) / dt);
    push(series.publications, rate("publications"));
    push(series.deliveries, rate("deliveries"));
    $("rate-publications").textContent = rate("publications").toFixed(1);
    $("rate-deliveries").textContent = rate("deliveries").toFixed(1);
    $("rate-received").textContent = rate("received").toFixed(1);
    draw();
  }
  last = current;
  /** @type {Record<string, number>} */
  const fallback = {};
  for (const node of stats.nodes) {
    for (const [transport, count] of Object.entries(node.fallback)) fallback[transport] = (fallback[transport] ?? 0) + count;
  }
  for (const [transport, count] of Object.entries(fallback)) {
    const li = document.createElement("li");
    li.dataset.transport = transport;
    li.textContent = `${count} over the HTTP fallback (${transport})`;
    $("protocols").append(li);
  }
}

/** @param {number[]} values @param {number} value */
function push(values, value) {
  values.push(value);
  if (values.length > POINTS) values.shift();
}

function draw() {
  const canvas = /** @type {HTMLCanvasElement} */ ($("chart"));
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const { width, height } = canvas;
  const pad = 28;
  ctx.clearRect(0, 0, width, height);
  const top = Math.max(1, ...series.publications, ...series.deliveries) * 1.1;
  ctx.strokeStyle = "#d9dee3";
  ctx.fillStyle = "#65707c";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (const fraction of [0, 0.5, 1]) {
    const y = height - pad / 2 - fraction * (height - pad);
    ctx.beginPath();
    ctx.moveTo(pad, y);
    ctx.lineTo(width, y);
    ctx.stroke();
    ctx.fillText((top * fraction).toFixed(top * fraction < 10 ? 1 : 0), 2, y + 4);
  }
  // Deliveries first and wider: with one subscriber per channel both lines
  // coincide, and the publications line stays visible on top.
  const styles = { deliveries: ["#e07b24", 4], publications: ["#2f6fdf", 1.5] };
  for (const key of /** @type {const} */ (["deliveries", "publications"])) {
    const values = series[key];
    const [color, lineWidth] = styles[key];
    ctx.strokeStyle = /** @type {string} */ (color);
    ctx.lineWidth = /** @type {number} */ (lineWidth);
    ctx.beginPath();
    values.forEach((value, i) => {
      const x = pad + ((width - pad) * (POINTS - values.length + i)) / (POINTS - 1);
      const y = height - pad / 2 - (value / top) * (height - pad);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

// ---------------------------------------------------------------- channels, presence, history

async function showChannels() {
  const pattern = /** @type {HTMLInputElement} */ ($("channels-pattern")).value.trim();
  try {
    const result = await api("channels", pattern ? { pattern } : {});
    const rows = Object.entries(result.channels).map(([name, info]) => row([name, /** @type {any} */ (info).subscribers]));
    const body = /** @type {HTMLTableSectionElement} */ ($("channels").querySelector("tbody"));
    body.replaceChildren(...rows);
  } catch (err) {
    status(`channels: ${err instanceof Error ? err.message : err}`, "error");
  }
}

async function showPresence() {
  if (!presenceChannel) return;
  const list = $("presence-list");
  try {
    const result = await api("presence", { channel: presenceChannel });
    const members = Object.values(result.members);
    const items = members.map((member) => {
      const li = document.createElement("li");
      li.dataset.user = member.user;
      const info = member.info === null || member.info === undefined ? "" : ` ${JSON.stringify(member.info)}`;
      li.textContent = `${member.user}${info} (${member.clients} client${member.clients === 1 ? "" : "s"})`;
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li");
      li.textContent = `nobody in ${presenceChannel}`;
      items.push(li);
    }
    list.replaceChildren(...items);
  } catch (err) {
    const li = document.createElement("li");
    li.className = "error";
    li.textContent = err instanceof Error ? err.message : String(err);
    list.replaceChildren(li);
  }
}

async function showHistory() {
  const channel = /** @type {HTMLInputElement} */ ($("history-channel")).value.trim();
  const list = $("history-list");
  try {
    const result = await api("history", { channel, limit: 20, reverse: true });
    const items = result.publications.map((/** @type {any} */ publication) => {
      const li = document.createElement("li");
      li.dataset.offset = String(publication.offset);
      const code = document.createElement("code");
      code.textContent = JSON.stringify(publication.data);
      li.append(`#${publication.offset} `, code);
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li");
      li.textContent = `no publications kept for ${channel}`;
      items.push(li);
    }
    list.replaceChildren(...items);
  } catch (err) {
    const li = document.createElement("li");
    li.textContent = err instanceof Error ? err.message : String(err);
    list.replaceChildren(li);
  }
}

// ---------------------------------------------------------------- actions

/** @param {string} id @param {string} text @param {boolean} [error] */
function say(id, text, error = false) {
  const out = $(id);
  out.textContent = text;
  out.className = error ? "error" : "";
}

async function publish() {
  const channel = /** @type {HTMLInputElement} */ ($("publish-channel")).value.trim();
  let data;
  try {
    data = JSON.parse(/** @type {HTMLTextAreaElement} */ ($("publish-data")).value);
  } catch {
    say("publish-status", "the data is not JSON", true);
    return;
  }
  try {
    const result = await api("publish", { channel, data });
    say("publish-status", `published at offset ${result.offset}`);
  } catch (err) {
    say("publish-status", `refused: ${err instanceof Error ? err.message : err}`, true);
  }
}

async function disconnect() {
  const user = /** @type {HTMLInputElement} */ ($("disconnect-user")).value.trim();
  const code = Number(/** @type {HTMLInputElement} */ ($("disconnect-code")).value);
  const reason = /** @type {HTMLInputElement} */ ($("disconnect-reason")).value;
  try {
    await api("disconnect", { user, code, reason });
    say("disconnect-status", `disconnected ${user} on every node`);
  } catch (err) {
    say("disconnect-status", `refused: ${err instanceof Error ? err.message : err}`, true);
  }
}

/**
 * @param {string} id
 * @param {() => unknown} action
 */
function onSubmit(id, action) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    action();
  });
}

onSubmit("channels-form", showChannels);
onSubmit("presence-form", () => {
  presenceChannel = /** @type {HTMLInputElement} */ ($("presence-channel")).value.trim();
  showPresence();
});
onSubmit("history-form", showHistory);
onSubmit("publish-form", publish);
onSubmit("disconnect-form", disconnect);

/**
 * Run `task` now and again `every` ms after each run ends: a slow hub gets fewer
 * requests, never a pile of them (which would also queue the actions behind).
 * @param {() => Promise<unknown>} task
 * @param {number} every
 */
async function repeat(task, every) {
  for (;;) {
    await task();
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

repeat(() => Promise.all([poll(), showChannels()]), POLL_MS);
repeat(showPresence, PRESENCE_MS);
