// The stewards' page: plain JS over the hub's JSON API, no build step.
// Every request carries X-API-Key (the key typed in the header box, kept in
// sessionStorage) so the page works unchanged once the hub checks keys.
"use strict";

const view = document.getElementById("view");
const flash = document.getElementById("flash");
const keyBox = document.getElementById("api-key");
const actorBox = document.getElementById("actor");
const ENTITIES = ["customer", "worker", "project", "legal_entity"];
const PAGE = 50;
let nextFlash = null;  // [message, kind] to show after the next navigation

keyBox.value = sessionStorage.getItem("mdm.apiKey") || "";
actorBox.value = sessionStorage.getItem("mdm.actor") || "";
keyBox.addEventListener("change", () => sessionStorage.setItem("mdm.apiKey", keyBox.value));
actorBox.addEventListener("change", () => sessionStorage.setItem("mdm.actor", actorBox.value));

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

function show(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// A message under the header; `link` ({ href, text }) adds a link after it.
function say(message, kind, link) {
  flash.textContent = message;
  flash.className = kind || "";
  if (link) {
    const a = document.createElement("a");
    a.href = link.href;
    a.textContent = link.text;
    a.id = "flash-link";
    flash.append(" ", a);
  }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (keyBox.value) headers["X-API-Key"] = keyBox.value;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const where = (data && data.errors || []).map((e) => `${e.path}: ${e.message}`).join("; ");
    const detail = data ? `${data.title}: ${data.detail || ""} ${where}` : response.statusText;
    throw new Error(`${response.status} ${detail}`.trim());
  }
  return data;
}

function actor() {
  const name = actorBox.value.trim();
  if (!name) throw new Error("Type your name in the Steward box first.");
  sessionStorage.setItem("mdm.actor", name);
  return name;
}

// The name typed in the Steward box, if any: the hub records the key's own identity as
// the actor and this name as the person it acts for (docs/security.md).
function onBehalfOf() {
  const name = actorBox.value.trim();
  if (name) sessionStorage.setItem("mdm.actor", name);
  return name || undefined;
}

function params() {
  const hash = location.hash || "#/queue";
  const i = hash.indexOf("?");
  return new URLSearchParams(i < 0 ? "" : hash.slice(i + 1));
}

// -- the queue ------------------------------------------------------------------------

const FILTERS = ["entity", "status", "min_probability", "max_probability", "min_age_hours",
  "assignee", "sort", "offset"];

