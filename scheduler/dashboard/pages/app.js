// fleet's dashboard: each page polls the JSON API (scheduler/dashboard/app.py) and redraws
// what changed. Text goes into the page as text (textContent), never as markup; the only
// markup inserted is the SVG the server draws, parsed as SVG, not HTML.
"use strict";

const POLL_MS = 1000;
const $ = (selector) => document.querySelector(selector);

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function row(cells, attrs) {
  const tr = el("tr", null, attrs);
  for (const c of cells) tr.append(c instanceof Node ? c : el("td", c === null || c === undefined ? "-" : c));
  return tr;
}

function link(href, text) {
  const td = el("td");
  td.append(el("a", text, {href: href}));
  return td;
}

async function getJSON(url) {
  const reply = await fetch(url, {cache: "no-store"});
  const doc = await reply.json();
  if (!reply.ok) throw new Error(doc.error || reply.statusText);
  return doc;
}

async function getSVG(url) {
  const reply = await fetch(url, {cache: "no-store"});
  const text = await reply.text();
  if (!reply.ok) throw new Error(JSON.parse(text).error || reply.statusText);
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  return document.importNode(doc.documentElement, true);
}

// An elapsed time as squeue prints it: 5:07, 1:02:03, 2-03:04:05.
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  let s = Math.floor(seconds);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const two = (n) => String(n).padStart(2, "0");
  if (d) return `${d}-${two(h)}:${two(m)}:${two(s)}`;
  if (h) return `${h}:${two(m)}:${two(s)}`;
  return `${m}:${two(s)}`;
}

function when(ts) {
  return ts ? new Date(ts * 1000).toLocaleString() : "-";
}

function stateCell(state) {
  return el("td", state, {class: `state state-${state}`});
}

function updated(error) {
  $("#updated").textContent = error ? `not updated: ${error.message}` : `updated ${new Date().toLocaleTimeString()}`;
}

function every(ms, step) {
  const tick = async () => {
    try { await step(); updated(null); } catch (err) { updated(err); }
    setTimeout(tick, ms);
  };
  tick();
}

// -- the fleet page ---------------------------------------------------------------------
const JOBS_PAGE = 50;

function fleetPage() {
  let offset = 0;
  const form = $("#filters");
  form.addEventListener("input", () => { offset = 0; refresh(); });
  $("#prev").addEventListener("click", () => { offset = Math.max(0, offset - JOBS_PAGE); refresh(); });
  $("#next").addEventListener("click", () => { offset += JOBS_PAGE; refresh(); });

  async function refresh() {
    const params = new URLSearchParams({limit: JOBS_PAGE, offset: offset});
    for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
    const [status, page] = await Promise.all([getJSON("/api/status"), getJSON(`/api/jobs?${params}`)]);
    const counts = $("#counts");
    counts.replaceChildren(...Object.entries(status.jobs).map(([state, n]) => {
      const span = el("span", null, {"data-state": state});
      span.append(el("b", n), ` ${state}`);
      return span;
    }));
    $("#unrunnable").replaceChildren(...status.unrunnable.map((need) =>
      el("p", `Nobody can run ${need.pending} pending job(s): ${need.reason} (${need.jobs.join(", ")})`,
         {class: "error"})));
    $("#workers tbody").replaceChildren(...status.workers.map((w) => {
      const gpus = w.gpus.map((g) => `${g.index}: ${g.name} ${g.vram_free_gib}/${g.vram_total_gib} GiB free` +
                                     (g.held_by && g.held_by.length ? `, ${g.reserved_gib} GiB held by ` +
                                      g.held_by.join(", ") : ""));
      return row([w.name, w.host, w.drain_reason ? `${w.state} (${w.drain_reason})` : w.state,
                  `${w.busy_slots}/${w.slots}`, gpus.join("; ") || "-", (w.job_names || []).join(", ") || "-"],
                 {"data-worker": w.name});
    }));
    const gpuIndex = new Map(status.workers.flatMap((w) => w.gpus.map((g) => [g.key, `${g.index}`])));
    const gpus = (keys) => keys ? keys.split(",").map((k) => gpuIndex.get(k) || k).join(",") : null;
    $("#jobs tbody").replaceChildren(...page.jobs.map((j) => row(
      [link(`/jobs/${encodeURIComponent(j.name)}`, j.name), stateCell(j.state), j.reason, duration(j.elapsed_s),
       j.progress, j.host, gpus(j.gpu), j.worker, j.attempts], {"data-job": j.name})));
    $("#page").textContent = page.jobs.length ? `${offset + 1}-${offset + page.jobs.length}` : "none";
    $("#prev").disabled = offset === 0;
    $("#next").disabled = !page.more;
  }
  every(POLL_MS, refresh);
}

