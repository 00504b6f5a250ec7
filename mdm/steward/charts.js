// The dashboard's charts: SVG drawn here from GET /v1/dashboard, no library, no build step.
// Every drawn value (a bar, a bar's segment, a point) has class "datum", data-* attributes
// naming what it shows, and a <title> the browser shows on hover.
"use strict";

const CHART = { width: 540, height: 190, left: 46, right: 12, top: 10, bottom: 30 };
const PALETTE = ["#2b6cb0", "#805ad5", "#dd6b20", "#38a169", "#d53f8c", "#718096", "#b7791f"];
const COLORS = {
  created: "#2b6cb0", linked: "#38a169", review: "#d69e2e", unchanged: "#a0aec0",
  rejected: "#c53030", merged: "#319795", not_a_match: "#c53030", undecided: "#d69e2e",
  merge: "#38a169", defer: "#a0aec0",
};
const HOUR_MS = 3600 * 1000;
const DAY_MS = 24 * HOUR_MS;

function svgText(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

// A round upper bound for a y axis (1, 2 or 5 times a power of ten).
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= value);
}

function colorOf(key, keys) {
  return COLORS[key] || PALETTE[keys.indexOf(key) % PALETTE.length];
}

function legend(keys) {
  return `<div class="legend">${keys.map((k) => `<span><i style="background:${colorOf(k, keys)}"></i>${svgText(k.replace(/_/g, " "))}</span>`).join("")}</div>`;
}

// The frame of a chart: y grid and labels up to `top`, x labels from `ticks` [[x, text]].
function frame(top, ticks, caption) {
  const { width, height, left, right, top: t, bottom } = CHART;
  const plotHeight = height - t - bottom;
  const grid = [0, 0.5, 1].map((f) => {
    const y = t + plotHeight * (1 - f);
    const label = Number.isInteger(top * f) ? top * f : (top * f).toFixed(1);
    return `<line class="grid" x1="${left}" x2="${width - right}" y1="${y}" y2="${y}"/>
      <text class="axis" x="${left - 4}" y="${y + 4}" text-anchor="end">${label}</text>`;
  }).join("");
  const xLabels = ticks.map(([x, label]) =>
    `<text class="axis" x="${x}" y="${height - bottom + 14}" text-anchor="middle">${svgText(label)}</text>`).join("");
  const captionText = caption
    ? `<text class="axis caption" x="${(left + width - right) / 2}" y="${height - 2}" text-anchor="middle">${svgText(caption)}</text>` : "";
  return grid + xLabels + captionText;
}

function svg(id, body) {
  return `<svg id="${id}" class="chart" viewBox="0 0 ${CHART.width} ${CHART.height}" role="img">${body}</svg>`;
}

// A time axis of `count` slots of `stepMs` from `start`: the x of a time, and its ticks.
function timeAxis(start, count, stepMs, every, format) {
  const { width, left, right } = CHART;
  const slot = (width - left - right) / count;
  const x = (t) => left + ((t - start) / stepMs) * slot;
  const ticks = [];
  for (let i = 0; i < count; i += every) {
    const t = new Date(start + i * stepMs);
    ticks.push([x(t.getTime()) + slot / 2, format(t)]);
  }
  return { x, slot, ticks };
}

function hourAxis(history) {
  const hours = history.hours;
  const every = hours <= 24 ? 3 : hours <= 24 * 7 ? 24 : 24 * 5;
  const format = hours <= 24
    ? (t) => t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : (t) => t.toLocaleDateString([], { month: "short", day: "numeric" });
  return timeAxis(new Date(history.since).getTime(), hours, HOUR_MS, every, format);
}

// Stacked bars: `stacks` maps a slot's time (ms) to [[key, value, attributes]] in stack order.
function stackedBars(id, axis, stacks, keys, caption, unit) {
  const { height, top, bottom } = CHART;
  const plotHeight = height - top - bottom;
  let highest = 0;
  for (const parts of stacks.values()) highest = Math.max(highest, parts.reduce((s, p) => s + p[1], 0));
  const max = niceMax(highest);
  const barWidth = Math.max(1, axis.slot * 0.8);
  let body = "";
  for (const [t, parts] of stacks) {
    let base = 0;
    for (const [key, value, attributes] of parts) {
      const y = top + plotHeight * (1 - (base + value) / max);
      const h = plotHeight * (value / max);
      const data = Object.entries(attributes).map(([k, v]) => `data-${k}="${svgText(v)}"`).join(" ");
      body += `<rect class="datum" ${data} x="${axis.x(t) + (axis.slot - barWidth) / 2}" y="${y}" width="${barWidth}" height="${Math.max(h, 0.5)}" fill="${colorOf(key, keys)}"><title>${svgText(`${new Date(t).toLocaleString()}: ${value} ${unit} ${key.replace(/_/g, " ")}`)}</title></rect>`;
      base += value;
    }
  }
  return svg(id, frame(max, axis.ticks, caption) + body);
}

