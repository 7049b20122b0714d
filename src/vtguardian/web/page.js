"use strict";
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e; };
const fmt = (value, unit) => {
  if (value === null || value === undefined) return "–";
  if (unit === "percentunit" && typeof value === "number") return (value * 100).toFixed(1) + " %";
  if (typeof value === "number" && !Number.isInteger(value)) return value.toFixed(4);
  return String(value);
};
// Plotly reads <a href>, <b>, <br> ... in any text it draws, and shows &lt; &gt; &amp;
// as the characters: every label from the network goes to it escaped, so it is text.
const plain = value => value === null || value === undefined ? value : String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const LEVEL = new Set(["malicious", "suspicious", "harmless", "above", "below"]);

function table(result, unit) {
  const t = el("table");
  const head = el("tr");
  result.columns.forEach(c => head.appendChild(el("th", c)));
  t.appendChild(head);
  result.rows.forEach(row => {
    const tr = el("tr");
    row.forEach((v, i) => {
      const col = result.columns[i];
      const cell = el("td", col === "detection_ratio" ? fmt(v, "percentunit") : fmt(v, unit));
      if (LEVEL.has(v)) cell.classList.add(v);
      if (col === "ioc" && v) { cell.classList.add("ioc"); cell.addEventListener("click", () => detail(v)); }
      tr.appendChild(cell);
    });
    t.appendChild(tr);
  });
  return t;
}

function chart(box, panel) {
  const traces = [];
  panel.results.forEach(result => {
    const cols = result.columns;
    if (panel.kind === "timeseries") {
      const t = cols.indexOf("time");
      if (cols.includes("metric")) {
        const series = Object.create(null);
        result.rows.forEach(r => { const m = r[cols.indexOf("metric")]; (series[m] = series[m] || {x: [], y: []}); series[m].x.push(new Date(r[t] * 1000)); series[m].y.push(r[cols.indexOf("value")]); });
        Object.entries(series).forEach(([name, s]) => traces.push({type: "bar", name: plain(name), x: s.x, y: s.y}));
      } else {
        cols.forEach((c, i) => { if (i !== t) traces.push({type: "scatter", mode: "lines+markers", name: plain(c), x: result.rows.map(r => new Date(r[t] * 1000)), y: result.rows.map(r => r[i])}); });
      }
    } else if (panel.kind === "piechart") {
      traces.push({type: "pie", labels: result.rows.map(r => plain(r[0])), values: result.rows.map(r => r[1])});
    } else {
      traces.push({type: "bar", orientation: "h", y: result.rows.map(r => plain(r[0])), x: result.rows.map(r => r[1])});
    }
  });
  const layout = {barmode: "stack", margin: {l: 40, r: 10, t: 10, b: 30}, height: 260, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: {color: "#d8dee4", size: 11}, showlegend: traces.length > 1, legend: {orientation: "h"}};
  if (panel.kind === "bargauge" || panel.kind === "barchart") layout.yaxis = {automargin: true};
  Plotly.newPlot(box, traces, layout, {displayModeBar: false, responsive: true});
}

function render(data) {
  const root = document.getElementById("dashboard");
  root.replaceChildren();
  let rowName = null, row = null;
  data.panels.forEach(panel => {
    if (panel.row !== rowName) { rowName = panel.row; root.appendChild(el("h2", rowName)); row = el("div", null, "row"); root.appendChild(row); }
    const box = el("section", null, "panel");
    box.dataset.key = panel.key;
    box.style.gridColumn = "span " + panel.width;
    box.title = panel.description;
    box.appendChild(el("h3", panel.title));
    const first = panel.results[0];
    if (panel.kind === "stat" || panel.kind === "gauge") {
      const value = first.rows.length ? first.rows[0][0] : null;
      box.appendChild(el("div", fmt(value, panel.unit) + (panel.max ? " / " + panel.max : ""), "stat"));
    } else if (panel.kind === "table") {
      box.appendChild(table(first, panel.unit));
    } else {
      const plot = el("div"); box.appendChild(plot); row.appendChild(box); chart(plot, panel); return;
    }
    row.appendChild(box);
  });
}

let asked = 0;  // the detail last asked for: an answer that arrives after a newer ask is dropped

// One path segment, percent-encoded (a URL carries / ? # %). "." and ".." would be
// resolved away by the URL parser, so they go with a trailing space, which the server strips.
const iocPath = value => "/api/v1/iocs/" + encodeURIComponent(value) + (/^\.{1,2}$/.test(value) ? "%20" : "");

function closeButton(pane) {
  const close = el("button", "close");
  close.addEventListener("click", () => pane.style.display = "none");
  return close;
}

// Nothing known about the value: never seen (404), or no indicator at all (400). The
// box only reads, so nothing is queued; a lookup (CLI or POST /api/v1/lookup) asks.
function notKnown(pane, value, status, data) {
  const ioc = data.ioc || {};
  pane.appendChild(el("h3", ioc.value || value));
  if (ioc.type) pane.appendChild(el("p", "type: " + ioc.type));
  const lines = [];
  if (status === 404) lines.push("not seen on your network");
  if (ioc.eligible === false) lines.push("not eligible: " + (ioc.reason || "–"));
  if (!lines.length) lines.push(data.detail || "error: HTTP " + status);
  lines.forEach(line => pane.appendChild(el("p", line, "notice")));
  if (ioc.eligible) pane.appendChild(el("p", "Not looked up: this box only reads. `vtguardian lookup` asks VirusTotal.", "hint"));
}