// -- a job's page -----------------------------------------------------------------------
const WAITING = new Set(["pending", "held", "blocked"]);

function jobPage() {
  const ref = decodeURIComponent(location.pathname.split("/")[2] || "");
  const api = `/api/jobs/${encodeURIComponent(ref)}`;
  const metric = $("#metric");
  let drawn = "";
  metric.addEventListener("change", () => { drawn = ""; });

  async function refresh() {
    const job = await getJSON(api);
    document.title = `fleet: ${job.name}`;
    $("#title").textContent = `${job.name} (${job.job_id})`;
    $("#summary").replaceChildren(el("span", job.state, {class: `state state-${job.state}`, id: "state"}),
                                  job.reason ? ` ${job.reason}` : "");
    const fields = [];
    for (const table of [job.identity, job.scheduling]) {
      for (const [k, v] of Object.entries(table || {})) {
        fields.push([k, typeof v === "object" ? JSON.stringify(v) : v]);
      }
    }
    if (job.forked_from) fields.push(["forked from", job.forked_from]);
    if (job.forked_into && job.forked_into.length) fields.push(["forked into", job.forked_into.join(", ")]);
    $("#fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
    $("#attempts tbody").replaceChildren(...job.attempts_detail.map((a) => row(
      [a.attempt, a.host, a.worker, a.gpu || "-", when(a.started_at), duration(a.elapsed_s), a.outcome || "running",
       a.exit_code, a.output_dir])));
    const waiting = WAITING.has(job.state);
    $("#explain-section").hidden = !waiting;
    if (waiting) {
      const why = await getJSON(`${api}/explain`);
      $("#explain").replaceChildren(el("li", why.summary),
        ...why.workers.map((w) => el("li", `${w.worker}: ${w.reason}`)),
        ...why.waiting_for.map((w) => el("li", `waiting: ${w}`)));
    }
    if (job.attempts_detail.length) {
      // Redrawn when the job reports a new line (its newest one is in the job's document) or
      // another metric is chosen; the server's chart names the metrics there are to choose.
      const reported = `${job.attempts}:${JSON.stringify(job.latest_metrics)}`;
      if (`${metric.value}:${reported}` !== drawn) {
        const query = metric.value ? `?metric=${encodeURIComponent(metric.value)}` : "";
        const svg = await getSVG(`${api}/chart.svg${query}`);
        const names = (svg.getAttribute("data-metrics") || "").split(",").filter(Boolean);
        if (names.join() !== [...metric.options].map((o) => o.value).join()) {
          metric.replaceChildren(...names.map((n) => el("option", n, {value: n})));
        }
        metric.value = svg.getAttribute("data-metric") || "";
        drawn = `${metric.value}:${reported}`;
        $("#chart").replaceChildren(svg);
      }
      const log = await getJSON(`${api}/log`);
      $("#log").textContent = log.lines.join("\n");
      $("#log-state").textContent = job.state === "running" ? "(following)" : "";
    }
  }
  every(POLL_MS, refresh);
}

// -- compare ------------------------------------------------------------------------------
function comparePage() {
  const form = $("#pick");
  const params = new URLSearchParams(location.search);
  for (const k of ["jobs", "model", "metric"]) if (params.get(k)) form.elements[k].value = params.get(k);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
    history.replaceState(null, "", `?${next}`);
    show();
  });

  async function show() {
    $("#error").textContent = "";
    const picked = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) picked.set(k, v);
    if (!picked.get("jobs") && !picked.get("model")) return;
    try {
      const rows = await getJSON(`/api/compare?${picked}`);
      const columns = rows.length ? Object.keys(rows[0]) : [];
      $("#table thead").replaceChildren(row(columns.map((c) => el("th", c))));
      $("#table tbody").replaceChildren(...rows.map((r) => row(columns.map((c) =>
        c === "name" ? link(`/jobs/${encodeURIComponent(r.name)}`, r.name) : r[c]))));
      if (picked.get("metric")) {
        const names = picked.get("jobs") || rows.map((r) => r.name).join(",");
        const chart = new URLSearchParams({jobs: names, metric: picked.get("metric")});
        const svg = await getSVG(`/api/chart.svg?${chart}`);
        $("#chart").replaceChildren(svg);
      }
    } catch (err) {
      $("#error").textContent = err.message;
    }
  }
  show();
}

const PAGES = {fleet: fleetPage, job: jobPage, compare: comparePage};
PAGES[document.body.dataset.page]();
