/**
 * The status page: one HTML document with its script and style inline, nothing fetched from elsewhere,
 * no build step. It polls /ui/status and draws small SVG charts. Everything it shows from the daemon
 * (keys, values, reasons) is inserted as text, never as markup. The Content-Security-Policy allows exactly
 * this script and this style (by hash) and connections to the daemon itself.
 */
import { createHash } from "node:crypto";

const STYLE = `
:root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #57606a; --line: #d0d7de; --accent: #0969da; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; background: #f6f8fa; }
header { display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: baseline; padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; border: 1px solid var(--line); background: #fff; }
.up { color: var(--ok); border-color: var(--ok); }
.down { color: var(--bad); border-color: var(--bad); }
.muted { color: var(--muted); }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; padding: 16px 20px; }
section.ks { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; min-width: 0; }
section.ks h2 { font-size: 16px; margin: 0 0 8px; display: flex; gap: 8px; align-items: baseline; }
.stats { display: flex; flex-wrap: wrap; gap: 6px 20px; margin-bottom: 8px; }
.stat b { display: block; font-size: 18px; }
.charts { display: flex; gap: 16px; flex-wrap: wrap; }
figure { margin: 0; }
figcaption { font-size: 12px; color: var(--muted); }
svg.chart { background: #fbfcfd; border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; width: 100%; margin-top: 6px; font-size: 12px; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
td.wrap { overflow-wrap: anywhere; max-width: 200px; }
h3 { font-size: 13px; margin: 12px 0 0; }
button { font: inherit; font-size: 12px; padding: 2px 8px; border-radius: 4px; border: 1px solid var(--line); background: #f6f8fa; cursor: pointer; }
button.danger { color: var(--bad); }
#message { margin: 0; padding: 0 20px; min-height: 1.5em; }
#message.error { color: var(--bad); }
form#login { padding: 16px 20px; display: flex; gap: 8px; align-items: center; }
form#login input { font: inherit; padding: 4px 8px; width: 360px; }
.bad { color: var(--bad); }
`;

