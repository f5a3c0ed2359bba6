// The flock-rs dashboard: reads the JSON API and the live event stream
// (/api/v1/events, Server-Sent Events read with fetch so the bearer token travels
// in a header), and draws batches filling, the flush history, agents, joins,
// failed runs and an artifact search. No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { batches: [], fetchedAt: 0, flushes: [], token: null };

// === the token ===

function loadToken() {
  const fragment = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fragment) {
    sessionStorage.setItem("flock-token", fragment);
    history.replaceState(null, "", location.pathname);
  }
  state.token = sessionStorage.getItem("flock-token");
}

function headers() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (response.status === 401) {
    $("login").hidden = false;
    throw new Error("a bearer token is needed");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showError(error) {
  $("error").hidden = !error;
  $("error").textContent = error ? String(error.message || error) : "";
}

// === formatting ===

const text = (value) => document.createTextNode(value == null ? "" : String(value));
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child instanceof Node ? child : text(child));
  return node;
}
const seconds = (ms) => (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + " s";
const clock = (iso) => new Date(iso).toLocaleTimeString();
const batchId = (b) => [b.agent, b.subscription_index, b.key || ""].join("\u0000");

// === batches ===

async function refreshBatches() {
  const { batches } = await api("/api/v1/batches");
  state.batches = batches;
  state.fetchedAt = performance.now();
  drawBatches();
}

function drawBatches() {
  const root = $("batches");
  root.replaceChildren();
  if (!state.batches.length) {
    root.append(el("p", { class: "empty" }, "No batch is collecting."));
  }
  const elapsed = performance.now() - state.fetchedAt;
  let waiting = 0;
  for (const b of state.batches) {
    waiting += b.items;
    const pct = b.target_size ? Math.min(100, (100 * b.items) / b.target_size) : 100;
    const left = b.time_left_ms == null ? null : Math.max(0, b.time_left_ms - elapsed);
    const timePct = b.timeout_ms && left != null ? (100 * (b.timeout_ms - left)) / b.timeout_ms : null;
    const label = b.key ? `${b.agent} [${b.key}]` : b.agent;
    root.append(
      el("div", { class: "batch", "data-agent": b.agent, "data-items": b.items, "data-target": b.target_size ?? "" },
        el("div", { class: "name", title: label }, label, " ", el("small", {}, "#" + b.subscription_index)),
        el("div", { class: "bar", title: timePct == null ? "" : `timeout ${Math.round(timePct)}% elapsed` },
          el("div", { class: "fill", style: `width:${pct}%` })),
        el("div", { class: "count" }, b.target_size ? `${b.items} / ${b.target_size}` : `${b.items}`),
        el("div", { class: "left" + (left != null && left < 2000 ? " soon" : "") },
          left == null ? "no timeout" : seconds(left) + " left")));
  }
  $("total-waiting").textContent = waiting;
}

function onItemAdded(e) {
  const id = batchId(e);
  let batch = state.batches.find((b) => batchId(b) === id);
  const elapsed = performance.now() - state.fetchedAt;
  if (!batch) {
    batch = { agent: e.agent, subscription_index: e.subscription_index, key: e.key,
      target_size: e.target, timeout_ms: e.time_left_ms, items: 0 };
    state.batches.push(batch);
  }
  batch.items = e.collected;
  // Stored relative to the last fetch, as the countdown computes.
  batch.time_left_ms = e.time_left_ms == null ? null : e.time_left_ms + elapsed;
  if (e.target != null && e.collected >= e.target) {
    state.batches = state.batches.filter((b) => b !== batch);
  }
  drawBatches();
}

// === flushes ===

async function refreshFlushes() {
  const { flushes } = await api("/api/v1/flushes?limit=500");
  state.flushes = flushes.reverse();
  drawFlushes();
}

function onFlushed(e) {
  state.batches = state.batches.filter((b) => batchId(b) !== batchId(e));
  drawBatches();
  // The history (with its sequence numbers) is the server's: fetch it again.
  scheduleRefresh("flushes");
}

function drawFlushes() {
  const flushes = state.flushes;
  $("total-flushes").textContent = flushes.length ? flushes[flushes.length - 1].seq : 0;
  const body = $("flushes").tBodies[0];
  body.replaceChildren();
  for (const f of flushes.slice(-12).reverse()) {
    body.append(el("tr", { "data-reason": f.reason, "data-size": f.size },
      el("td", {}, clock(f.at)), el("td", {}, f.agent), el("td", {}, f.key || ""),
      el("td", {}, el("span", { class: "reason " + f.reason }, f.reason)),
      el("td", {}, f.size), el("td", {}, Math.round(f.efficiency * 100) + "%"),
      el("td", {}, seconds(f.wait_ms))));
  }
  drawChart(flushes.slice(-120));
}

function drawChart(flushes) {
  const svg = $("chart");
  const ns = "http://www.w3.org/2000/svg";
  const W = 1000, H = 200, pad = 28;
  svg.replaceChildren();
  const node = (tag, attrs, content) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (content != null) n.textContent = content;
    svg.append(n);
    return n;
  };
  node("line", { class: "axis", x1: pad, y1: H - pad, x2: W, y2: H - pad });
  node("line", { class: "axis", x1: pad, y1: 0, x2: pad, y2: H - pad });
  if (!flushes.length) {
    node("text", { x: W / 2 - 40, y: H / 2 }, "no flush yet");
    return;
  }
  const max = Math.max(...flushes.map((f) => f.size), 1);
  const t0 = Date.parse(flushes[0].at), t1 = Date.parse(flushes[flushes.length - 1].at);
  const span = Math.max(t1 - t0, 1);
  const x = (f) => (flushes.length === 1 ? (W + pad) / 2 : pad + 8 + ((W - pad - 16) * (Date.parse(f.at) - t0)) / span);
  const y = (size) => H - pad - ((H - pad - 10) * size) / max;
  node("text", { x: 2, y: 12 }, max);
  node("text", { x: 2, y: H - pad }, 0);
  node("text", { x: pad + 4, y: H - 8 }, clock(flushes[0].at));
  node("text", { x: W - 70, y: H - 8 }, clock(flushes[flushes.length - 1].at));
  const colour = { size: "var(--size)", timeout: "var(--timeout)", manual: "var(--manual)", shutdown: "var(--shutdown)" };
  for (const f of flushes) {
    const cx = x(f);
    node("line", { x1: cx, y1: H - pad, x2: cx, y2: y(f.size), stroke: colour[f.reason] || "#888", "stroke-width": 3 });
    const dot = node("circle", { class: "flush", cx, cy: y(f.size), r: 4, fill: colour[f.reason] || "#888", "data-reason": f.reason });
    const title = document.createElementNS(ns, "title");
    title.textContent = `${f.agent}: ${f.size} items, ${f.reason}, waited ${seconds(f.wait_ms)}`;
    dot.append(title);
  }
}