// Lines with a point per value: `lines` maps a key to [[time (ms), value, attributes]].
function pointLines(id, axis, lines, keys, caption, format) {
  const { height, top, bottom } = CHART;
  const plotHeight = height - top - bottom;
  let highest = 0;
  for (const points of lines.values()) for (const p of points) highest = Math.max(highest, p[1]);
  const max = niceMax(highest);
  let body = "";
  for (const [key, points] of lines) {
    const color = colorOf(key, keys);
    const xy = points.map(([t, v]) => [axis.x(t) + axis.slot / 2, top + plotHeight * (1 - v / max)]);
    if (xy.length > 1) {
      body += `<polyline class="line" fill="none" stroke="${color}" points="${xy.map((p) => p.join(",")).join(" ")}"/>`;
    }
    points.forEach(([t, v, attributes], i) => {
      const data = Object.entries(attributes).map(([k, a]) => `data-${k}="${svgText(a)}"`).join(" ");
      body += `<circle class="datum" ${data} cx="${xy[i][0]}" cy="${xy[i][1]}" r="3" fill="${color}"><title>${svgText(`${new Date(t).toLocaleString()}: ${key.replace(/_/g, " ")} ${format(v)}`)}</title></circle>`;
    });
  }
  return svg(id, frame(max, axis.ticks, caption) + body);
}

function card(id, title, note, keys, chart) {
  return `<div class="card chart-card" id="${id}"><h2>${svgText(title)}</h2>
    <p class="muted note">${note}</p>${keys.length ? legend(keys) : ""}${chart}</div>`;
}

function empty(id, title, note) {
  return `<div class="card chart-card" id="${id}"><h2>${svgText(title)}</h2>
    <p class="muted note">${note}</p><p class="muted empty">No data in this window yet.</p></div>`;
}

// -- the charts ---------------------------------------------------------------------

const KINDS = ["linked", "merged", "not_a_match", "undecided"];

function logOdds(p) {
  return Math.log2(p / (1 - p));
}

// A probability readable at both ends: 0.0001 as 1e-4, 0.999999 as 1−1e-6.
function probabilityLabel(w) {
  const p = 1 / (1 + Math.pow(2, -w));
  if (p < 0.01) return p.toExponential(0);
  if (p < 0.99) return p.toFixed(2);
  if (p < 0.9999) return p.toFixed(4);
  return `1−${(1 - p).toExponential(0)}`;
}

function histogramChart(h) {
  const { width, height, left, right, top, bottom } = CHART;
  const plotHeight = height - top - bottom;
  const review = logOdds(h.review);
  const autoLink = logOdds(h.auto_link);
  const low = Math.floor(Math.min(review - 2, ...h.bins.map((b) => b.weight)));
  const high = Math.ceil(Math.max(autoLink + 2, ...h.bins.map((b) => b.weight + 1)));
  const scale = (width - left - right) / (high - low);
  const x = (w) => left + (w - low) * scale;
  const max = niceMax(Math.max(...h.bins.map((b) => KINDS.reduce((s, k) => s + b[k], 0))));
  let body = "";
  for (const b of h.bins) {
    const total = KINDS.reduce((s, k) => s + b[k], 0);
    const tip = `${b.low.toPrecision(4)} to ${b.high.toPrecision(4)}: ` +
      KINDS.filter((k) => b[k]).map((k) => `${b[k]} ${k.replace(/_/g, " ")}`).join(", ");
    body += `<g class="datum" data-weight="${b.weight}" data-count="${total}"><title>${svgText(tip)}</title>`;
    let base = 0;
    for (const kind of KINDS) {
      if (!b[kind]) continue;
      const y = top + plotHeight * (1 - (base + b[kind]) / max);
      body += `<rect x="${x(b.weight) + 1}" y="${y}" width="${Math.max(scale - 2, 1)}" height="${plotHeight * (b[kind] / max)}" fill="${COLORS[kind]}"/>`;
      base += b[kind];
    }
    body += "</g>";
  }
  for (const [name, w, p] of [["review", review, h.review], ["auto_link", autoLink, h.auto_link]]) {
    body += `<line class="threshold" data-threshold="${name}" x1="${x(w)}" x2="${x(w)}" y1="${top}" y2="${height - bottom}"/>
      <text class="threshold-label" x="${x(w) + 3}" y="${top + 10}">${name === "review" ? "review" : "auto-link"} ${p}</text>`;
  }
  const step = Math.max(1, Math.ceil((high - low) / 8));
  const ticks = [];
  for (let w = Math.ceil(low / step) * step; w <= high; w += step) ticks.push([x(w), probabilityLabel(w)]);
  return svg(`chart-probabilities-${h.entity}`, frame(max, ticks, "match probability (spaced by log-odds)") + body);
}

function probabilitiesCard(histograms) {
  const note = "Probabilities the hub keeps: of records the model linked, and of review tasks " +
    "by their outcome. The lines are the model's thresholds.";
  const drawn = histograms.filter((h) => h.bins.length);
  if (!drawn.length) return empty("chart-probabilities", "Match probabilities", note);
  const charts = drawn.map((h) => `<div class="entity-chart" data-entity="${svgText(h.entity)}">
    <h3>${svgText(h.entity)} <span class="muted">model v${h.model_version}</span></h3>${histogramChart(h)}</div>`).join("");
  return card("chart-probabilities", "Match probabilities", note, KINDS, charts);
}

