// The dashboard's behaviour: poll the worker's JSON endpoints and draw them with Apache ECharts.
// Data endpoints need the API token when the worker has one; it is asked for once and kept in sessionStorage.
"use strict";

const POLL_MS = { data: 2000, clusters: 5000, alerts: 5000 };
const HISTORY = 150; // throughput points kept (5 minutes at one every 2 s)
const TOKEN_KEY = "stream-api-token";

const $ = (id) => document.getElementById(id);
const charts = {
  throughput: echarts.init($("throughput"), null, { renderer: "svg" }),
  stages: echarts.init($("stages"), null, { renderer: "svg" }),
  map: echarts.init($("map"), null, { renderer: "svg" }),
};
window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));

// ---- fetching with the bearer token -------------------------------------------------------

class Unauthorized extends Error {}

async function getJSON(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (resp.status === 401) {
    $("auth").style.display = "block";
    throw new Unauthorized(path);
  }
  const body = await resp.json().catch(() => ({}));
  return { status: resp.status, body };
}

$("auth-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("auth").style.display = "none";
  refreshAll();
});

// ---- formatting (every text from the server goes through textContent or esc) ---------------

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}

function num(n, digits = 0) {
  return n == null ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function duration(seconds) {
  if (seconds == null) return "–";
  const s = Math.abs(seconds);
  if (s < 120) return `${num(seconds, 1)} s`;
  if (s < 7200) return `${num(seconds / 60, 1)} min`;
  if (s < 172800) return `${num(seconds / 3600, 1)} h`;
  return `${num(seconds / 86400, 1)} d`;
}

// ---- throughput, lag, stages -------------------------------------------------------------

const history = [];

async function refreshData() {
  const { body: d } = await getJSON("/dashboard/data");
  const prev = history[history.length - 1];
  const point = { t: d.time * 1000, inTotal: d.events_in, outTotal: d.events_out, lag: d.consumer_lag.total };
  if (prev && point.t > prev.t) {
    const dt = (point.t - prev.t) / 1000;
    point.inRate = Math.max(0, (point.inTotal - prev.inTotal) / dt);
    point.outRate = Math.max(0, (point.outTotal - prev.outTotal) / dt);
  }
  history.push(point);
  if (history.length > HISTORY) history.shift();

  $("kpi-in").textContent = num(point.inRate, 1);
  $("kpi-out").textContent = num(point.outRate, 1);
  $("kpi-lag").textContent = num(d.consumer_lag.total);
  $("kpi-wm").textContent = duration(d.watermark_lag_seconds);
  $("kpi-profiles").textContent = num(d.profiles);
  $("kpi-dead").textContent = num(d.dead_letters);
  $("kpi-alerts").textContent = num((d.alerts.churn_risk || 0) + (d.alerts.recovered || 0));
  $("model").textContent = `model: ${d.model.encoder || "–"} · ${d.model.clustering || "not fitted"} · ${num(d.model.updates)} updates`;
  $("status").textContent = `${d.ready ? "ready" : "recovering"} · watermark ${d.watermark || "–"} · updated ${new Date().toLocaleTimeString()}`;

  const rated = history.filter((p) => p.inRate != null);
  charts.throughput.setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { data: ["in / s", "out / s", "lag"], bottom: 0 },
    grid: { left: 50, right: 50, top: 20, bottom: 50 },
    xAxis: { type: "time" },
    yAxis: [{ type: "value", name: "events/s", minInterval: 1 }, { type: "value", name: "lag", minInterval: 1 }],
    series: [
      { name: "in / s", type: "line", showSymbol: false, data: rated.map((p) => [p.t, p.inRate.toFixed(2)]) },
      { name: "out / s", type: "line", showSymbol: false, data: rated.map((p) => [p.t, p.outRate.toFixed(2)]) },
      { name: "lag", type: "line", showSymbol: false, yAxisIndex: 1, lineStyle: { type: "dashed" }, data: history.map((p) => [p.t, p.lag]) },
    ],
  });
  charts.stages.setOption({
    animation: false,
    tooltip: { trigger: "axis", valueFormatter: (v) => (v == null ? "–" : `${v} ms`) },
    legend: { data: ["p50", "p95"], bottom: 0 },
    grid: { left: 110, right: 20, top: 10, bottom: 50 },
    xAxis: { type: "log", name: "ms", logBase: 10 },
    yAxis: { type: "category", data: d.stages.map((s) => s.stage), inverse: true },
    series: [
      { name: "p50", type: "bar", data: d.stages.map((s) => s.p50_ms) },
      { name: "p95", type: "bar", data: d.stages.map((s) => s.p95_ms) },
    ],
  });
}