// === agents, joins, failed runs, artifacts ===

async function refreshAgents() {
  const { agents } = await api("/api/v1/agents");
  $("agents").replaceChildren(...agents.map((a) => el("div", { class: "agent", "data-agent": a.name },
    el("b", {}, a.name), a.description ? el("span", { class: "desc" }, " \u2014 " + a.description) : "",
    ...a.subscriptions.map((s) => el("div", { class: "sub" },
      `${s.types.join(" + ")} \u00b7 ${s.mode}` +
      (s.batch ? ` \u00b7 size ${s.batch.size ?? "\u221e"}, timeout ${s.batch.timeout_ms == null ? "none" : seconds(s.batch.timeout_ms)}` : "") +
      (s.keyed ? " \u00b7 keyed" : "") + (s.join_window ? ` \u00b7 within ${s.join_window}` : ""))),
    a.outputs.length ? el("div", { class: "sub" }, "\u2192 " + a.outputs.join(", ")) : "")));
}

async function refreshJoins() {
  const { joins } = await api("/api/v1/joins");
  const root = $("joins");
  if (!joins.length) return root.replaceChildren(el("p", { class: "empty" }, "No join group is waiting."));
  const list = (xs) => xs.map((t) => `${t.type}${t.count > 1 ? " \u00d7" + t.count : ""}`).join(", ");
  root.replaceChildren(...joins.map((j) => el("div", { class: "join" },
    el("b", {}, j.agent), ` key ${j.key}: has ${list(j.present) || "\u2014"}; `,
    el("span", { class: "missing" }, "missing " + list(j.missing)),
    j.window_left_ms != null ? ` \u00b7 ${seconds(j.window_left_ms)} left` : "",
    j.artifacts_left != null ? ` \u00b7 ${j.artifacts_left} artifacts left` : "")));
}

