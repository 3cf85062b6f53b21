// ccmulti dashboard: polls /api/status and /api/queues, follows /api/events for the chart, and acts through
// POSTs carrying the session's CSRF token. Everything shown goes through textContent: task arguments and
// results are data, never markup.
"use strict";

let csrf = "";
const points = [];
const chartSeconds = 300;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function duration(seconds) {
  if (seconds == null) return "-";
  seconds = Math.floor(seconds);
  if (seconds < 60) return seconds + "s";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m" + String(seconds % 60).padStart(2, "0") + "s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + "h" + String(Math.floor(seconds / 60) % 60).padStart(2, "0") + "m";
  return Math.floor(seconds / 86400) + "d" + Math.floor(seconds / 3600) % 24 + "h";
}

function bytes(n) {
  if (!n) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showError(message) {
  const box = document.getElementById("error");
  box.hidden = !message;
  box.textContent = message || "";
}

async function act(path, question) {
  if (!window.confirm(question)) return;
  try {
    await api(path, { method: "POST", headers: { "X-CSRF-Token": csrf } });
    showError("");
  } catch (e) {
    showError(e.message);
  }
  refresh();
}

let active = {};  // node -> active task count, from inspect active (refreshed less often)

// A node's last Celery event (it sends a heartbeat every 2 s with -E): late past 10 s.
function heartbeat(beat) {
  if (!beat) return el("td", { class: "num muted", title: "no events from this node (start it with -E)" }, "-");
  const age = beat.age;
  const late = !beat.online || age > 10;
  const load = Array.isArray(beat.loadavg) && beat.loadavg.length ? "load " + beat.loadavg.join(" ") : "";
  return el("td", { class: "num heartbeat" + (late ? " state-failed" : ""), title: load },
    beat.online ? (age < 1 ? "now" : duration(age) + " ago") : "offline");
}

function renderNodes(status) {
  const master = document.getElementById("master");
  if (!status.master) {
    master.textContent = status.error || "no master";
    master.className = "error";
  } else {
    master.className = "muted";
    master.textContent = "master pid " + status.master.pid + ", up " + duration(status.master.uptime) +
      (status.ready ? ", all nodes ready" : ", not all nodes ready");
  }
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren(...status.nodes.map((node) => {
    const running = node.pid != null;
    const quoted = encodeURIComponent(node.name);
    const restart = el("button", { class: "restart", type: "button" }, "restart");
    restart.addEventListener("click", () => act("/api/nodes/" + quoted + "/restart", "Restart " + node.name + "?"));
    const stop = el("button", { class: "stop danger", type: "button" }, "stop");
    stop.addEventListener("click", () => act("/api/nodes/" + quoted + "/stop", "Stop " + node.name + "?"));
    return el("tr", { "data-node": node.name },
      el("td", {}, node.name),
      el("td", { class: "state state-" + node.state }, node.state),
      el("td", { class: "num pid" }, running ? node.pid : "-"),
      el("td", { class: "num" }, running ? duration(node.uptime) : "-"),
      el("td", { class: "num" }, running ? bytes(node.memory ?? node.rss) : "-"),
      el("td", { class: "num" }, node.restarts),
      el("td", {}, (node.queues || []).join(", ") || "-"),
      el("td", { class: "num" }, node.concurrency ?? "-"),
      el("td", { class: "num active" }, node.heartbeat ? node.heartbeat.active : (active[node.name] ?? "-")),
      heartbeat(node.heartbeat),
      el("td", {}, restart, " ", stop));
  }));
}

function renderQueues(queues) {
  const body = document.querySelector("#queues tbody");
  body.replaceChildren(...queues.map((queue) => {
    const purge = el("button", { class: "purge danger", type: "button" }, "purge");
    purge.addEventListener("click", () => act("/api/queues/" + encodeURIComponent(queue.name) + "/purge",
      "Delete the " + queue.ready + " waiting messages of " + queue.name + "?"));
    const consumers = queue.no_consumer
      ? el("span", { class: "warning" }, "none: its messages wait for a node that consumes " + queue.name)
      : (queue.consumers.join(", ") || "-");
    return el("tr", { "data-queue": queue.name },
      el("td", {}, queue.name),
      el("td", { class: "num ready" }, queue.ready),
      el("td", { class: "num" }, queue.scheduled),
      el("td", { class: "num" }, queue.reserved),
      el("td", { class: "consumers" }, consumers),
      el("td", {}, purge));
  }));
}

async function refresh() {
  try {
    const [status, queues] = await Promise.all([api("/api/status"), api("/api/queues")]);
    renderNodes(status);
    renderQueues(queues);
    showError("");
  } catch (e) {
    showError(e.message);
  }
}

async function refreshActive() {
  try {
    const replies = await api("/api/inspect/active");
    active = {};
    for (const [node, tasks] of Object.entries(replies)) if (Array.isArray(tasks)) active[node] = tasks.length;
  } catch (e) { /* the node table says enough */ }
}

function short(value) {
  if (value == null) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 80 ? text.slice(0, 77) + "…" : text;
}

// Stored kwargs are an object; from events, Python's repr ("{}", "{'x': 1}").
function hasKwargs(kwargs) {
  if (kwargs == null) return false;
  return typeof kwargs === "string" ? kwargs !== "{}" : Object.keys(kwargs).length > 0;
}

async function loadTasks(event) {
  if (event) event.preventDefault();
  const query = new URLSearchParams({
    state: document.getElementById("f-state").value,
    name: document.getElementById("f-name").value,
    id: document.getElementById("f-id").value.trim(),
    limit: "100",
  });
  try {
    const answer = await api("/api/tasks?" + query);
    document.getElementById("results-store").textContent = "(results in " + answer.results + ")";
    const events = answer.events || {};
    document.getElementById("events-note").textContent = !events.available
      ? "No task events: " + events.why + ". Live states (STARTED, RETRY) and runtimes need a Redis or RabbitMQ broker."
      : !events.receiving ? "Task events cannot be received now: " + events.why
      : events.events === 0 ? "No task events received yet: start nodes with -E (worker_send_task_events = true)."
      : "Live from " + events.events + " task events (" + events.workers + " nodes send them).";
    const body = document.querySelector("#tasks tbody");
    body.replaceChildren(...answer.tasks.map((task) => {
      const id = el("td", { class: "id", title: "show everything" }, task.task_id.slice(0, 8) + "…");
      id.addEventListener("click", () => {
        const detail = document.getElementById("task-detail");
        detail.hidden = false;
        detail.textContent = JSON.stringify(task, null, 2) + (task.traceback ? "\n\n" + task.traceback : "");
      });
      const result = task.status === "FAILURE" && task.result && task.result.exc_type
        ? task.result.exc_type + ": " + short(task.result.exc_message) : short(task.result);
      return el("tr", { "data-task": task.task_id },
        id,
        el("td", {}, task.name || "-"),
        el("td", { class: "state-" + task.status }, task.status),
        el("td", {}, task.date_done ? task.date_done.replace("T", " ").slice(0, 19) : "-"),
        el("td", { class: "num" }, task.runtime != null ? task.runtime.toFixed(3) + "s" : "-"),
        el("td", {}, task.worker || "-"),
        el("td", { class: "clip" }, short(task.args) + (hasKwargs(task.kwargs) ? " " + short(task.kwargs) : "")),
        el("td", { class: "clip" }, result || (task.exception ? short(task.exception) : "")));
    }));
  } catch (e) {
    showError(e.message);
  }
}

function drawChart() {
  const canvas = document.getElementById("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth * ratio, height = canvas.clientHeight * ratio;
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  canvas.dataset.points = String(points.length);
  const now = points.length ? points[points.length - 1].time : Date.now() / 1000;
  const left = 48 * ratio, right = 48 * ratio, top = 10 * ratio, bottom = 22 * ratio;
  // The last five minutes, or less while the page has seen less (at least one minute).
  const span = Math.min(chartSeconds, Math.max(60, points.length ? now - points[0].time : 0));
  const x = (t) => left + (width - left - right) * (1 - (now - t) / span);
  const shown = points.filter((p) => now - p.time <= span);
  const rateMax = Math.max(1, ...shown.map((p) => Math.max(p.throughput, p.failures)));
  const depthMax = Math.max(1, ...shown.map((p) => p.depth));
  const yRate = (v) => height - bottom - (height - top - bottom) * v / rateMax;
  const yDepth = (v) => height - bottom - (height - top - bottom) * v / depthMax;
  g.font = (11 * ratio) + "px system-ui, sans-serif";
  g.fillStyle = "#6b7380";
  g.strokeStyle = "#dde1e6";
  g.lineWidth = ratio;
  for (let i = 0; i <= 4; i++) {
    const y = top + (height - top - bottom) * i / 4;
    g.beginPath(); g.moveTo(left, y); g.lineTo(width - right, y); g.stroke();
    g.textAlign = "right"; g.fillText((rateMax * (1 - i / 4)).toFixed(rateMax < 10 ? 1 : 0), left - 4 * ratio, y + 4 * ratio);
    g.textAlign = "left"; g.fillText(Math.round(depthMax * (1 - i / 4)), width - right + 4 * ratio, y + 4 * ratio);
  }
  g.textAlign = "center";
  const step = span > 120 ? 60 : 10;
  for (let s = 0; s <= span; s += step)
    g.fillText(s ? "-" + (step === 60 ? s / 60 + "m" : s + "s") : "now", x(now - s), height - 6 * ratio);
  const line = (value, y, color) => {
    g.strokeStyle = color; g.lineWidth = 2 * ratio; g.beginPath();
    shown.forEach((p, i) => (i ? g.lineTo(x(p.time), y(value(p))) : g.moveTo(x(p.time), y(value(p)))));
    g.stroke();
  };
  line((p) => p.depth, yDepth, "#9a6700");
  line((p) => p.throughput, yRate, "#0969da");
  line((p) => p.failures, yRate, "#cf222e");
}

function follow() {
  const events = new EventSource("/api/events");
  events.addEventListener("point", (event) => {
    const point = JSON.parse(event.data);
    if (points.length && points[points.length - 1].time >= point.time) return;
    points.push(point);
    while (points.length && points[points.length - 1].time - points[0].time > chartSeconds + 5) points.shift();
    drawChart();
  });
  events.onerror = () => showError("lost the dashboard's event stream; reconnecting…");
  events.onopen = () => showError("");
}

async function start() {
  try {
    const session = await api("/api/session");
    csrf = session.csrf;
    const about = await api("/api/about");
    document.getElementById("broker").textContent = "broker " + about.broker;
    document.getElementById("about").textContent = "ccmulti " + about.version + " · run dir " + about.run_dir +
      (about.results ? " · results " + about.results : "");
  } catch (e) {
    showError(e.message);
  }
  document.getElementById("task-filter").addEventListener("submit", loadTasks);
  await refreshActive();
  refresh();
  loadTasks();
  follow();
  drawChart();
  setInterval(refresh, 2000);
  setInterval(refreshActive, 5000);
  setInterval(loadTasks, 3000);
  window.addEventListener("resize", drawChart);
}

start();