// ---- interest map ------------------------------------------------------------------------

async function refreshClusters() {
  const { body } = await getJSON("/clusters");
  const clusters = (body.clusters || []).filter((c) => c.size > 0 && c.x != null);
  const topics = (body.topics || []).filter((t) => t.size > 0 && t.x != null);
  const grouped = topics.length > 0 && topics.length < clusters.length; // topics worth drawing apart from clusters
  const palette = ["#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272", "#fc8452", "#9a60b4", "#ea7ccc"];
  const topicIndex = new Map(topics.map((t, i) => [t.topic, i]));
  const colour = (c) => palette[(grouped ? topicIndex.get(c.topic) ?? c.cluster : c.cluster) % palette.length];
  const biggest = Math.max(1, ...clusters.map((c) => c.size));
  const biggestTopic = Math.max(1, ...topics.map((t) => t.size));
  $("map").dataset.points = String(clusters.length);
  $("map").dataset.topics = String(grouped ? topics.length : 0);
  const series = [{
    name: "clusters",
    type: "scatter",
    z: 3,
    data: clusters.map((c) => ({ value: [c.x, c.y], cluster: c, symbolSize: 16 + 54 * Math.sqrt(c.size / biggest), itemStyle: { color: colour(c) } })),
    itemStyle: { opacity: 0.85 },
    label: { show: true, position: "top", fontSize: 13, color: "#1d2330", formatter: (p) => `#${p.data.cluster.cluster} ${p.data.cluster.keywords.slice(0, 3).join(" ")}` },
  }];
  if (grouped) {
    series.unshift({
      name: "topics",
      type: "scatter",
      z: 1,
      silent: false,
      data: topics.map((t, i) => ({ value: [t.x, t.y], topic: t, symbolSize: 60 + 120 * Math.sqrt(t.size / biggestTopic), itemStyle: { color: palette[i % palette.length] } })),
      itemStyle: { opacity: 0.15 },
      label: { show: true, position: "bottom", fontSize: 12, fontWeight: "bold", color: "#6b7385", formatter: (p) => `topic ${p.data.topic.topic}: ${p.data.topic.keywords.slice(0, 3).join(" ")}` },
    });
  }
  charts.map.setOption({
    animation: false,
    grid: { left: 30, right: 30, top: 30, bottom: 30 },
    xAxis: { min: -1.4, max: 1.4, show: false },
    yAxis: { min: -1.4, max: 1.4, show: false },
    tooltip: {
      confine: true,
      formatter: (p) => {
        if (p.data.topic) {
          const t = p.data.topic;
          return `<b>topic ${t.topic}</b> · ${num(t.size)} members · clusters ${t.clusters.join(", ")}<br>${esc(t.keywords.join(" "))}`;
        }
        const c = p.data.cluster;
        const examples = (c.examples || []).map((s) => `<li>${esc(s)}</li>`).join("") || "<li>–</li>";
        return `<b>cluster ${c.cluster}</b>${grouped ? ` (topic ${c.topic})` : ""} · ${num(c.size)} members<br>${esc(c.keywords.join(" "))}<ul style="margin:4px 0;padding-left:16px;max-width:360px;white-space:normal">${examples}</ul>`;
      },
    },
    series,
  }, true);
  const list = $("cluster-list");
  list.replaceChildren(...clusters.map((c) => el("li", { class: "cluster" },
    el("span", { class: "dot", style: `background:${colour(c)}` }), el("b", {}, `#${c.cluster}`),
    `${grouped ? ` topic ${c.topic}` : ""} · ${num(c.size)} · ${c.keywords.join(" ") || "(no keywords yet)"}`)));
  if (!body.fitted) list.replaceChildren(el("li", { class: "muted" }, `warming up: ${num(body.texts_learned)} texts learned`));
}

// ---- alerts ------------------------------------------------------------------------------