async function queueView() {
  const p = params();
  const query = new URLSearchParams({ limit: PAGE });
  for (const name of FILTERS) if (p.get(name)) query.set(name, p.get(name));
  const list = await api("GET", `/v1/reviews?${query}`);
  const offset = Number(p.get("offset") || 0);
  const context = queueContext();
  const option = (name, values, labels) => values.map((v, i) =>
    `<option value="${esc(v)}" ${p.get(name) === v ? "selected" : ""}>${esc(labels ? labels[i] : v || "any")}</option>`).join("");
  const rows = list.tasks.map((t) => `
    <tr data-task="${t.id}">
      <td><input type="checkbox" class="pick" value="${t.id}" aria-label="select task ${t.id}"></td>
      <td><a href="${withContext(`#/task/${t.id}`, context)}">#${t.id}</a></td>
      <td>${esc(t.entity)}</td>
      <td>${esc(t.source)}:${esc(t.source_id)}</td>
      <td><a href="#/golden/${esc(t.entity)}/${esc(t.golden_id)}">${esc(t.golden_id)}</a></td>
      <td><a href="#/golden/${esc(t.entity)}/${esc(t.candidate_id)}">${esc(t.candidate_id)}</a></td>
      <td>${esc(t.reason)}</td>
      <td>${t.probability.toFixed(3)}</td>
      <td>${esc(new Date(t.created_at).toLocaleString())}</td>
      <td>${esc(t.assigned_to || "")}</td>
      <td class="status">${esc(t.status)}</td>
    </tr>`).join("");
  view.innerHTML = `
    <h1>Review queue <span class="muted" id="queue-total">${list.total} task(s)</span></h1>
    <form class="filters" id="filters">
      <label>Entity <select name="entity">${option("entity", ["", ...ENTITIES])}</select></label>
      <label>Status <select name="status">${option("status",
        ["open", "deferred", "undecided", "merged", "not_a_match", "superseded", "any"])}</select></label>
      <label>Min probability <input name="min_probability" type="number" step="0.01" min="0" max="1" value="${esc(p.get("min_probability") || "")}"></label>
      <label>Max probability <input name="max_probability" type="number" step="0.01" min="0" max="1" value="${esc(p.get("max_probability") || "")}"></label>
      <label>Older than (hours) <input name="min_age_hours" type="number" step="1" min="0" value="${esc(p.get("min_age_hours") || "")}"></label>
      <label>Assignee (- = nobody) <input name="assignee" value="${esc(p.get("assignee") || "")}"></label>
      <label>Sort <select name="sort">${option("sort",
        ["created_at", "-created_at", "-probability", "probability"],
        ["oldest first", "newest first", "most likely first", "least likely first"])}</select></label>
      <button type="submit">Filter</button>
    </form>
    <div class="bulk">
      <label><input type="checkbox" id="pick-all"> all on this page</label>
      <input id="bulk-comment" placeholder="comment for the selected tasks" size="36">
      <button class="merge" data-bulk="merge">Merge selected</button>
      <button class="not-a-match" data-bulk="not_a_match">Not a match</button>
      <button data-bulk="defer">Defer</button>
    </div>
    <table id="queue">
      <thead><tr><th></th><th>Task</th><th>Entity</th><th>Record</th><th>Its golden record</th>
      <th>Candidate</th><th>Why</th><th>Probability</th><th>Opened</th><th>Assignee</th><th>Status</th></tr></thead>
      <tbody>${rows || `<tr><td colspan="11" class="muted">No tasks.</td></tr>`}</tbody>
    </table>
    <div>
      ${offset > 0 ? `<a id="prev" href="${pageLink(p, Math.max(0, offset - PAGE))}">← previous</a>` : ""}
      ${offset + PAGE < list.total ? `<a id="next" href="${pageLink(p, offset + PAGE)}">next →</a>` : ""}
    </div>`;
  document.getElementById("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(event.target)) if (v) q.set(k, v);
    location.hash = `#/queue?${q}`;
  });
  document.getElementById("pick-all").addEventListener("change", (event) => {
    for (const box of view.querySelectorAll(".pick")) box.checked = event.target.checked;
  });
  for (const button of view.querySelectorAll("[data-bulk]")) {
    button.addEventListener("click", () => bulkDecide(button.dataset.bulk));
  }
}

function pageLink(p, offset) {
  const q = new URLSearchParams(p);
  q.set("offset", offset);
  return `#/queue?${q}`;
}

async function bulkDecide(decision) {
  const ids = [...view.querySelectorAll(".pick:checked")].map((box) => Number(box.value));
  if (!ids.length) return say("Select tasks first.", "error");
  const comment = document.getElementById("bulk-comment").value || null;
  const body = { actor: onBehalfOf(), comment, decisions: ids.map((id) => ({ task_id: id, decision })) };
  const answer = await api("POST", "/v1/reviews/decisions", body);
  const failed = answer.results.filter((r) => !r.ok)
    .map((r) => `#${r.task_id}: ${r.error.detail || r.error.title}`);
  await queueView();
  say(`${answer.decided} decided (${decision}), ${answer.failed} failed. ${failed.join("; ")}`,
    answer.failed ? "error" : "ok");
}

// -- one task -------------------------------------------------------------------------

// The queue filters a task was opened with: the next task after a decision comes from
// the same queue, and "← queue" goes back to it.
const QUEUE_CONTEXT = ["entity", "min_probability", "max_probability", "min_age_hours",
  "assignee", "sort"];
// The attributes a record is recognised by come first; the rest follow alphabetically.
const LEADING = ["name", "legal_name", "given_name", "middle_name", "family_name"];
// Keys that decide the task on screen (not while typing in a box).
const SHORTCUTS = { m: "merge", n: "not_a_match", d: "defer" };
let deciding = false;  // a decision is on its way: further keys and clicks wait for it