function ingestedCard(history) {
  const note = "Records received per hour, by source, and what became of them.";
  const sources = [...new Set(history.ingested.map((p) => p.source))].sort();
  if (!sources.length) return empty("chart-ingested", "Records ingested per hour", note);
  const order = ["created", "linked", "review", "unchanged", "rejected"];
  const axis = hourAxis(history);
  const charts = sources.map((source) => {
    const sums = new Map();
    for (const p of history.ingested.filter((q) => q.source === source)) {
      const key = `${Date.parse(p.at)}|${p.key}`;
      sums.set(key, (sums.get(key) || 0) + p.value);
    }
    const stacks = new Map();
    for (const [key, value] of [...sums].sort((a, b) => order.indexOf(a[0].split("|")[1]) - order.indexOf(b[0].split("|")[1]))) {
      const [t, outcome] = key.split("|");
      if (!stacks.has(Number(t))) stacks.set(Number(t), []);
      stacks.get(Number(t)).push([outcome, value, { source, outcome, hour: new Date(Number(t)).toISOString(), value }]);
    }
    return `<div class="entity-chart" data-source="${svgText(source)}"><h3>${svgText(source)}</h3>
      ${stackedBars(`chart-ingested-${source}`, axis, stacks, order, "", "records")}</div>`;
  }).join("");
  return card("chart-ingested", "Records ingested per hour", note, order, charts);
}

function openReviewsCard(history) {
  const note = "Open and deferred review tasks, per entity, as sampled each hour.";
  return linesCard("chart-open-reviews", "Open review tasks", note, history, history.open_reviews,
    (p) => p.entity, (v) => `${v} open`);
}

function exceptionsCard(history) {
  const note = "Data-quality exceptions per rule (GET /v1/exceptions lists them), sampled hourly.";
  return linesCard("chart-exceptions", "Data-quality exceptions", note, history, history.exceptions,
    (p) => p.key, (v) => `${v} exception(s)`);
}

function outboxCard(history) {
  const pending = new Map(history.outbox_pending.map((p) => [Date.parse(p.at), p.value]));
  const note = "The age of the oldest event not yet published to NATS: each hour's highest sample.";
  return linesCard("chart-outbox", "Outbox lag", note, history, history.outbox_lag_seconds,
    () => "lag", (v) => `${v.toFixed(1)} s`, (p) => ({ pending: pending.get(Date.parse(p.at)) ?? 0 }));
}

function linesCard(id, title, note, history, points, keyOf, format, extra) {
  if (!points.length) return empty(id, title, note);
  const lines = new Map();
  for (const p of points) {
    const key = keyOf(p);
    if (!lines.has(key)) lines.set(key, []);
    lines.get(key).push([Date.parse(p.at), p.value, { key, hour: p.at, value: p.value, ...(extra ? extra(p) : {}) }]);
  }
  const keys = [...lines.keys()].sort();
  const sorted = new Map(keys.map((k) => [k, lines.get(k).sort((a, b) => a[0] - b[0])]));
  return card(id, title, note, keys.length > 1 ? keys : [],
    pointLines(`${id}-svg`, hourAxis(history), sorted, keys, "", format));
}

function decisionsCard(history) {
  const note = `Stewards' decisions per day (UTC), over the last ${history.days} days.`;
  if (!history.decisions_per_day.length) return empty("chart-decisions", "Decisions per day", note);
  const order = ["merge", "not_a_match", "defer"];
  const today = new Date();
  const start = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()) - (history.days - 1) * DAY_MS;
  const axis = timeAxis(start, history.days, DAY_MS, history.days <= 7 ? 1 : 5,
    (t) => t.toLocaleDateString([], { month: "short", day: "numeric", timeZone: "UTC" }));
  const sums = new Map();
  for (const p of history.decisions_per_day) {
    const key = `${Date.parse(p.at)}|${p.key}`;
    sums.set(key, (sums.get(key) || 0) + p.value);
  }
  const stacks = new Map();
  for (const [key, value] of [...sums].sort((a, b) => order.indexOf(a[0].split("|")[1]) - order.indexOf(b[0].split("|")[1]))) {
    const [t, decision] = key.split("|");
    if (!stacks.has(Number(t))) stacks.set(Number(t), []);
    stacks.get(Number(t)).push([decision, value, { decision, day: new Date(Number(t)).toISOString().slice(0, 10), value }]);
  }
  return card("chart-decisions", "Decisions per day", note, order,
    stackedBars("chart-decisions-svg", axis, stacks, order, "", "decided"));
}

// Every chart of the dashboard, from GET /v1/dashboard's answer.
function dashboardCharts(d) {
  const h = d.history;
  return `<div class="charts">
    ${probabilitiesCard(d.probabilities)}
    ${ingestedCard(h)}
    ${openReviewsCard(h)}
    ${decisionsCard(h)}
    ${outboxCard(h)}
    ${exceptionsCard(h)}
  </div>`;
}