// Threat context and both ages of the analysis, as text nodes (values are VirusTotal's).
function intel(pane, data) {
  const a = data.analysis;
  if (a) pane.appendChild(el("p", "last analysis: " + a.status + " (VirusTotal " + (a.analysis_age_hours ?? "–") + " h ago; our copy " + (a.cache_age_hours ?? "–") + " h old, " + a.cache + ")"));
  const t = data.threat;
  if (!t) return;
  if ((t.threat_categories || []).length) pane.appendChild(el("p", "threat categories: " + t.threat_categories.join(", "), "malicious"));
  const family = [...(t.families || []), ...(t.threat_label ? [t.threat_label] : [])];
  if (family.length) pane.appendChild(el("p", "malware family / label: " + family.join(", ")));
  if ((t.site_categories || []).length) pane.appendChild(el("p", "site category (not a threat): " + t.site_categories.join(", ")));
  if (t.creation_date) pane.appendChild(el("p", "registered: " + t.creation_date.slice(0, 10) + (t.young ? " (young domain)" : ""), t.young ? "suspicious" : undefined));
  if (t.asn != null) pane.appendChild(el("p", "network: AS" + t.asn + " " + (t.as_owner || "") + " " + (t.country || "")));
}

async function detail(value) {
  const ticket = ++asked;
  const pane = document.getElementById("detail");
  pane.replaceChildren(el("h3", value), el("p", "loading…"));
  pane.style.display = "block";
  let response, data;
  try {
    response = await fetch(iocPath(value));
    data = await response.json();
  } catch (error) {
    if (ticket === asked) pane.replaceChildren(closeButton(pane), el("h3", value), el("p", "error: " + error.message, "notice"));
    return;
  }
  if (ticket !== asked) return;
  pane.replaceChildren(closeButton(pane));
  if (!response.ok) { notKnown(pane, value, response.status, data); return; }
  pane.appendChild(el("h3", data.value || value));
  if (data.eligible === false) pane.appendChild(el("p", "not eligible: " + (data.reason || "–"), "notice"));
  const v = data.verdict || {};
  pane.appendChild(el("p", "verdict: " + (v.verdict || "pending") + "  ratio: " + fmt(v.ratio, "percentunit") + "  decided by: " + (v.decided_by || "–"), v.verdict));
  pane.appendChild(el("p", "engines that flagged it: " + ((v.engines || []).join(", ") || "none")));
  intel(pane, data);
  [["Reports (history)", data.reports], ["Clients", data.clients], ["Actions", data.actions], ["Related IoCs", data.related || []]].forEach(([title, rows]) => {
    pane.appendChild(el("h3", title));
    if (!rows.length) { pane.appendChild(el("p", "none")); return; }
    const cols = Object.keys(rows[0]);
    pane.appendChild(table({columns: cols, rows: rows.map(r => cols.map(c => Array.isArray(r[c]) ? r[c].join(", ") : r[c]))}));
  });
  resolutionPivots(pane, data.resolutions || {});
}

// The network's own passive DNS: a domain's addresses here and the other domains on
// them, or the domains an address served; each value opens its own detail.
function resolutionPivots(pane, resolved) {
  [["Resolved here to", resolved.addresses], ["Other domains on those addresses", resolved.neighbours], ["Domains that resolved to it here", resolved.names]].forEach(([title, rows]) => {
    if (!rows) return;
    pane.appendChild(el("h3", title));
    if (!rows.length) { pane.appendChild(el("p", "none")); return; }
    const cols = ["ioc", "verdict", "first_seen", "last_seen", "devices"];
    pane.appendChild(table({columns: cols, rows: rows.map(r => [r.value, r.verdict, r.first_seen, r.last_seen, (r.devices || []).join(", ")])}));
  });
}

async function load() {
  const params = new URLSearchParams();
  params.set("range", document.getElementById("range").value);
  params.set("threshold", document.getElementById("threshold").value);
  const type = document.getElementById("ioc_type").value; if (type) params.append("ioc_type", type);
  const client = document.getElementById("client").value; if (client) params.append("client", client);
  const status = document.getElementById("status");
  try {
    const response = await fetch("/api/v1/panels?" + params);
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    status.textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "yes";
  } catch (error) { status.textContent = "error: " + error.message; }
}

async function filters() {
  const response = await fetch("/api/v1/filters");
  const data = await response.json();
  const select = document.getElementById("client");
  data.clients.forEach(c => { const o = el("option", c.name ? c.ip + " (" + c.name + ")" : c.ip); o.value = c.ip; select.appendChild(o); });
}

document.getElementById("lookup").addEventListener("submit", event => {
  event.preventDefault();
  const value = document.getElementById("lookup-value").value.trim();
  if (value) detail(value);
});
["range", "threshold", "ioc_type", "client"].forEach(id => document.getElementById(id).addEventListener("change", load));
setInterval(() => { if (document.getElementById("auto").checked) load(); }, 60000);
filters().then(load);