async function refreshFailed() {
  const { failed_runs: runs } = await api("/api/v1/failed-runs");
  $("total-failed").textContent = runs.length;
  const root = $("failed");
  if (!runs.length) return root.replaceChildren(el("p", { class: "empty" }, "No failed run."));
  root.replaceChildren(...runs.map((r) => {
    const retry = el("button", { type: "button" }, "Retry");
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      try { await api(`/api/v1/failed-runs/${r.id}/retry`, { method: "POST" }); showError(null); }
      catch (error) { showError(error); }
      scheduleRefresh("failed");
    });
    return el("div", { class: "failed", "data-id": r.id },
      el("b", {}, r.agent), ` \u00b7 ${r.inputs.length} input(s)`,
      r.flush_reason ? ` \u00b7 batch (${r.flush_reason})` : "", " ", retry,
      el("div", { class: "err" }, r.error));
  }));
}

async function searchArtifacts(event) {
  if (event) event.preventDefault();
  const params = new URLSearchParams({ limit: "20" });
  if ($("q").value) params.set("q", $("q").value);
  if ($("type").value) params.set("type", $("type").value);
  const { items } = await api("/api/v1/artifacts?" + params);
  $("artifacts").tBodies[0].replaceChildren(...items.map((a) => el("tr", {},
    el("td", {}, clock(a.created_at)), el("td", {}, a.type), el("td", {}, a.produced_by),
    el("td", { class: "payload" }, JSON.stringify(a.payload)))));
}

// === refresh scheduling and the live stream ===

const refreshers = { batches: refreshBatches, flushes: refreshFlushes, joins: refreshJoins, failed: refreshFailed };
const pending = new Set();
let timer = null;
function scheduleRefresh(...what) {
  what.forEach((w) => pending.add(w));
  if (timer) return;
  timer = setTimeout(async () => {
    timer = null;
    const due = [...pending];
    pending.clear();
    try { await Promise.all(due.map((w) => refreshers[w]())); } catch (error) { showError(error); }
  }, 150);
}

function onEvent(kind, e) {
  switch (kind) {
    case "batch_item_added": return onItemAdded(e);
    case "batch_flushed": return onFlushed(e);
    case "run_failed": case "run_finished": return scheduleRefresh("failed");
    case "join_completed": case "join_discarded": return scheduleRefresh("joins");
    case "artifact_published": return scheduleRefresh("joins");
    case "lagged": return scheduleRefresh(...Object.keys(refreshers));
  }
}

async function stream() {
  for (;;) {
    try {
      const response = await fetch("/api/v1/events", { headers: headers() });
      if (response.status === 401) { $("login").hidden = false; return; }
      if (!response.ok || !response.body) throw new Error("event stream: " + response.status);
      setLive(true);
      scheduleRefresh(...Object.keys(refreshers));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let kind = null, data = "";
          for (const line of frame.split("\n")) {
            if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (kind && data) onEvent(kind, JSON.parse(data));
        }
      }
    } catch (error) { /* reconnect below */ }
    setLive(false);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function setLive(on) {
  $("live").className = "status " + (on ? "on" : "off");
  $("live").textContent = on ? "live" : "disconnected";
}

async function start() {
  loadToken();
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("flock-token", $("token").value);
    location.reload();
  });
  $("flush-all").addEventListener("click", async () => {
    try { await api("/api/v1/flush", { method: "POST" }); showError(null); } catch (error) { showError(error); }
  });
  $("search").addEventListener("submit", (e) => searchArtifacts(e).catch(showError));
  try {
    await Promise.all([refreshAgents(), refreshBatches(), refreshFlushes(), refreshJoins(), refreshFailed(), searchArtifacts()]);
    showError(null);
  } catch (error) { showError(error); }
  stream();
  // Countdowns tick locally; a full refresh every few seconds corrects drift.
  setInterval(drawBatches, 100);
  setInterval(() => scheduleRefresh(...Object.keys(refreshers)), 3000);
}

start();