const SCRIPT = `
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "sidecache-token";
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let timer;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children) if (c !== undefined && c !== null) e.append(c);
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}
function headers() {
  return token ? { authorization: "Bearer " + token } : {};
}
function say(text, error) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}
function pct(x) {
  return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%";
}
function age(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function time(ms) {
  return new Date(ms).toLocaleTimeString();
}

/** A small line chart: values in [0, max]; null leaves a gap. */
function chart(values, max, label, format) {
  const W = 240, H = 64, P = 2;
  const s = svg("svg", { class: "chart", width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
  s.append(svg("title", {}));
  s.firstChild.textContent = label;
  const top = max > 0 ? max : 1;
  const n = values.length;
  const x = (i) => (n <= 1 ? W - P : P + (i * (W - 2 * P)) / (n - 1));
  const y = (v) => H - P - (v / top) * (H - 2 * P);
  let run = [];
  const flush = () => {
    if (run.length === 1) s.append(svg("circle", { cx: run[0][0], cy: run[0][1], r: 1.5, fill: "#0969da" }));
    if (run.length > 1)
      s.append(svg("polyline", { points: run.map((p) => p.join(",")).join(" "), fill: "none", stroke: "#0969da", "stroke-width": 1.5 }));
    run = [];
  };
  values.forEach((v, i) => {
    if (v === null) flush();
    else run.push([x(i).toFixed(1), y(v).toFixed(1)]);
  });
  flush();
  const last = [...values].reverse().find((v) => v !== null);
  const t = svg("text", { x: W - 4, y: 12, "text-anchor": "end", "font-size": 11, fill: "#57606a" });
  t.textContent = last === undefined ? "no data" : format(last);
  s.append(t);
  return el("figure", {}, s, el("figcaption", {}, label));
}

async function act(method, url, what) {
  try {
    const r = await fetch(url, { method, headers: headers() });
    const text = await r.text();
    if (!r.ok) {
      let message = text;
      try { message = JSON.parse(text).error.message; } catch {}
      say(what + " failed: " + message, true);
    } else {
      say(what + " done" + (text ? ": " + text : "."));
    }
  } catch (e) {
    say(what + " failed: " + e, true);
  }
  poll();
}

function deadLetters(ks) {
  if (!ks.dead_letters) return null;
  const wrap = el("div", { class: "dead-letters" }, el("h3", {}, "Dead letters (" + (ks.queue ? ks.queue.dead_letters : ks.dead_letters.length) + ")"));
  if (ks.dead_letters.length === 0) {
    wrap.append(el("p", { class: "muted" }, "None: every write reached PostgreSQL or waits in the queue."));
    return wrap;
  }
  const body = el("tbody");
  for (const d of ks.dead_letters) {
    const base = "/v1/keyspaces/" + encodeURIComponent(ks.name) + "/dead-letters/" + encodeURIComponent(d.id);
    const replay = el("button", { type: "button", "data-action": "replay", "data-id": d.id }, "Replay");
    replay.addEventListener("click", () => act("POST", base + "/replay", "Replay of " + d.key));
    const drop = el("button", { type: "button", class: "danger", "data-action": "drop", "data-id": d.id }, "Drop");
    drop.addEventListener("click", () => {
      if (confirm("Drop the write of " + JSON.stringify(d.key) + " for good?")) act("DELETE", base, "Drop of " + d.key);
    });
    body.append(
      el("tr", { "data-dead-letter": d.id },
        el("td", { class: "wrap" }, d.key),
        el("td", {}, String(d.version)),
        el("td", { class: "wrap" }, d.value === null ? "(delete)" : d.value),
        el("td", { class: "wrap" }, d.reason),
        el("td", {}, String(d.attempts)),
        el("td", {}, time(d.at)),
        el("td", {}, replay, " ", drop)));
  }
  wrap.append(el("table", {}, el("thead", {}, el("tr", {}, ...["key", "version", "value", "reason", "tries", "at", ""].map((h) => el("th", {}, h)))), body));
  return wrap;
}

function checks(ks) {
  const wrap = el("div", { class: "checks" }, el("h3", {}, "Last checks"));
  if (ks.checks.length === 0) {
    wrap.append(el("p", { class: "muted" }, ks.checker ? "None yet in this daemon (schedule " + ks.checker + ")." : "The checker is off for this keyspace."));
    return wrap;
  }
  const body = el("tbody");
  for (const c of ks.checks) {
    const kinds = Object.entries(c.by_kind).map(([k, n]) => k + " " + n).join(", ");
    body.append(
      el("tr", {},
        el("td", {}, new Date(c.finished_at).toLocaleTimeString()),
        el("td", {}, String(c.sampled)),
        el("td", { class: c.inconsistent > 0 ? "bad" : "" }, String(c.inconsistent) + (kinds ? " (" + kinds + ")" : "")),
        el("td", {}, String(c.repaired)),
        el("td", {}, pct(c.ratio)),
        el("td", {}, (c.nines.estimate === null ? "–" : c.nines.estimate.toFixed(2)) + " / " + c.nines.lower_95.toFixed(2)),
        el("td", {}, c.duration_ms + " ms")));
  }
  wrap.append(el("table", {}, el("thead", {}, el("tr", {}, ...["finished", "sampled", "inconsistent", "repaired", "ratio", "nines (est. / 95%)", "took"].map((h) => el("th", {}, h)))), body));
  return wrap;
}

function keyspace(ks, intervalMs) {
  const ratios = ks.points.map((p) => (p.hits + p.misses > 0 ? p.hits / (p.hits + p.misses) : null));
  const perMinute = Math.max(1, Math.round(60000 / (intervalMs || 60000)));
  const recent = ks.points.slice(-perMinute).reduce((a, p) => [a[0] + p.hits, a[1] + p.misses], [0, 0]);
  const seconds = (ks.points.length * (intervalMs || 0)) / 1000;
  const span = seconds < 120 ? Math.round(seconds) + " s" : Math.round(seconds / 60) + " min";
  const stats = el("div", { class: "stats" },
    el("div", { class: "stat" }, el("b", { "data-field": "hit-ratio" }, pct(recent[0] + recent[1] > 0 ? recent[0] / (recent[0] + recent[1]) : null)), "hit ratio, last minute"),
    el("div", { class: "stat" }, el("b", {}, pct(ks.hit_ratio)), "since start"));
  const charts = el("div", { class: "charts" }, chart(ratios, 1, "hit ratio, last " + span, pct));
  if (ks.queue) {
    stats.append(
      el("div", { class: "stat" }, el("b", { "data-field": "queue-depth" }, String(ks.queue.depth)), "queued writes"),
      el("div", { class: "stat" }, el("b", {}, age(ks.queue.depth > 0 ? ks.queue.oldest_seconds : null)), "oldest pending"),
      el("div", { class: "stat" }, el("b", { "data-field": "dead-letters", class: ks.queue.dead_letters > 0 ? "bad" : "" }, String(ks.queue.dead_letters)), "dead letters"));
    const depths = ks.points.map((p) => (p.queue === undefined ? null : p.queue));
    charts.append(chart(depths, Math.max(1, ...depths.filter((d) => d !== null)), "queue depth, last " + span, String));
  }
  if (ks.warm) {
    const w = ks.warm;
    stats.append(
      el("div", { class: "stat", "data-field": "warm" },
        el("b", { class: w.state === "failed" ? "bad" : "" }, w.warmed + (w.total === null ? "" : " / " + w.total)),
        "warmed from " + w.from + ", " + w.state + (w.error ? ": " + w.error : "")));
  }
  const title = el("h2", {}, ks.name, el("span", { class: "pill" }, ks.strategy + (ks.consistency ? " " + ks.consistency : "")), el("span", { class: "muted" }, "table " + ks.table));
  return el("section", { class: "ks", "data-keyspace": ks.name }, title, stats, charts, deadLetters(ks), checks(ks));
}

function render(s) {
  const ready = document.getElementById("ready");
  ready.replaceChildren(el("span", { class: "pill " + (s.ready.status === "ok" ? "up" : "down"), "data-field": "readyz" }, "readyz: " + s.ready.status));
  for (const [name, state] of Object.entries(s.ready.checks)) ready.append(" ", el("span", { class: "pill " + state }, name + " " + state));
  for (const [name, state] of Object.entries(s.ready.breakers || {})) ready.append(" ", el("span", { class: "pill " + (state === "closed" ? "up" : "down") }, name + " breaker " + state));
  document.getElementById("updated").textContent = "updated " + new Date(s.generated_at).toLocaleTimeString();
  document.getElementById("keyspaces").replaceChildren(...s.keyspaces.map((k) => keyspace(k, s.interval_ms)));
}

async function poll() {
  clearTimeout(timer);
  try {
    const r = await fetch("/ui/status", { headers: headers(), cache: "no-store" });
    if (r.status === 401 || r.status === 403) {
      document.getElementById("login").hidden = false;
      let message = "";
      try { message = (await r.json()).error.message; } catch {}
      say(token ? "The token was refused: " + message : "This daemon asks for an admin token.", !!token);
      return;
    }
    if (!r.ok) throw new Error("HTTP " + r.status);
    document.getElementById("login").hidden = true;
    render(await r.json());
  } catch (e) {
    say("Could not reach the daemon: " + e.message, true);
  }
  timer = setTimeout(poll, 2000);
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  say("");
  poll();
});
poll();
`;

const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sidecache status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>sidecache</h1>
<div id="ready"></div>
<span id="updated" class="muted"></span>
</header>
<form id="login" hidden>
<label for="token">Admin token</label>
<input id="token" type="password" autocomplete="off" spellcheck="false">
<button type="submit">Show</button>
</form>
<p id="message" role="status"></p>
<main id="keyspaces"></main>
<script>${SCRIPT}</script>
</body>
</html>
`;