async function refreshAlerts() {
  const { body } = await getJSON("/alerts/recent");
  const alerts = body.alerts || [];
  const list = $("alerts");
  if (!alerts.length) {
    list.replaceChildren(el("li", { class: "muted" }, "none yet"));
    return;
  }
  list.replaceChildren(...alerts.map((a) => {
    const item = el("li", { class: "alert", "data-user": a.user_id },
      el("span", { class: `tag ${a.type}` }, a.type), " ",
      el("b", {}, a.user_id), ` score ${num(a.score, 2)} (${a.level})`,
      el("div", { class: "muted" }, `${a.as_of} · ${(a.reasons || []).map((r) => r.detail).join("; ") || "-"}`));
    item.addEventListener("click", () => lookup(a.user_id));
    return item;
  }));
}

// ---- profile lookup ----------------------------------------------------------------------

function kvTable(rows) {
  return el("table", { class: "kv" }, ...rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v))));
}

function renderProfile(p) {
  const c = p.consumption, i = p.interests, ch = p.churn;
  const rfm = el("section", { id: "profile-rfm" }, el("h3", {}, "Consumption (RFM)"), kvTable([
    ["segment", c.rfm.segment],
    ["R / F / M", `${c.rfm.r} / ${c.rfm.f} / ${c.rfm.m}`],
    ["orders", num(c.orders_total)],
    ["spend", `${c.monetary_total} ${c.currency}`],
    ["recency", c.recency_days == null ? "–" : `${num(c.recency_days, 1)} days`],
    ["events", num(p.behaviour.events_total)],
  ]));
  const interests = el("section", { id: "profile-interests" }, el("h3", {}, "Interests"),
    ...(i.top_clusters.length ? i.top_clusters.map((t) => el("div", {},
      el("div", {}, el("b", {}, `#${t.cluster}`), ` ${Math.round(t.share * 100)}% · ${t.keywords.join(" ")}`),
      el("div", { class: "bar", style: `width:${Math.max(2, t.share * 100)}%` }))) : [el("div", { class: "muted" }, "no texts yet")]),
    el("div", { class: "muted" }, `sentiment ${num(p.sentiment.average, 2)} over ${num(p.sentiment.reviews_scored)} reviews`));
  const churn = el("section", { id: "profile-churn" }, el("h3", {}, "Churn risk"),
    el("div", {}, el("span", { class: `tag ${ch.level}` }, ch.level), ` score ${num(ch.score, 2)}${ch.alerted ? " · alert open" : ""}`),
    el("ul", {}, ...(ch.reasons.length ? ch.reasons.map((r) => el("li", { class: "reason" }, `${r.detail} (+${num(r.contribution, 2)})`)) : [el("li", { class: "muted" }, "no risk signals")])),
    el("div", { class: "muted" }, `as of ${p.as_of} · last event ${p.last_event_ts || "–"}`));
  $("profile").replaceChildren(rfm, interests, churn);
}

async function lookup(userId) {
  userId = userId.trim();
  if (!userId) return;
  $("user").value = userId;
  $("profile-message").textContent = `looking up ${userId}…`;
  try {
    let { status, body } = await getJSON(`/profiles/${encodeURIComponent(userId)}`);
    if (status === 404) ({ status, body } = await getJSON(`/users/${encodeURIComponent(userId)}/profile`));
    if (status !== 200) {
      $("profile").replaceChildren();
      $("profile-message").textContent = `${userId}: ${body.detail || body.error || status}`;
      return;
    }
    $("profile-message").textContent = `profile of ${body.user_id}`;
    renderProfile(body);
  } catch (err) {
    if (!(err instanceof Unauthorized)) $("profile-message").textContent = `lookup failed: ${err}`;
  }
}

$("lookup").addEventListener("submit", (ev) => { ev.preventDefault(); lookup($("user").value); });

// ---- polling -----------------------------------------------------------------------------

function poll(fn, ms) {
  const run = () => fn().catch((err) => {
    if (!(err instanceof Unauthorized)) $("status").textContent = `error: ${err.message || err}`;
  });
  run();
  setInterval(run, ms);
  return run;
}

const pollers = [poll(refreshData, POLL_MS.data), poll(refreshClusters, POLL_MS.clusters), poll(refreshAlerts, POLL_MS.alerts)];

function refreshAll() {
  pollers.forEach((run) => run());
}
