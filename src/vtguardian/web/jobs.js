"use strict";
// The Event Explorer and the Flows page. Every value from an event is set as text
// (textContent, never innerHTML): events are written by whoever is on the network.
(() => {
  const make = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e; };
  const view = document.getElementById("jobs-view");
  const dashboard = document.getElementById("dashboard");
  const state = {jobs: [], job: null, open: null};
  const LEVELS = ["malicious", "suspicious", "harmless", "unknown", "pending"];

  // --- navigation: #explorer and #flows, the dashboard otherwise ---------------------
  const nav = make("nav", null, "views");
  [["", "Dashboard"], ["explorer", "Event Explorer"], ["flows", "Flows"]].forEach(([hash, label]) => {
    const b = make("button", label); b.type = "button"; b.dataset.view = hash || "dashboard";
    b.addEventListener("click", () => { location.hash = hash; });
    nav.appendChild(b);
  });
  document.querySelector("header h1").after(nav);

  async function getJson(url, options) {
    const response = await fetch(url, options);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail ? String(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : "HTTP " + response.status);
    return data;
  }

  async function loadJobs() {
    state.jobs = (await getJson("/api/v1/jobs")).items;
    if (!state.job || !state.jobs.some(j => j.id === state.job)) state.job = state.jobs.length ? state.jobs[0].id : null;
  }

  function route() {
    const which = location.hash.replace("#", "");
    nav.querySelectorAll("button").forEach(b => b.classList.toggle("active", b.dataset.view === (which || "dashboard")));
    if (which !== "explorer" && which !== "flows") { view.hidden = true; dashboard.hidden = false; return; }
    dashboard.hidden = true; view.hidden = false;
    (which === "explorer" ? explorer : flows)().catch(error => view.replaceChildren(make("p", "error: " + error.message, "notice")));
  }

  function jobPicker(onChange) {
    const label = make("label", "Job ");
    const select = make("select"); select.id = "job-pick";
    state.jobs.forEach(j => { const o = make("option", j.title ? j.id + " – " + j.title : j.id); o.value = j.id; o.selected = j.id === state.job; select.appendChild(o); });
    select.addEventListener("change", () => { state.job = select.value; onChange(); });
    label.appendChild(select);
    return label;
  }

  function jobState(job) {
    const p = make("p", null, "job-state");
    p.appendChild(make("span", job.state, "state-" + job.state));
    if (job.reason) p.appendChild(make("span", " (" + job.reason + ")"));
    p.appendChild(make("span", "  events in " + job.events_in + ", stored " + job.stored + ", enriched " + job.enriched + ", malicious " + job.malicious + ", pending " + job.pending + ", lag " + job.lag_bytes + " bytes"));
    return p;
  }

  // --- the Event Explorer ------------------------------------------------------------
  const filters = {is_malicious: "", result: "", ioc: "", field: "", since: "", until: ""};

  async function explorer() {
    await loadJobs();
    view.replaceChildren(make("h2", "Event Explorer"));
    if (!state.job) { view.appendChild(make("p", "No job yet: add a [[jobs]] entry or POST /api/v1/jobs.")); return; }
    const bar = make("form", null, "filters"); bar.id = "event-filters";
    bar.appendChild(jobPicker(explorer));
    const pick = (name, label, options) => {
      const l = make("label", label + " "); const s = make("select"); s.name = name;
      options.forEach(([value, text]) => { const o = make("option", text); o.value = value; o.selected = filters[name] === value; s.appendChild(o); });
      l.appendChild(s); bar.appendChild(l);
    };
    const box = (name, label, type) => {
      const l = make("label", label + " "); const i = make("input"); i.name = name; i.type = type || "text"; i.value = filters[name]; i.maxLength = 4096; i.spellcheck = false;
      l.appendChild(i); bar.appendChild(l);
    };
    pick("is_malicious", "is_malicious", [["", "any"], ["true", "true"], ["false", "false"]]);
    pick("result", "result", [["", "any"], ...LEVELS.map(l => [l, l])]);
    box("ioc", "IoC"); box("field", "field"); box("since", "from", "datetime-local"); box("until", "to", "datetime-local");
    const go = make("button", "Apply"); go.type = "submit"; bar.appendChild(go);
    bar.addEventListener("submit", event => {
      event.preventDefault();
      Object.keys(filters).forEach(k => { filters[k] = bar.elements[k].value.trim(); });
      explorer().catch(error => view.appendChild(make("p", "error: " + error.message, "notice")));
    });
    view.appendChild(bar);
    const job = state.jobs.find(j => j.id === state.job);
    view.appendChild(jobState(job));
    const params = new URLSearchParams({limit: "100"});
    Object.entries(filters).forEach(([k, v]) => { if (v) params.set(k, (k === "since" || k === "until") ? new Date(v).toISOString() : v); });
    const data = await getJson("/api/v1/jobs/" + encodeURIComponent(state.job) + "/events?" + params);
    const t = make("table", null, "events"); t.id = "events";
    const head = make("tr"); ["#", "received", "result", "event", "IoCs"].forEach(c => head.appendChild(make("th", c))); t.appendChild(head);
    data.items.forEach(item => {
      const tr = make("tr", null, "job-event"); tr.dataset.seq = item.seq;
      tr.appendChild(make("td", item.seq));
      tr.appendChild(make("td", new Date(item.received_at).toLocaleString()));
      tr.appendChild(make("td", item.result, item.result));
      tr.appendChild(make("td", item.summary));
      tr.appendChild(make("td", item.iocs.map(i => i.field + "=" + i.value + " (" + i.state + ")").join(", ")));
      tr.addEventListener("click", () => expand(tr, item.seq));
      t.appendChild(tr);
    });
    view.appendChild(t);
    if (!data.items.length) view.appendChild(make("p", "No events match.", "hint"));
    document.body.dataset.explorer = "yes";
  }

  async function expand(tr, seq) {
    const old = document.getElementById("event-detail"); if (old) old.remove();
    if (state.open === seq) { state.open = null; return; }
    state.open = seq;
    const row = make("tr"); row.id = "event-detail";
    const cell = make("td"); cell.colSpan = 5; row.appendChild(cell); tr.after(row);
    const data = await getJson("/api/v1/jobs/" + encodeURIComponent(state.job) + "/events/" + seq);
    const tabs = make("div", null, "tabs");
    const body = make("div", null, "tab-body"); body.id = "event-tab";
    const show = name => {
      tabs.querySelectorAll("button").forEach(b => b.classList.toggle("active", b.dataset.tab === name));
      body.replaceChildren(name === "overview" ? overview(data) : name === "structured" ? structured(data.structured) : make("pre", JSON.stringify(data.raw, null, 2)));
      body.dataset.tab = name;
    };
    [["overview", "Overview"], ["structured", "Structured"], ["raw", "Raw"]].forEach(([name, label]) => {
      const b = make("button", label, "tab"); b.type = "button"; b.dataset.tab = name; b.addEventListener("click", () => show(name)); tabs.appendChild(b);
    });
    cell.append(tabs, body);
    show("overview");
  }

  function overview(data) {
    const box = make("div", null, "overview");
    box.appendChild(make("p", "is_malicious: " + data.is_malicious + "   result: " + data.result, data.result));
    if (!data.overview.length) box.appendChild(make("p", "No IoC in the job's fields.", "hint"));
    data.overview.forEach(ioc => {
      const card = make("div", null, "ioc-card " + ioc.verdict);
      const title = make("p");
      title.appendChild(make("span", ioc.field + ": ", "field"));
      const link = make("a", ioc.value, "ioc"); link.href = "#explorer"; link.addEventListener("click", event => { event.preventDefault(); if (typeof detail === "function") detail(ioc.value); });
      title.appendChild(link);
      title.appendChild(make("span", "  " + ioc.verdict, ioc.verdict));
      card.appendChild(title);
      const ratio = ioc.ratio === null || ioc.ratio === undefined ? "–" : (ioc.ratio * 100).toFixed(1) + " %";
      const counts = ioc.malicious !== null && ioc.total ? " (" + ioc.malicious + "/" + ioc.total + ")" : "";
      card.appendChild(make("p", "ratio: " + ratio + counts + "   decided by: " + (ioc.provider || "–") + (ioc.answered_by.length ? "   answered: " + ioc.answered_by.join(", ") : "")));
      card.appendChild(make("p", "flagged by: " + (ioc.engines.join(", ") || "none"), "engines"));
      if (ioc.labels.length) card.appendChild(make("p", "threat context: " + ioc.labels.join("; "), "context"));
      box.appendChild(card);
    });
    return box;
  }

  function flatten(value, prefix, out) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      Object.entries(value).forEach(([k, v]) => flatten(v, prefix ? prefix + "." + k : k, out));
    } else if (Array.isArray(value) && value.some(v => v !== null && typeof v === "object")) {
      value.forEach((v, i) => flatten(v, prefix + "[" + i + "]", out));
    } else out.push([prefix, JSON.stringify(value)]);
    return out;
  }

  function structured(added) {
    const t = make("table", null, "structured");
    flatten(added, "", []).forEach(([key, value]) => {
      const tr = make("tr"); tr.appendChild(make("td", key, "field")); tr.appendChild(make("td", value)); t.appendChild(tr);
    });
    const box = make("div"); box.appendChild(t);
    box.appendChild(make("pre", flatten(added, "", []).map(([k, v]) => k + ": " + v).join("\n"), "structured-text"));
    return box;
  }

  // --- the Flows page ----------------------------------------------------------------
  async function flows() {
    await loadJobs();
    view.replaceChildren(make("h2", "Flows"));
    const tokenLabel = make("label", "Token (to change a flow) ");
    const token = make("input"); token.type = "password"; token.id = "flow-token"; token.autocomplete = "off";
    token.value = sessionStorage.getItem("vtguardian-token") || "";
    token.addEventListener("change", () => sessionStorage.setItem("vtguardian-token", token.value));
    tokenLabel.appendChild(token);
    view.appendChild(tokenLabel);
    const message = make("p", "", "hint"); message.id = "flow-message"; view.appendChild(message);
    if (!state.jobs.length) view.appendChild(make("p", "No job yet."));
    state.jobs.forEach(job => {
      const card = make("section", null, "flow-card"); card.dataset.job = job.id;
      card.appendChild(make("h3", job.title ? job.id + " – " + job.title : job.id));
      card.appendChild(jobState(job));
      const list = make("ol", null, "flow");
      job.flow.forEach((step, index) => {
        const li = make("li", null, "flow-step" + (step.enabled ? "" : " disabled")); li.dataset.provider = step.provider;
        const box = make("input"); box.type = "checkbox"; box.checked = step.enabled; box.title = "enabled";
        box.addEventListener("change", () => save(job, job.flow.map(s => s.provider === step.provider ? {...s, enabled: box.checked} : s)));
        const label = make("label"); label.append(box, make("span", " " + step.provider, "provider"));
        li.appendChild(label);
        li.appendChild(make("span", "  answers " + step.answers + ", decisions " + step.decisions, "counts"));
        const up = make("button", "↑"); up.type = "button"; up.className = "up"; up.disabled = index === 0;
        up.addEventListener("click", () => save(job, move(job.flow, index, -1)));
        const down = make("button", "↓"); down.type = "button"; down.className = "down"; down.disabled = index === job.flow.length - 1;
        down.addEventListener("click", () => save(job, move(job.flow, index, 1)));
        li.append(up, down);
        list.appendChild(li);
      });
      card.appendChild(list);
      view.appendChild(card);
    });
    document.body.dataset.flows = "yes";
  }

  const move = (flow, index, by) => { const copy = flow.slice(); const [step] = copy.splice(index, 1); copy.splice(index + by, 0, step); return copy; };

  async function save(job, flow) {
    const message = document.getElementById("flow-message");
    const token = document.getElementById("flow-token").value;
    sessionStorage.setItem("vtguardian-token", token);
    try {
      await getJson("/api/v1/jobs/" + encodeURIComponent(job.id) + "/flow", {
        method: "POST", headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token},
        body: JSON.stringify({flow: flow.map(s => ({provider: s.provider, enabled: s.enabled}))}),
      });
      await flows();
      document.getElementById("flow-message").textContent = "saved: " + job.id + " asks " + (flow.filter(s => s.enabled).map(s => s.provider).join(" → ") || "nobody");
      document.body.dataset.flowSaved = String(Date.now());
    } catch (error) { message.textContent = "not saved: " + error.message; }
  }

  window.addEventListener("hashchange", route);
  route();
})();
