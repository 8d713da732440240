// brook status page. It polls GET /status every second and renders it;
// it draws the topology from GET /status/topology.svg once, and looks
// keys up with GET /stores/{store}/keys/{key}. Everything comes from the
// instance that served the page: no other host is contacted. Numbers are
// written as plain integers (bytes also as data-value) so that scripts
// and tests can read them.
"use strict";

(function () {
  const POLL_MS = 1000;
  const TOKEN_KEY = "brook-status-token";
  // The page is served at <prefix>status/ui; the API lives at <prefix>.
  const base = location.pathname.replace(/status\/ui$/, "");
  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let topologyLoaded = false;
  let storeList = "";

  // el builds an element: attrs are attributes ("text" sets the text,
  // "data" a dataset), children are nodes or strings.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "data") Object.assign(e.dataset, v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children) e.append(c);
    return e;
  }

  function headers() {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  class HTTPError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function get(path, as) {
    const resp = await fetch(base + path, { headers: headers(), cache: "no-store" });
    if (resp.status === 401) {
      $("token-form").hidden = false;
    }
    if (!resp.ok) {
      let msg = resp.status + " " + resp.statusText;
      try { const body = await resp.json(); if (body.error) msg = body.error; } catch (e) { /* not JSON */ }
      throw new HTTPError(resp.status, msg);
    }
    return as === "text" ? resp.text() : resp.json();
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = n, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
  }

  function clock(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleTimeString([], { hour12: false });
  }

  function num(n, attrs) {
    return el("td", Object.assign({ class: "num", text: n }, attrs || {}));
  }

  function renderHeader(s) {
    $("app-id").textContent = s.application_id;
    const st = $("app-state");
    st.textContent = s.state;
    st.dataset.state = s.state;
    $("app-endpoint").textContent = s.endpoint || "(no endpoint)";
    $("app-guarantee").textContent = s.guarantee.replace(/_/g, "-");
    $("app-generation").textContent = s.generation < 0 ? "–" : String(s.generation);
    $("app-time").textContent = clock(s.time);
    const problems = $("problems");
    problems.replaceChildren(...s.problems.map((p) => el("li", { text: p })));
  }

  function renderInstances(s) {
    $("instances").tBodies[0].replaceChildren(...s.instances.map((i) =>
      el("tr", { data: { endpoint: i.endpoint, self: String(i.self) } },
        el("td", { text: (i.endpoint || "(none)") + (i.self ? "  (this one)" : "") }),
        el("td", { text: i.member_id.slice(0, 18) + (i.member_id.length > 18 ? "…" : ""), title: i.member_id }),
        el("td", { class: "wrap", text: i.tasks.join(", ") || "–", "data-field": "tasks" }))));
  }

  function renderTasks(s) {
    $("task-count").textContent = String(s.tasks.length);
    $("tasks").tBodies[0].replaceChildren(...s.tasks.map((t) =>
      el("tr", { data: { task: t.task, state: t.state } },
        el("td", { text: t.task }),
        el("td", { class: "state", text: t.state, data: { state: t.state }, "data-field": "state" }),
        num(t.lag, { "data-field": "lag" }),
        num(t.restored_records, { "data-field": "restored_records" }))));
  }

  function renderLag(s) {
    let total = 0;
    const kinds = new Set();
    $("lag").tBodies[0].replaceChildren(...s.partitions.map((p) => {
      total += p.lag;
      kinds.add(p.end_kind);
      return el("tr", { data: { task: p.task, topic: p.topic, partition: String(p.partition) } },
        el("td", { text: p.task }),
        el("td", { text: p.topic }),
        num(p.partition),
        num(p.committed < 0 ? "–" : p.committed, { "data-field": "committed" }),
        num(p.position, { "data-field": "position" }),
        num(p.end, { "data-field": "end", title: p.end_kind }),
        num(p.lag, { "data-field": "lag", class: p.lag > 0 ? "num lagging" : "num" }));
    }));
    $("total-lag").textContent = String(total);
    const words = { high_watermark: "high watermark", last_stable_offset: "last stable offset", last_fetch: "last fetch's high watermark (listing failed)" };
    $("lag-note").textContent = kinds.size ? "end = " + [...kinds].map((k) => words[k] || k).join(", ") : "no running tasks";
  }

  function renderRestores(s) {
    $("restores").tBodies[0].replaceChildren(...s.restores.map((r) =>
      el("tr", { data: { task: r.task, store: r.store, partition: String(r.partition), done: String(r.done) } },
        el("td", { text: r.task }),
        el("td", { text: r.store }),
        el("td", {}, el("progress", { max: Math.max(r.total, 1), value: r.total > 0 ? r.restored : 1 }),
          " " + (r.done ? "done" : Math.floor(100 * r.restored / Math.max(r.total, 1)) + "%")),
        el("td", { class: "num" },
          el("span", { "data-field": "restored", text: r.restored }), " / ",
          el("span", { "data-field": "total", text: r.total })))));
  }

  function renderStores(s) {
    $("stores").tBodies[0].replaceChildren(...s.stores.map((z) =>
      el("tr", { data: { task: z.task, store: z.store } },
        el("td", { text: z.task }),
        el("td", { text: z.store }),
        el("td", { text: z.kind }),
        num(z.keys === undefined ? "–" : z.keys, { "data-field": "keys" }),
        z.bytes_on_disk === undefined ? num("–", { "data-field": "bytes_on_disk" })
          : num(bytes(z.bytes_on_disk), { "data-field": "bytes_on_disk", "data-value": z.bytes_on_disk, title: z.bytes_on_disk + " bytes" }))));
    const list = s.key_value_stores.map((k) => k.store + "\u0000" + k.key_format).join("\u0001");
    if (list !== storeList) {
      storeList = list;
      const sel = $("lookup-store");
      const keep = sel.value;
      sel.replaceChildren(...s.key_value_stores.map((k) =>
        el("option", { value: k.store, text: k.store, data: { format: k.key_format } })));
      if (keep) sel.value = keep;
      showFormat();
    }
  }

  function renderWarnings(s) {
    $("warning-count").textContent = String(s.recent_warnings.length);
    // Newest first.
    $("warnings").tBodies[0].replaceChildren(...s.recent_warnings.slice().reverse().map((w) =>
      el("tr", { data: { level: w.level } },
        el("td", { text: clock(w.time), title: w.time }),
        el("td", { class: "level-" + w.level, text: w.level }),
        el("td", { class: "wrap", text: w.message }),
        el("td", { class: "wrap", text: w.action || "–", "data-field": "action" }),
        el("td", { class: "wrap", text: w.attrs.map((a) => a.key + "=" + a.value).join("  ") }))));
  }

  async function loadTopology() {
    const text = await get("status/topology.svg", "text");
    const doc = new DOMParser().parseFromString(text, "image/svg+xml");
    const svg = doc.documentElement;
    if (svg.nodeName !== "svg") throw new Error("topology.svg is not an SVG document");
    $("topology").replaceChildren(document.importNode(svg, true));
    topologyLoaded = true;
  }

  async function poll() {
    try {
      if (!topologyLoaded) await loadTopology();
      const s = await get("status");
      renderHeader(s);
      renderInstances(s);
      renderTasks(s);
      renderLag(s);
      renderRestores(s);
      renderStores(s);
      renderWarnings(s);
      document.body.dataset.loaded = "true";
      document.body.dataset.snapshot = s.time;
      $("token-form").hidden = true;
      const c = $("conn");
      c.dataset.ok = "true";
      c.textContent = "live, every " + POLL_MS / 1000 + " s";
    } catch (e) {
      const c = $("conn");
      c.dataset.ok = "false";
      c.textContent = "not updated: " + e.message;
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  function showFormat() {
    const opt = $("lookup-store").selectedOptions[0];
    $("lookup-format").textContent = opt ? "keys are " + opt.dataset.format : "no key-value store to look up";
  }

  async function lookup(ev) {
    ev.preventDefault();
    const store = $("lookup-store").value;
    const key = $("lookup-key").value;
    const res = $("lookup-result");
    res.dataset.store = store;
    res.dataset.key = key;
    res.dataset.state = "pending";
    try {
      const a = await get("stores/" + encodeURIComponent(store) + "/keys/" + encodeURIComponent(key));
      $("lookup-value").textContent = JSON.stringify(a.value, null, 2);
      $("lookup-where").textContent = "partition " + a.partition + ", task " + a.task + ", answered by " + (a.host || "this instance");
      res.dataset.state = "found";
    } catch (e) {
      $("lookup-value").textContent = e.message;
      $("lookup-where").textContent = "";
      res.dataset.state = e.status === 404 ? "missing" : "error";
    }
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token-input").value;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-form").hidden = true;
  });
  $("lookup-form").addEventListener("submit", lookup);
  $("lookup-store").addEventListener("change", showFormat);
  poll();
})();