function queueContext() {
  const p = params();
  const q = new URLSearchParams();
  for (const name of QUEUE_CONTEXT) if (p.get(name)) q.set(name, p.get(name));
  return q;
}

function withContext(path, context) {
  const query = context.toString();
  return query ? `${path}?${query}` : path;
}

function attributeOrder(names) {
  const rank = (name) => (LEADING.includes(name) ? LEADING.indexOf(name) : LEADING.length);
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function sideHeading(side, entity) {
  return `<a href="#/golden/${esc(entity)}/${esc(side.golden_id)}">${esc(side.golden_id)}</a>
    <span class="muted">${esc(side.status)} v${side.version}${side.merged_into ? ` → ${esc(side.merged_into)}` : ""}</span>`;
}

function provenance(side, name) {
  const p = side.provenance[name];
  return p ? `<span class="from">${esc(p.source)}:${esc(p.source_id)}</span>` : "";
}

// The two golden records attribute by attribute: this record's beside the candidate's,
// agreeing values shown as such, the differing parts of differing values marked.
function comparison(d, entity) {
  const names = attributeOrder([...new Set([
    ...Object.keys(d.left.attributes), ...Object.keys(d.right.attributes)])]);
  const rows = names.map((name) => {
    const c = Review.compareAttribute(name, d.left.attributes[name], d.right.attributes[name],
      d.different.includes(name));
    const badge = { agree: "same", differ: "differs", "one-sided": "one side", masked: "masked" }[c.state];
    return `<tr class="${c.state}" data-attr="${esc(name)}">
      <th>${esc(name)} <span class="state">${badge}</span></th>
      <td class="this">${c.left}${provenance(d.left, name)}</td>
      <td class="candidate">${c.right}${provenance(d.right, name)}</td></tr>`;
  }).join("");
  return `<table id="compare">
    <thead><tr><th>attribute</th><th>this record · ${sideHeading(d.left, entity)}</th>
      <th>candidate · ${sideHeading(d.right, entity)}</th></tr></thead>
    <tbody>${rows}</tbody></table>`;
}

function sourceRecords(side) {
  return side.records.map((r) =>
    `<li>${esc(r.source)}:${esc(r.source_id)}${r.under_review ? " <strong>(under review)</strong>" : ""}</li>`).join("");
}

// A field's weight, or the mask a caller without the sensitive grant gets instead.
function weightCell(weight) {
  return typeof weight === "number"
    ? `<td class="${weight >= 0 ? "pos" : "neg"}">${weight.toFixed(2)}</td>`
    : `<td class="muted">${esc(show(weight))}</td>`;
}

function waterfall(explanation) {
  const rows = (explanation.fields || []).map((f) => `
    <tr><td>${esc(f.field)}</td><td>${esc(f.level)}</td><td>${esc(show(f.left))}</td><td>${esc(show(f.right))}</td>
    ${weightCell(f.weight)}</tr>`).join("");
  return `<table id="waterfall"><thead><tr><th>field</th><th>level</th><th>record</th><th>candidate</th><th>weight</th></tr></thead>
    <tbody><tr><td colspan="4">prior</td><td>${(explanation.prior_weight || 0).toFixed(2)}</td></tr>${rows}
    <tr><th colspan="4">total weight (probability ${explanation.probability.toFixed(3)})</th><th>${explanation.weight.toFixed(2)}</th></tr></tbody></table>`;
}

function decideButtons() {
  const button = (key, decision, label, css) =>
    `<button class="${css}" data-decide="${decision}" aria-keyshortcuts="${key}">${label} <kbd>${key}</kbd></button>`;
  return `<div class="decide">
      <input id="comment" placeholder="comment (kept with the decision; Esc leaves the box)">
      ${button("m", "merge", "Merge", "merge")}
      ${button("n", "not_a_match", "Not a match", "not-a-match")}
      ${button("d", "defer", "Defer", "")}</div>`;
}

async function taskView(id) {
  const d = await api("GET", `/v1/reviews/${id}`);
  const t = d.task;
  const context = queueContext();
  const decisions = d.decisions.map((x) =>
    `<li>${esc(new Date(x.created_at).toLocaleString())}: <strong>${esc(x.decision)}</strong> by ${esc(x.actor)} → ${esc(x.status)}${x.comment ? ` — “${esc(x.comment)}”` : ""}</li>`).join("");
  view.innerHTML = `
    <p><a href="${withContext("#/queue", context)}">← queue</a></p>
    <h1>Review task #${t.id} <span class="muted" id="task-status">${esc(t.status)}</span></h1>
    <p>${esc(t.entity)} record <strong>${esc(t.source)}:${esc(t.source_id)}</strong> (${esc(t.reason)}),
      match probability <strong>${t.probability.toFixed(3)}</strong>, model v${t.model_version}.
      ${t.assigned_to ? `Assigned to ${esc(t.assigned_to)}.` : ""}
      <button id="assign-me">Assign to me</button></p>
    ${d.decidable ? decideButtons()
      : `<p class="muted">This task cannot be decided now (${esc(t.status)}${d.left.status !== "active" || d.right.status !== "active" ? ", a golden record changed meanwhile" : ""}).</p>`}
    ${comparison(d, t.entity)}
    <div class="sides">
      <div class="side" id="left">This record's golden record: ${sideHeading(d.left, t.entity)}
        <div>Source records:<ul>${sourceRecords(d.left)}</ul></div></div>
      <div class="side" id="right">The candidate: ${sideHeading(d.right, t.entity)}
        <div>Source records:<ul>${sourceRecords(d.right)}</ul></div></div>
    </div>
    <h2>Why the matcher was unsure</h2>${waterfall(t.explanation)}
    <h2>Decisions</h2><ul id="decisions">${decisions || "<li class=muted>none yet</li>"}</ul>`;
  document.getElementById("assign-me").addEventListener("click", async () => {
    await api("POST", `/v1/reviews/${id}/assign`, { assignee: actor() });
    await taskView(id);
    say(`Task #${id} assigned to you.`, "ok");
  });
  for (const button of view.querySelectorAll("[data-decide]")) {
    button.addEventListener("click", () => decide(t, button.dataset.decide));
  }
}

async function decide(task, decision) {
  if (deciding) return;
  deciding = true;
  const buttons = [...view.querySelectorAll("[data-decide]")];
  for (const button of buttons) button.disabled = true;
  try {
    const body = { decision, actor: onBehalfOf(),
      comment: document.getElementById("comment").value || null };
    const result = await api("POST", `/v1/reviews/${task.id}/decision`, body);
    await openNextTask(task, result);
  } catch (error) {
    for (const button of buttons) button.disabled = false;
    say(error.message, "error");
  } finally {
    deciding = false;
  }
}

// After a decision: the next open task of the same queue, or the queue when none is left.
// The flash says what was decided (with the survivor of a merge) once the next page is on.
async function openNextTask(task, result) {
  const context = queueContext();
  const query = new URLSearchParams(context);
  query.set("status", "open");
  query.set("limit", "2");
  const next = (await api("GET", `/v1/reviews?${query}`)).tasks.find((t) => t.id !== task.id);
  const done = result.survivor_id
    ? `merged into ${result.survivor_id} (version ${result.version})`
    : result.status.replace(/_/g, " ");
  const link = result.survivor_id
    ? { href: `#/golden/${task.entity}/${result.survivor_id}`, text: `open ${result.survivor_id}` }
    : null;
  if (next) {
    nextFlash = [`Task #${task.id}: ${done}. Next: task #${next.id}.`, "ok", link];
    location.hash = withContext(`#/task/${next.id}`, context);
  } else {
    nextFlash = [`Task #${task.id}: ${done}. No open task left in this queue.`, "ok", link];
    location.hash = withContext("#/queue", context);
  }
}

document.addEventListener("keydown", (event) => {
  if (document.body.dataset.view !== "task") return;
  if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  const decision = SHORTCUTS[event.key];
  if (!decision || event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  const button = view.querySelector(`[data-decide="${decision}"]`);
  if (!button || button.disabled) return;
  event.preventDefault();
  button.click();
});

// -- golden records -------------------------------------------------------------------

async function goldenView(entity, id) {
  const g = await api("GET", `/v1/golden/${entity}/${id}`);
  const [history, links, reviews] = await Promise.all([
    api("GET", `/v1/golden/${entity}/${g.golden_id}/history?limit=50`),
    api("GET", `/v1/golden/${entity}/${g.golden_id}/links`),
    api("GET", `/v1/reviews?golden_id=${encodeURIComponent(g.golden_id)}&status=undecided`),
  ]);
  const attributes = Object.keys(g.attributes).sort().map((name) => {
    const p = g.provenance[name] || {};
    return `<tr data-attr="${esc(name)}"><th>${esc(name)}</th><td class="value">${Review.readableValue(name, g.attributes[name])}</td>
      <td>${esc(p.source || "")}:${esc(p.source_id || "")}</td><td>${esc(p.rule || "")}${p.actor ? ` (${esc(p.actor)})` : ""}</td></tr>`;
  }).join("");
  const xrefs = g.xrefs.map((x) => `<tr><td>${esc(x.source)}</td><td>${esc(x.source_id)}</td><td>${esc(x.role)}</td></tr>`).join("");
  const linkRows = links.links.map((l) => `<tr><td>${esc(l.source)}:${esc(l.source_id)}</td><td>${esc(l.rule)}</td>
    <td>${l.probability === null ? "" : l.probability.toFixed(3)}</td></tr>`).join("");
  const versions = history.versions.map((v) => `<tr><td>${v.version}</td><td>${esc(v.event_type)}</td>
    <td>${esc(v.changed.join(", "))}</td><td>${esc(v.cause.kind)} ${esc(v.cause.actor || v.cause.source || "")}${v.cause.source_id ? ":" + esc(v.cause.source_id) : ""}${v.cause.reason ? ` — “${esc(v.cause.reason)}”` : ""}</td>
    <td>${esc(new Date(v.changed_at).toLocaleString())}</td></tr>`).join("");
  const decisions = history.reviews.map((x) => `<li>task <a href="#/task/${x.task_id}">#${x.task_id}</a>:
    <strong>${esc(x.decision)}</strong> by ${esc(x.actor)} (${esc(new Date(x.created_at).toLocaleString())})${x.comment ? ` — “${esc(x.comment)}”` : ""}</li>`).join("");
  const open = reviews.tasks.map((t) => `<li><a href="#/task/${t.id}">#${t.id}</a> ${esc(t.source)}:${esc(t.source_id)} (${t.probability.toFixed(3)})</li>`).join("");
  view.innerHTML = `
    <p><a href="#/queue">← queue</a></p>
    <h1 id="golden-id">${esc(g.golden_id)} <span class="muted">${esc(g.entity)} · ${esc(g.status)} · version <span id="golden-version">${g.version}</span></span></h1>
    <h2>Attributes and provenance</h2>
    <table id="attributes"><thead><tr><th>attribute</th><th>value</th><th>won from</th><th>rule</th></tr></thead><tbody>${attributes}</tbody></table>
    <h2>Cross-references</h2>
    <table id="xrefs"><thead><tr><th>source</th><th>source id</th><th>role</th></tr></thead><tbody>${xrefs}</tbody></table>
    <h2>Why each record is here</h2>
    <table><thead><tr><th>record</th><th>rule</th><th>probability</th></tr></thead><tbody>${linkRows}</tbody></table>
    <h2>Open reviews</h2><ul>${open || "<li class=muted>none</li>"}</ul>
    <h2>History</h2>
    <table id="history"><thead><tr><th>v</th><th>event</th><th>changed</th><th>cause</th><th>when</th></tr></thead><tbody>${versions}</tbody></table>
    <h2>Review decisions</h2><ul id="review-decisions">${decisions || "<li class=muted>none</li>"}</ul>`;
}

async function searchView() {
  const q = params().get("q") || "";
  const found = await api("GET", `/v1/search/golden?q=${encodeURIComponent(q)}`);
  const rows = found.hits.map((h) => `<tr><td><a href="#/golden/${esc(h.entity)}/${esc(h.golden_id)}">${esc(h.golden_id)}</a></td>
    <td>${esc(h.entity)}</td><td>${esc(h.name || "")}</td><td>${esc(h.status)}</td><td>${esc(h.matched)}</td></tr>`).join("");
  view.innerHTML = `<h1>Golden records matching “${esc(q)}”</h1>
    <table id="search-results"><thead><tr><th>golden id</th><th>entity</th><th>name</th><th>status</th><th>matched</th></tr></thead>
    <tbody>${rows || `<tr><td colspan="5" class="muted">Nothing found.</td></tr>`}</tbody></table>`;
}

// -- dashboard ------------------------------------------------------------------------

function countTable(id, title, rows, keyName) {
  const body = rows.map((r) => `<tr><td>${esc(r.entity)}</td><td>${esc(r.key || r.bucket)}</td><td>${r.count}</td></tr>`).join("");
  return `<div class="card"><h2>${esc(title)}</h2><table id="${id}"><thead><tr><th>entity</th><th>${esc(keyName)}</th><th>count</th></tr></thead>
    <tbody>${body || `<tr><td colspan="3" class="muted">none</td></tr>`}</tbody></table></div>`;
}

const WINDOWS = [[24, "last 24 hours"], [24 * 7, "last 7 days"], [24 * 30, "last 30 days"]];

async function dashboardView() {
  const hours = Number(params().get("hours")) || 24;
  const d = await api("GET", `/v1/dashboard?hours=${hours}`);
  const windows = WINDOWS.map(([h, label]) =>
    `<option value="${h}" ${h === hours ? "selected" : ""}>${label}</option>`).join("");
  view.innerHTML = `<h1>Dashboard <span class="muted">${esc(new Date(d.generated_at).toLocaleString())}</span></h1>
    <label class="window">History <select id="dash-hours">${windows}</select></label>
    ${dashboardCharts(d)}
    <h2>Counts now</h2>
    <div class="cards">
      ${countTable("dash-records", "Source records", d.records, "source")}
      ${countTable("dash-golden", "Golden records", d.golden, "status")}
      ${countTable("dash-outcomes", "Match outcomes", d.match_outcomes, "rule")}
      ${countTable("dash-reviews", "Review tasks", d.review_outcomes, "status")}
      ${countTable("dash-ages", "Open reviews by age", d.open_reviews_by_age, "age")}
      ${countTable("dash-warnings", "Data-quality warnings", d.quality_warnings, "kind")}
      ${countTable("dash-exceptions", "Data-quality exceptions (GET /v1/exceptions)",
        Object.entries(d.exceptions || {}).map(([rule, count]) => ({entity: "", key: rule, count})), "rule")}
      <div class="card"><h2>Outbox</h2><p id="dash-outbox">${d.outbox.pending} event(s) waiting,
        oldest ${d.outbox.lag_seconds.toFixed(1)} s</p></div>
    </div>`;
  document.getElementById("dash-hours").addEventListener("change", (event) => {
    location.hash = `#/dashboard?hours=${event.target.value}`;
  });
}

// -- routing --------------------------------------------------------------------------

async function route() {
  const hash = (location.hash || "#/queue").split("?")[0];
  const parts = hash.slice(2).split("/");
  try {
    if (parts[0] === "task" && parts[1]) await taskView(Number(parts[1]));
    else if (parts[0] === "golden" && parts[2]) await goldenView(parts[1], parts[2]);
    else if (parts[0] === "search") await searchView();
    else if (parts[0] === "dashboard") await dashboardView();
    else await queueView();
    document.body.dataset.view = parts[0] || "queue";
  } catch (error) {
    say(error.message, "error");
  }
}

document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  location.hash = `#/search?q=${encodeURIComponent(document.getElementById("search-q").value.trim())}`;
});
window.addEventListener("hashchange", () => {
  const [message, kind, link] = nextFlash || ["", ""];
  nextFlash = null;
  say(message, kind, link);
  route();
});
window.addEventListener("unhandledrejection", (event) => say(event.reason.message, "error"));
route();
