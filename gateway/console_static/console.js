// ASW gateway operator console: one ES module, no dependencies, no build step.
//
// Views are chosen by the URL fragment (#/overview, #/messages?state=DEAD, #/messages/<id>,
// #/dead-letters, #/dead-letters/<id>, #/certificates?within_days=30, #/partners, #/audit), so every
// view can be bookmarked and the back button works. Everything the console shows comes from
// the gateway's JSON API under /v1/. The DOM is built with createElement and text nodes only,
// never by parsing HTML strings, so nothing a message carries can become markup or script.

const REFRESH_MS = 5000;
const STALE_MS = 3 * REFRESH_MS;
const REPLAY_WATCH_MS = 30000;

const STATES = [
  "RECEIVED", "ACCEPTED", "QUEUED", "DELIVERING", "RETRYING", "DELIVERED", "RECEIPTED",
  "ANSWERED", "DEAD", "DISCARDED", "REJECTED", "DUPLICATE",
];
const ALWAYS_SHOWN_STATES = ["QUEUED", "RETRYING", "DELIVERED", "DEAD"];
const STUCK_STATES = new Set(["QUEUED", "DELIVERING", "RETRYING", "DEAD"]);
const STATE_TONE = {
  RECEIVED: "info", ACCEPTED: "info", QUEUED: "info", DELIVERING: "info",
  RETRYING: "warn", DELIVERED: "ok", RECEIPTED: "ok", ANSWERED: "ok",
  DEAD: "bad", DISCARDED: "neutral", REJECTED: "bad", DUPLICATE: "neutral",
};
const DOCUMENT_TYPES = {
  EFD: "Form D", ACDD: "ACDD", RES: "Customs Response", RCT: "Delivery receipt",
  RTR: "Re-transmission request", REJ: "Rejection notice", CLR: "Clarification",
  RCQ: "Retroactive check request", RCP: "Retroactive check reply",
  VVQ: "Verification visit request", VVC: "Verification visit consent",
  VVR: "Verification visit result", ODT: "Origin determination",
  OD: "Origin Declaration", CER: "Certified-exporter register update", AEO: "AEO status",
  CEQ: "Certified-exporter lookup", CEP: "Certified-exporter lookup response",
  AEQ: "AEO status query", AEP: "AEO status response",
};
const DEADLINE_TONE = {
  due: "warn", overdue: "bad", met: "ok", late: "bad", open: "warn", closed: "neutral",
  used: "ok",
};
const WITHIN_DAYS_CHOICES = [7, 14, 30, 60, 90, 180, 365];
const PAGE_SIZES = [25, 50, 100, 200];
const OPERATOR_NAME = "asw-console.operator";
const OPERATOR_KEY = "asw-console.operator-key";

// --- small DOM helpers -----------------------------------------------------------------------

/** Build an element: h("a", {href: "#/x", class: "y"}, "text", child, [more]). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** "2026-05-01 10:22:03 UTC" for an ISO timestamp; the raw text if it is not one. */
function formatUtc(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

function relative(iso, now = Date.now()) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const seconds = Math.round((now - d.getTime()) / 1000);
  const abs = Math.abs(seconds);
  const [value, unit] = abs < 60 ? [abs, "s"] : abs < 3600 ? [Math.round(abs / 60), "min"]
    : abs < 86400 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "d"];
  return seconds >= 0 ? `${value} ${unit} ago` : `in ${value} ${unit}`;
}

function timeEl(iso, { withRelative = false } = {}) {
  if (!iso) return h("span", { class: "empty" }, "—");
  const rel = relative(iso);
  return h("time", { datetime: iso, title: rel, class: "nowrap" },
    formatUtc(iso), withRelative && rel ? ` (${rel})` : null);
}

function stateBadge(state) {
  return h("span", { class: `badge ${STATE_TONE[state] || ""}`, dataset: { state } }, state);
}

function docType(code) {
  const name = DOCUMENT_TYPES[code];
  return name ? `${name}` : code || "—";
}

function dash(value) {
  return value === null || value === undefined || value === "" ? h("span", { class: "empty" }, "—")
    : value;
}

function codeEl(code) {
  return code ? h("code", {}, code) : h("span", { class: "empty" }, "—");
}

function messageHref(id) {
  return `#/messages/${encodeURIComponent(id)}`;
}

function deadLetterHref(id) {
  return `#/dead-letters/${encodeURIComponent(id)}`;
}

function idLink(id, href = messageHref(id)) {
  return h("a", { href, class: "id-link" }, id);
}

function table({ caption, head, rows, foot, label, empty }) {
  const columns = head.length;
  const body = rows.length ? rows
    : [h("tr", {}, h("td", { colspan: columns, class: "empty" }, empty || "Nothing to show."))];
  return h("div", { class: "table-wrap" },
    h("table", { "aria-label": caption ? null : label },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, head.map((cell) =>
        typeof cell === "string" ? h("th", { scope: "col" }, cell) : cell))),
      h("tbody", {}, body),
      foot ? h("tfoot", {}, foot) : null));
}

function num(value, attrs = {}) {
  const n = Number(value || 0);
  return h("td", { class: n === 0 ? "num zero" : "num", ...attrs }, String(n));
}

function panel(title, ...children) {
  const id = `panel-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id }, title), children);
}

function viewHead(title, lede, ...tools) {
  return h("div", { class: "view-head" },
    h("div", {}, h("h1", { tabindex: "-1" }, title), lede ? h("p", { class: "lede" }, lede) : null),
    tools.length ? h("div", { class: "toolbar" }, tools) : null);
}

function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  window.setTimeout(() => { region.textContent = text; }, 50);
}

// --- the API ---------------------------------------------------------------------------------

/** The operator API key, kept for this tab only (session storage), never shown. */
function operatorKey() {
  try { return window.sessionStorage.getItem(OPERATOR_KEY) || ""; } catch { return ""; }
}

function setOperatorKey(key) {
  try {
    if (key) window.sessionStorage.setItem(OPERATOR_KEY, key);
    else window.sessionStorage.removeItem(OPERATOR_KEY);
  } catch { /* storage disabled: the key lasts until the page is left */ }
  const forget = document.getElementById("forget-key");
  if (forget) forget.hidden = !operatorKey();
}

/** A refusal from the gateway (problem+json), or a failure to reach it. */
class ApiProblem extends Error {
  constructor(problem, status, correlationId) {
    super(problem.title || "Request failed");
    this.problem = problem;
    this.status = status;
    this.correlationId = correlationId;
  }
}

async function api(path, { method = "GET", json, text = false, signal } = {}) {
  const headers = { Accept: text ? "application/xml, text/xml, */*" : "application/json" };
  const key = operatorKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, signal, cache: "no-store", credentials: "same-origin" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiProblem({
      title: "The gateway cannot be reached",
      detail: `No answer for ${method} ${path}. Check that the gateway is running and this ` +
        "machine can reach it; the console will try again.",
      code: "network-error",
    }, 0, null);
  }
  const correlationId = response.headers.get("X-Correlation-ID");
  if (!response.ok) {
    let problem = null;
    if ((response.headers.get("Content-Type") || "").includes("json")) {
      try { problem = await response.json(); } catch { problem = null; }
    }
    if (!problem || typeof problem !== "object") {
      problem = {
        title: `The gateway answered ${response.status} ${response.statusText}`.trim(),
        detail: `${method} ${path} did not succeed.`,
      };
    }
    throw new ApiProblem(problem, response.status, correlationId);
  }
  return text ? response.text() : response.json();
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, String(value));
  }
  const s = search.toString();
  return s ? `?${s}` : "";
}

/** A readable box for a problem+json answer: title, detail, code, status, correlation id. */
function problemBox(error, context) {
  if (!(error instanceof ApiProblem)) {
    return h("div", { class: "problem", role: "alert" },
      h("h2", {}, context ? `${context}: something went wrong` : "Something went wrong"),
      h("p", {}, String(error && error.message ? error.message : error)));
  }
  const p = error.problem;
  const meta = [];
  if (p.code) meta.push(h("span", {}, "Code ", h("code", { class: "problem-code" }, p.code)));
  if (error.status) meta.push(h("span", {}, ` · HTTP ${error.status}`));
  if (p.retryable) meta.push(h("span", {}, " · worth retrying"));
  if (error.correlationId) {
    meta.push(h("span", {}, " · correlation id ", h("code", {}, error.correlationId)));
  }
  const findings = Array.isArray(p.findings) ? p.findings : [];
  return h("div", { class: "problem", role: "alert", dataset: { code: p.code || "" } },
    h("h2", { class: "problem-title" }, context ? `${context}: ${p.title || "failed"}` : p.title),
    p.detail ? h("p", { class: "problem-detail" }, p.detail) : null,
    findings.length ? h("ul", {}, findings.slice(0, 20).map((f) =>
      h("li", {}, [f.code, f.message || f.detail, f.path].filter(Boolean).join(" — ")))) : null,
    meta.length ? h("p", { class: "meta" }, meta) : null);
}

// --- router ----------------------------------------------------------------------------------

const main = () => document.getElementById("main");
let current = null;

function parseHash() {
  const raw = location.hash.startsWith("#/") ? location.hash.slice(2) : "overview";
  const [path, search = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map((part) => {
    try { return decodeURIComponent(part); } catch { return part; }
  });
  return { parts: parts.length ? parts : ["overview"], params: new URLSearchParams(search) };
}

const VIEWS = {
  overview: { title: "Overview", render: renderOverview, ownRefresh: true },
  messages: { title: "Messages", render: renderMessages, detail: renderMessage },
  "dead-letters": { title: "Dead letters", render: renderDeadLetters, detail: renderDeadLetter },
  certificates: { title: "Certificates", render: renderCertificates },
  partners: { title: "Partners", render: renderPartners },
  audit: { title: "Audit log", render: renderAudit },
};

// --- freshness: every view says when its data was read, and warns when that grows old -----------

let lastFresh = null;

/** The data on screen was just read from the gateway. */
function markFresh() {
  lastFresh = new Date();
  showFreshness();
}

function showFreshness() {
  const el = document.getElementById("as-of");
  if (!el) return;
  if (!lastFresh) {
    el.textContent = "";
    return;
  }
  const age = Date.now() - lastFresh.getTime();
  const stale = age > STALE_MS;
  el.classList.toggle("stale", stale);
  el.dataset.stale = String(stale);
  el.setAttribute("datetime", lastFresh.toISOString());
  el.textContent = `As of ${formatUtc(lastFresh.toISOString())}` +
    (stale ? ` — stale: not refreshed for ${Math.round(age / 1000)} s` : "") +
    (paused ? " (auto-refresh paused)" : "");
}

/** True while the operator is typing in, or has changed, a form of the view. */
function busyEditing(ctx) {
  const active = document.activeElement;
  const typing = active && active.closest && active.closest("form") &&
    ["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName);
  return ctx.dirty || Boolean(typing);
}

/** Read the view again every REFRESH_MS, unless paused, hidden or being edited. */
function autoRefresh(ctx) {
  ctx.later(() => {
    if (paused || document.hidden || busyEditing(ctx)) autoRefresh(ctx);
    else route({ focus: false, refreshing: true });
  }, REFRESH_MS);
}

async function route({ focus, refreshing = false }) {
  if (current) current.stop();
  const scroll = refreshing ? window.scrollY : 0;
  const { parts, params } = parseHash();
  const view = VIEWS[parts[0]];
  const controller = new AbortController();
  const timers = new Set();
  let stopped = false;
  const ctx = {
    signal: controller.signal,
    params,
    get active() { return current === ctx && !stopped; },
    later(fn, ms) {
      const id = window.setTimeout(() => { timers.delete(id); if (ctx.active) fn(); }, ms);
      timers.add(id);
      return id;
    },
    stop() {
      stopped = true;
      controller.abort();
      for (const id of timers) window.clearTimeout(id);
      timers.clear();
    },
  };
  current = ctx;
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === parts[0]) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const root = main();
  const title = view ? view.title : "Not found";
  document.title = `${title} · ASW gateway console`;
  try {
    if (!view) {
      replace(root, viewHead("Page not found", "There is no console view at this address."),
        h("p", {}, h("a", { href: "#/overview" }, "Go to the overview")));
    } else if (parts.length > 1 && view.detail) {
      await view.detail(root, ctx, parts.slice(1).join("/"));
    } else {
      await view.render(root, ctx);
    }
    if (ctx.active && view) markFresh();
  } catch (error) {
    if (error && error.name === "AbortError") return;
    if (error instanceof ApiProblem && error.status === 401) {
      if (ctx.active) showSignIn(error);
      return;
    }
    if (ctx.active) replace(root, viewHead(title), problemBox(error));
  }
  if (!ctx.active) return;
  if (view && !view.ownRefresh) autoRefresh(ctx);
  if (refreshing) {
    window.scrollTo(0, scroll);
    return;
  }
  if (focus) {
    const heading = root.querySelector("h1");
    (heading || root).focus();
  }
  announce(`${document.title.split(" · ")[0]} loaded`);
}

/** The gateway wants the operator key (401): ask for it, then show the view again. */
function showSignIn(error) {
  if (current) current.stop();
  const root = main();
  const refused = Boolean(operatorKey());
  setOperatorKey("");
  const input = h("input", { id: "operator-key", name: "operator-key", type: "password",
    autocomplete: "off", spellcheck: "false", required: true,
    "aria-describedby": "operator-key-hint operator-key-error" });
  const inputError = h("span", { id: "operator-key-error", class: "error-text" });
  const form = h("form", { class: "filters sign-in", "aria-label": "Sign in as operator" },
    h("div", { class: "field" },
      h("label", { for: "operator-key" }, "Operator key"),
      h("span", { class: "hint", id: "operator-key-hint" },
        "Kept only in this browser tab and sent with each request to this gateway."),
      input, inputError),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Use this key")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      input.setAttribute("aria-invalid", "true");
      inputError.textContent = "Enter the operator key.";
      input.focus();
      return;
    }
    input.value = "";
    setOperatorKey(key);
    route({ focus: true });
  });
  document.title = "Operator key required · ASW gateway console";
  replace(root,
    viewHead("Operator key required",
      "This gateway asks operators to prove who they are before it shows its queues and messages."),
    problemBox(error, refused ? "The key was refused" : null),
    form);
  const heading = root.querySelector("h1");
  if (heading) heading.focus();
  announce(refused ? "The operator key was refused." : "The operator key is required.");
}

function navigate(hash) {
  if (location.hash === hash) route({ focus: true });
  else location.hash = hash;
}

// --- overview --------------------------------------------------------------------------------

let paused = false;

async function renderOverview(root, ctx) {
  const updated = h("time", { class: "updated-time" }, "never");
  const updatedLine = h("span", { class: "updated" },
    "Updated at ", updated);
  const pause = h("button", { type: "button", class: "secondary", "aria-pressed": String(paused),
    id: "pause-refresh" }, paused ? "Resume auto-refresh" : "Pause auto-refresh");
  const refreshNow = h("button", { type: "button", class: "secondary" }, "Refresh now");
  const problems = h("div", { class: "problems" });
  const body = h("div", { class: "overview-body" }, h("p", { class: "loading" }, "Loading…"));
  replace(root,
    viewHead("Overview",
      `Queues and message states per receiving country. Refreshes every ${REFRESH_MS / 1000} s.`,
      updatedLine, pause, refreshNow),
    problems, body);

  let lastGood = null;
  let inFlight = false;

  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    try {
      const [queues, stats, dead, retrying] = await Promise.allSettled([
        api("/v1/queues", { signal: ctx.signal }),
        api("/v1/stats", { signal: ctx.signal }),
        api("/v1/dead-letters?limit=200", { signal: ctx.signal }),
        api("/v1/messages?state=RETRYING&limit=200", { signal: ctx.signal }),
      ]);
      if (!ctx.active) return;
      const failures = [[queues, "Queue depths"], [stats, "Message counts"],
        [dead, "Dead letters"], [retrying, "Retrying messages"]]
        .filter(([r]) => r.status === "rejected" && !(r.reason && r.reason.name === "AbortError"));
      const denied = failures.find(([r]) => r.reason instanceof ApiProblem && r.reason.status === 401);
      if (denied) {
        showSignIn(denied[0].reason);
        return;
      }
      replace(problems, failures.map(([r, what]) => problemBox(r.reason, what)));
      if (queues.status === "fulfilled" || stats.status === "fulfilled") {
        replace(body, overviewBody(
          queues.status === "fulfilled" ? queues.value : null,
          stats.status === "fulfilled" ? stats.value : null,
          [
            ...(dead.status === "fulfilled" ? dead.value.dead_letters || [] : []),
            ...(retrying.status === "fulfilled" ? retrying.value.messages || [] : []),
          ]));
      } else if (!lastGood) {
        replace(body);
      }
      if (failures.length === 0) {
        markFresh();
        lastGood = new Date();
        updated.setAttribute("datetime", lastGood.toISOString());
        updated.textContent = formatUtc(lastGood.toISOString());
        updatedLine.classList.remove("stale");
      } else if (lastGood) {
        updatedLine.classList.add("stale");
        updated.textContent = `${formatUtc(lastGood.toISOString())} (last refresh failed)`;
      }
    } finally {
      inFlight = false;
    }
  }

  function schedule() {
    ctx.later(async () => {
      if (!paused && !document.hidden) await refresh();
      schedule();
    }, REFRESH_MS);
  }

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume auto-refresh" : "Pause auto-refresh";
    announce(paused ? "Auto-refresh paused" : "Auto-refresh resumed");
    showFreshness();
    if (!paused) refresh();
  });
  refreshNow.addEventListener("click", () => refresh());

  await refresh();
  schedule();
}

function overviewBody(queuesBody, stats, troubled) {
  const depths = (queuesBody && queuesBody.queues) || {};
  const perCountry = {};
  let waiting = 0;
  let retryWaiting = 0;
  let deadDepth = null;
  for (const [name, depth] of Object.entries(depths)) {
    const deliver = /\.deliver\.([A-Z]{2})$/.exec(name);
    if (deliver) {
      perCountry[deliver[1]] = depth;
      waiting += depth;
    } else if (/\.retry\.[^.]+$/.test(name)) retryWaiting += depth;
    else if (/\.dead$/.test(name)) deadDepth = depth;
  }
  const byReceiver = (stats && stats.by_receiver) || {};
  const byState = (stats && stats.by_state) || {};
  const countries = [...new Set([...Object.keys(perCountry), ...Object.keys(byReceiver)])].sort();
  const shownStates = STATES.filter((s) => ALWAYS_SHOWN_STATES.includes(s) || byState[s] > 0);

  // The newest error of a stuck (retrying or dead) message, per receiver.
  const lastError = {};
  for (const m of troubled) {
    const code = m.reason || m.last_error;
    if (!code) continue;
    const seen = lastError[m.receiver];
    if (!seen || new Date(m.state_at) > new Date(seen.state_at)) lastError[m.receiver] = m;
  }

  const journalled = Object.values(byState).reduce((a, b) => a + b, 0);
  const delivered = (byState.DELIVERED || 0) + (byState.RECEIPTED || 0) + (byState.ANSWERED || 0);
  const cards = h("dl", { class: "cards", "aria-label": "Totals" },
    card("Waiting in delivery queues", queuesBody ? waiting : "?", waiting > 0 ? "info" : "ok"),
    card("Waiting to retry", queuesBody ? retryWaiting : "?", retryWaiting > 0 ? "warn" : "ok"),
    card("Dead letters", deadDepth ?? byState.DEAD ?? 0,
      (deadDepth ?? byState.DEAD ?? 0) > 0 ? "bad" : "ok"),
    card("Delivered", stats ? delivered : "?", "ok"),
    card("Messages in journal", stats ? journalled : "?", "info"));

  const rows = countries.map((cc) => {
    const counts = byReceiver[cc] || {};
    const err = lastError[cc];
    return h("tr", { dataset: { country: cc } },
      h("th", { scope: "row" },
        h("a", { href: `#/messages${query({ receiver: cc })}`, "aria-label": `Messages to ${cc}` },
          cc)),
      cc in perCountry ? num(perCountry[cc], { dataset: { col: "queue" } })
        : h("td", { class: "num empty", dataset: { col: "queue" } }, "—"),
      shownStates.map((s) => {
        const n = counts[s] || 0;
        if (n > 0 && STUCK_STATES.has(s)) {
          return h("td", { class: "num", dataset: { state: s } },
            h("a", { href: `#/messages${query({ receiver: cc, state: s })}`,
              "aria-label": `${n} ${s} messages to ${cc}` }, String(n)));
        }
        return num(n, { dataset: { state: s } });
      }),
      h("td", { dataset: { col: "last-error" } }, err ? lastErrorCell(err) : dash(null)));
  });
  const totals = h("tr", {},
    h("th", { scope: "row" }, "Total"),
    num(waiting),
    shownStates.map((s) => num(byState[s] || 0, { dataset: { state: s } })),
    h("td", {}));

  return [
    cards,
    table({
      caption: stats && stats.test_excluded
        ? "Per receiving country (test messages are not counted)"
        : "Per receiving country",
      head: ["Country", h("th", { scope: "col", class: "num" }, "Queue depth"),
        shownStates.map((s) => h("th", { scope: "col", class: "num" }, stateBadge(s))),
        "Last error"],
      rows,
      foot: countries.length ? totals : null,
      empty: "No receiving countries reported yet.",
    }),
  ];
}

function card(label, value, tone) {
  return h("div", { class: `card ${tone}` }, h("dt", {}, label), h("dd", {}, String(value)));
}

function lastErrorCell(m) {
  const code = m.reason || m.last_error;
  const href = m.state === "DEAD" ? deadLetterHref(m.message_id) : messageHref(m.message_id);
  return h("span", {},
    h("code", { title: m.detail || "" }, code),
    m.reason && m.last_error && m.last_error !== m.reason ? [" (", h("code", {}, m.last_error), ")"]
      : null,
    " ", stateBadge(m.state), " ",
    h("a", { href, "aria-label": `Message ${m.message_id}, ${relative(m.state_at)}` },
      relative(m.state_at) || "message"));
}

// --- messages --------------------------------------------------------------------------------

async function renderMessages(root, ctx) {
  const p = ctx.params;
  const filters = {
    state: (p.get("state") || "").toUpperCase(),
    sender: (p.get("sender") || "").toUpperCase(),
    receiver: (p.get("receiver") || "").toUpperCase(),
    test: p.get("test") || "",
    limit: pageSize(p.get("limit")),
    before: p.get("before") || "",
  };
  const form = messageFilters(filters);
  const result = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  replace(root, viewHead("Messages", "Newest first. Filter, then open a message for its timeline."),
    form, result);
  let body;
  try {
    body = await api(`/v1/messages${query(filters)}`, { signal: ctx.signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    replace(result, problemBox(error, "Messages"));
    return;
  }
  const messages = body.messages || [];
  const rows = messages.map((m) => h("tr", { dataset: { messageId: m.message_id } },
    h("td", {}, timeEl(m.received_at)),
    h("td", {}, idLink(m.message_id)),
    h("td", {}, docType(m.document_type), m.test ? [" ", h("span", { class: "badge test" }, "TEST")]
      : null),
    h("td", { class: "nowrap" }, `${m.sender} → ${m.receiver}`),
    h("td", {}, stateBadge(m.state), h("div", { class: "updated" }, timeEl(m.state_at))),
    num(m.attempts),
    h("td", {}, codeEl(m.last_error))));
  const scope = filters.before ? `received before ${formatUtc(filters.before)}` : "newest first";
  const pager = h("div", { class: "pager" },
    filters.before ? h("a", { class: "button secondary",
      href: `#/messages${query({ ...filters, before: "" })}` }, "Newest") : null,
    messages.length === filters.limit ? h("a", { class: "button secondary", rel: "next",
      href: `#/messages${query({ ...filters, before: messages[messages.length - 1].received_at })}`,
    }, "Older messages") : null);
  replace(result,
    table({
      caption: `${messages.length} message${messages.length === 1 ? "" : "s"}, ${scope}`,
      head: ["Received", "Message id", "Document", "Route", "State", h("th",
        { scope: "col", class: "num" }, "Attempts"), "Last error"],
      rows,
      empty: "No message matches these filters.",
    }),
    pager);
}

function pageSize(raw) {
  const n = Number(raw);
  return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 50;
}

function messageFilters(filters) {
  const stateSelect = h("select", { id: "f-state", name: "state" },
    h("option", { value: "" }, "Any state"),
    STATES.map((s) => h("option", { value: s, selected: filters.state === s }, s)));
  const sender = h("input", { id: "f-sender", name: "sender", type: "text", value: filters.sender,
    maxlength: "2", size: "4", autocomplete: "off", spellcheck: "false",
    "aria-describedby": "f-cc-hint" });
  const receiver = h("input", { id: "f-receiver", name: "receiver", type: "text",
    value: filters.receiver, maxlength: "2", size: "4", autocomplete: "off", spellcheck: "false",
    "aria-describedby": "f-cc-hint" });
  const test = h("select", { id: "f-test", name: "test" },
    h("option", { value: "", selected: filters.test === "" }, "Live and test"),
    h("option", { value: "false", selected: filters.test === "false" }, "Live only"),
    h("option", { value: "true", selected: filters.test === "true" }, "Test only"));
  const limit = h("select", { id: "f-limit", name: "limit" },
    [...new Set([...PAGE_SIZES, filters.limit])].sort((a, b) => a - b)
      .map((n) => h("option", { value: n, selected: filters.limit === n }, String(n))));
  const form = h("form", { class: "filters", "aria-label": "Filter messages" },
    field("f-state", "State", stateSelect),
    field("f-sender", "Sender", sender),
    field("f-receiver", "Receiver", receiver),
    field("f-test", "Test messages", test),
    field("f-limit", "Per page", limit),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Apply filters"),
      h("a", { class: "button secondary", href: "#/messages" }, "Clear")),
    h("p", { id: "f-cc-hint", class: "visually-hidden" }, "Two-letter country code, e.g. TH"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(`#/messages${query({
      state: stateSelect.value,
      sender: sender.value.trim().toUpperCase(),
      receiver: receiver.value.trim().toUpperCase(),
      test: test.value,
      limit: limit.value === "50" ? "" : limit.value,
    })}`);
  });
  return form;
}

function field(id, label, control, hint) {
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null);
}

async function renderMessage(root, ctx, id) {
  const message = await api(`/v1/messages/${encodeURIComponent(id)}`, { signal: ctx.signal });
  replace(root,
    h("p", { class: "crumbs" }, h("a", { href: "#/messages" }, "← All messages")),
    viewHead(h("span", {}, "Message ", h("span", { class: "mono" }, message.message_id)), null,
      stateBadge(message.state)),
    message.state === "DEAD" ? h("div", { class: "notice", role: "note" },
      h("p", {}, "This message is parked in the dead letters. ",
        h("a", { href: deadLetterHref(message.message_id) }, "Inspect and replay it"))) : null,
    panel("Summary", messageFacts(message)),
    panel("Timeline", timelineTable(message.timeline || [])),
    panel("Related messages", relatedList(message)),
    (message.deadlines || []).length ? panel("Deadlines", deadlineTable(message.deadlines))
      : null,
    documentPanel(message.message_id, ctx));
}

function deadlineTable(deadlines) {
  return table({
    label: "Deadlines",
    head: ["Limit", "Rule", "Status", "Due", "Done"],
    rows: deadlines.map((d) => h("tr", { dataset: { status: d.status } },
      h("td", {}, d.name),
      h("td", {}, d.rule),
      h("td", {}, h("span", { class: `badge ${DEADLINE_TONE[d.status] || ""}` }, d.status)),
      h("td", {}, timeEl(d.due_at, { withRelative: true })),
      h("td", {}, d.done_at ? timeEl(d.done_at) : dash(null)))),
    empty: "No time limit runs on this message.",
  });
}

function messageFacts(m) {
  return h("dl", { class: "facts" },
    fact("Message id", h("span", { class: "mono" }, m.message_id)),
    fact("State", [stateBadge(m.state), " since ", timeEl(m.state_at, { withRelative: true })]),
    fact("Document", [docType(m.document_type), " (", h("code", {}, m.document_type), ")",
      m.test ? [" ", h("span", { class: "badge test" }, "TEST")] : null]),
    fact("Document id", dash(m.document_id)),
    fact("Function code", codeEl(m.function_code)),
    fact("Sender → receiver", `${m.sender} → ${m.receiver}`),
    fact("Received", timeEl(m.received_at)),
    fact("Accepted", timeEl(m.accepted_at)),
    fact("Delivery attempts", String(m.attempts ?? 0)),
    fact("Last error", codeEl(m.last_error)),
    fact("Size", `${Number(m.size || 0).toLocaleString("en")} bytes`),
    fact("SHA-256", h("span", { class: "mono" }, m.digest_sha256 || "—")),
    m.referenced_message_id ? fact("Answers message",
      idLink(m.referenced_message_id)) : null);
}

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

function timelineTable(timeline) {
  return table({
    label: "Timeline",
    head: [h("th", { scope: "col", class: "num" }, "#"), "State", "At", h("th",
      { scope: "col", class: "num" }, "Attempt"), "Error code", "Detail"],
    rows: timeline.map((step, i) => h("tr", { dataset: { state: step.state } },
      h("td", { class: "num" }, String(i + 1)),
      h("td", {}, stateBadge(step.state)),
      h("td", {}, timeEl(step.at)),
      h("td", { class: "num" }, step.attempt ?? "—"),
      h("td", {}, codeEl(step.error)),
      h("td", { class: "detail-text" }, dash(step.detail)))),
    empty: "No state changes recorded.",
  });
}

function relatedList(m) {
  const related = m.related || [];
  if (!related.length && !m.referenced_message_id) {
    return h("p", { class: "empty" }, "No receipt, response or other related message yet.");
  }
  return table({
    label: "Related messages",
    head: ["Relation", "Message id", "Linked at"],
    rows: related.map((r) => h("tr", {},
      h("td", {}, r.relation),
      h("td", {}, idLink(r.message_id)),
      h("td", {}, timeEl(r.at)))).concat(m.referenced_message_id ? [h("tr", {},
      h("td", {}, "answers"), h("td", {}, idLink(m.referenced_message_id)), h("td", {}, "—"))]
      : []),
  });
}

function documentPanel(id, ctx) {
  const area = h("div", {});
  area.id = "document-area";
  const path = `/v1/messages/${encodeURIComponent(id)}/document`;
  const views = [
    { label: "View document", hide: "Hide document", what: "the stored document",
      load: async () => h("pre", { class: "document", tabindex: "0",
        "aria-label": "Stored XML document" },
      await api(path, { text: true, signal: ctx.signal })) },
    { label: "View as data", hide: "Hide data", what: "the document as data",
      load: async () => dataView(await api(`${path}.json`, { signal: ctx.signal })) },
  ];
  let shown = null;
  const buttons = views.map((view) => {
    const button = h("button", { type: "button", class: "secondary", "aria-expanded": "false",
      "aria-controls": "document-area" }, view.label);
    button.addEventListener("click", async () => {
      const wasShown = shown === view;
      for (const [i, other] of buttons.entries()) {
        other.textContent = views[i].label;
        other.setAttribute("aria-expanded", "false");
      }
      replace(area);
      shown = null;
      if (wasShown) return;
      button.disabled = true;
      replace(area, h("p", { class: "loading" }, `Loading ${view.what}…`));
      try {
        replace(area, await view.load());
        shown = view;
        button.textContent = view.hide;
        button.setAttribute("aria-expanded", "true");
      } catch (error) {
        if (error.name === "AbortError") return;
        replace(area, problemBox(error, "Document"));
      } finally {
        button.disabled = false;
      }
    });
    return button;
  });
  return panel("Document",
    h("p", { class: "lede" }, "The stored XML is shown only when you ask for it, as it was " +
      "received or as data (its boxes and values, without the XML markup). It may contain " +
      "trade data: view it only when you need it."),
    h("div", { class: "actions" }, buttons), area);
}

/** The document as data: a tree of its elements, the top two levels open. */
function dataView(body) {
  return h("div", { class: "document-data", role: "region", tabindex: "0",
    "aria-label": "Stored document as data" },
  h("ul", { class: "tree" }, dataEntries(body.document || {}, 0)));
}

function dataEntries(object, depth) {
  return Object.entries(object).flatMap(([name, value]) => (Array.isArray(value)
    ? value.map((item, i) => dataNode(`${name} ${i + 1}`, item, depth))
    : [dataNode(name, value, depth)]));
}

function dataNode(name, value, depth) {
  if (value === null || typeof value !== "object") {
    return h("li", {}, h("span", { class: "key" }, name), " ", h("span", { class: "value" },
      value === null ? "—" : String(value)));
  }
  const keys = Object.keys(value);
  const attributes = keys.filter((k) => k.startsWith("@"));
  if (keys.every((k) => k === "$" || k.startsWith("@"))) {  // a value with its unit or currency
    return h("li", {}, h("span", { class: "key" }, name), " ",
      h("span", { class: "value" }, "$" in value ? String(value.$) : "—"),
      attributes.length ? h("span", { class: "attrs" }, " (",
        attributes.map((k) => `${k.slice(1)} ${value[k]}`).join(", "), ")") : null);
  }
  return h("li", {}, h("details", { open: depth < 2 }, h("summary", {}, name),
    h("ul", {}, dataEntries(value, depth + 1))));
}

// --- dead letters ----------------------------------------------------------------------------

async function renderDeadLetters(root, ctx) {
  const refresh = h("button", { type: "button", class: "secondary" }, "Refresh");
  refresh.addEventListener("click", () => route({ focus: false }));
  const result = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  replace(root, viewHead("Dead letters",
    "Messages parked for an operator: why, and since when. Open one to inspect and replay it.",
    refresh), result);
  const body = await api("/v1/dead-letters?limit=500", { signal: ctx.signal });
  const dead = body.dead_letters || [];
  replace(result, table({
    caption: `${dead.length} dead letter${dead.length === 1 ? "" : "s"}, newest first`,
    head: ["Dead since", "Message id", "Document", "Route", "Reason", "Detail",
      h("th", { scope: "col", class: "num" }, "Attempts")],
    rows: dead.map((m) => h("tr", { dataset: { messageId: m.message_id } },
      h("td", {}, timeEl(m.state_at)),
      h("td", {}, idLink(m.message_id, deadLetterHref(m.message_id))),
      h("td", {}, docType(m.document_type),
        m.test ? [" ", h("span", { class: "badge test" }, "TEST")] : null),
      h("td", { class: "nowrap" }, `${m.sender} → ${m.receiver}`),
      h("td", {}, m.reason ? h("code", { class: "reason" }, m.reason) : dash(null),
        m.last_error && m.last_error !== m.reason
          ? h("div", { class: "updated" }, "last error ", h("code", {}, m.last_error)) : null),
      h("td", { class: "detail-text" }, dash(m.detail)),
      num(m.attempts))),
    empty: "No dead letters: nothing is parked.",
  }));
}

async function renderDeadLetter(root, ctx, id) {
  const [message, deadList] = await Promise.all([
    api(`/v1/messages/${encodeURIComponent(id)}`, { signal: ctx.signal }),
    api("/v1/dead-letters?limit=1000", { signal: ctx.signal }).catch((error) => {
      if (error.name === "AbortError") throw error;
      return { dead_letters: [], error };
    }),
  ]);
  const entry = (deadList.dead_letters || []).find((d) => d.message_id === message.message_id);
  // The reason says why it was parked; the cause is the last delivery error before that.
  const cause = [...(message.timeline || [])].reverse()
    .find((step) => step.error && (!entry || step.error !== entry.reason));
  const why = entry
    ? h("dl", { class: "facts" },
      fact("Reason", h("code", { class: "reason" }, entry.reason || "—")),
      fact("Last delivery error", cause ? h("code", { class: "cause", title: cause.detail || "" },
        cause.error) : codeEl(entry.last_error)),
      fact("Detail", dash(entry.detail)),
      fact("Attempts", String(entry.attempts ?? 0)),
      fact("Parked since", timeEl(entry.state_at, { withRelative: true })))
    : deadList.error ? problemBox(deadList.error, "Dead letters")
      : h("p", {}, "This message is not in the dead letters now; it is ", stateBadge(message.state),
        ".");
  replace(root,
    h("p", { class: "crumbs" }, h("a", { href: "#/dead-letters" }, "← All dead letters")),
    viewHead(h("span", {}, "Dead letter ", h("span", { class: "mono" }, message.message_id)),
      null, stateBadge(message.state)),
    panel("Why it was parked", why),
    panel("Message header", headerFacts(message)),
    panel("Timeline", timelineTable(message.timeline || [])),
    replayPanel(message, ctx),
    documentPanel(message.message_id, ctx));
}

function headerFacts(m) {
  return h("dl", { class: "facts" },
    fact("Message id", h("a", { href: messageHref(m.message_id), class: "id-link" },
      m.message_id)),
    fact("Document", [docType(m.document_type), " (", h("code", {}, m.document_type), ")"]),
    fact("Document id", dash(m.document_id)),
    fact("Function code", codeEl(m.function_code)),
    fact("Sender → receiver", `${m.sender} → ${m.receiver}`),
    fact("Test message", m.test ? "yes" : "no"),
    fact("References", m.referenced_message_id ? idLink(m.referenced_message_id) : dash(null)),
    fact("Received", timeEl(m.received_at)),
    fact("Size", `${Number(m.size || 0).toLocaleString("en")} bytes`),
    fact("SHA-256", h("span", { class: "mono" }, m.digest_sha256 || "—")));
}

function replayPanel(m, ctx) {
  const section = panel("Replay");
  if (m.state !== "DEAD") {
    append(section, h("p", {}, "Only dead letters can be replayed. This message is ",
      stateBadge(m.state), "."));
    return section;
  }
  const savedOperator = (() => {
    try { return window.localStorage.getItem(OPERATOR_NAME) || ""; } catch { return ""; }
  })();
  const reason = h("textarea", { id: "replay-reason", name: "reason", required: true,
    maxlength: "500", "aria-describedby": "replay-reason-hint replay-reason-error" });
  const operator = h("input", { id: "replay-operator", name: "operator", type: "text",
    required: true, maxlength: "100", autocomplete: "name", value: savedOperator,
    "aria-describedby": "replay-operator-hint replay-operator-error" });
  const reasonError = h("span", { id: "replay-reason-error", class: "error-text" });
  const operatorError = h("span", { id: "replay-operator-error", class: "error-text" });
  const review = h("button", { type: "submit" }, "Review replay…");
  const stage = h("div", { class: "replay-stage" });
  const form = h("form", { class: "replay-form", novalidate: true, "aria-label": "Replay" },
    h("p", {}, "Replaying sends the message to ", h("strong", {}, m.receiver),
      " again. Fix the cause first (see the reason above)."),
    h("div", { class: "field" },
      h("label", { for: "replay-reason" }, "Reason for the replay (required)"),
      h("span", { class: "hint", id: "replay-reason-hint" },
        "Recorded in the journal, e.g. “TH inbox repaired, ticket OPS-123”."),
      reason, reasonError),
    h("div", { class: "field" },
      h("label", { for: "replay-operator" }, "Your name (required)"),
      h("span", { class: "hint", id: "replay-operator-hint" },
        "With a named operator key, the key's name is recorded; this name only counts on a " +
        "gateway without authentication."),
      operator, operatorError),
    h("div", { class: "actions" }, review),
    stage);

  function validate() {
    const problems = [];
    for (const [input, error, message] of [
      [reason, reasonError, "Enter the reason for the replay."],
      [operator, operatorError, "Enter your name."],
    ]) {
      const ok = input.value.trim() !== "";
      input.setAttribute("aria-invalid", String(!ok));
      error.textContent = ok ? "" : message;
      if (!ok) problems.push(input);
    }
    return problems;
  }

  function setLocked(locked) {
    reason.readOnly = locked;
    operator.readOnly = locked;
    review.disabled = locked;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const invalid = validate();
    if (invalid.length) {
      invalid[0].focus();
      announce("The replay needs a reason and your name.");
      return;
    }
    setLocked(true);
    const confirmButton = h("button", { type: "button", class: "danger" }, "Replay message");
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
    const heading = h("h3", { id: "replay-confirm-title", tabindex: "-1" }, "Confirm the replay");
    const box = h("div", { class: "confirm", role: "region",
      "aria-labelledby": "replay-confirm-title" },
      heading,
      h("p", {}, "This is what will happen:"),
      h("ul", { class: "replay-preview" },
        h("li", {}, "Message ", h("span", { class: "mono" }, m.message_id), ` (${docType(
          m.document_type)}${m.document_id ? ` ${m.document_id}` : ""}, ${m.sender} → ${
          m.receiver}) moves from DEAD back to QUEUED.`),
        h("li", {}, `It is published again to the delivery queue for ${m.receiver} and handed ` +
          `to ${m.receiver}'s adapter as soon as possible. If ${m.receiver} still fails, the ` +
          "message is retried on the usual schedule and may end here again."),
        h("li", {}, "The journal records the replay with operator “", h("strong", {},
          operator.value.trim()), "” and reason “", h("strong", {}, reason.value.trim()), "”.")),
      h("div", { class: "actions" }, confirmButton, cancel));
    replace(stage, box);
    heading.focus();
    cancel.addEventListener("click", () => {
      replace(stage);
      setLocked(false);
      review.focus();
    });
    confirmButton.addEventListener("click", async () => {
      confirmButton.disabled = true;
      cancel.disabled = true;
      confirmButton.textContent = "Replaying…";
      try { window.localStorage.setItem(OPERATOR_NAME, operator.value.trim()); } catch { /* ok */ }
      try {
        const outcome = await api(`/v1/dead-letters/${encodeURIComponent(m.message_id)}/replay`, {
          method: "POST",
          json: { reason: reason.value.trim(), operator: operator.value.trim() },
          signal: ctx.signal,
        });
        const stateNow = h("span", { class: "replay-state" }, stateBadge(outcome.state));
        const result = h("div", { class: "success", role: "status", tabindex: "-1" },
          h("h2", {}, "Replayed"),
          h("p", {}, "The message is ", stateBadge(outcome.state), " again",
            outcome.replays ? ` (replay number ${outcome.replays})` : "", "."),
          h("p", {}, "Current state: ", stateNow, " ",
            h("a", { href: messageHref(m.message_id) }, "Open the message")));
        replace(stage, result);
        form.querySelectorAll(".field, .actions").forEach((el) => { el.hidden = true; });
        result.focus();
        announce(`Replayed. The message is ${outcome.state}.`);
        watchState(m.message_id, stateNow, ctx);
      } catch (error) {
        if (error.name === "AbortError") return;
        replace(stage, problemBox(error, "Replay refused"),
          h("div", { class: "actions" }, h("button", { type: "button", class: "secondary",
            onclick: () => { replace(stage); setLocked(false); review.focus(); } },
          "Back to the form")));
        const alert = stage.querySelector(".problem");
        if (alert) { alert.setAttribute("tabindex", "-1"); alert.focus(); }
      }
    });
  });
  append(section, form);
  return section;
}

/** After a replay, follow the message's state for a while so the operator sees it delivered. */
function watchState(id, target, ctx) {
  const started = Date.now();
  const tick = async () => {
    try {
      const m = await api(`/v1/messages/${encodeURIComponent(id)}`, { signal: ctx.signal });
      if (!ctx.active) return;
      const before = target.textContent;
      replace(target, stateBadge(m.state));
      const head = main().querySelector(".view-head .toolbar");
      if (head) replace(head, stateBadge(m.state));
      if (before !== m.state) announce(`The message is now ${m.state}.`);
      if (STUCK_STATES.has(m.state) && m.state !== "DEAD" &&
        Date.now() - started < REPLAY_WATCH_MS) ctx.later(tick, 1000);
    } catch (error) {
      if (error.name !== "AbortError" && Date.now() - started < REPLAY_WATCH_MS) {
        ctx.later(tick, 2000);
      }
    }
  };
  ctx.later(tick, 500);
}

// --- certificates ----------------------------------------------------------------------------

function urgency(daysLeft) {
  if (daysLeft < 0) return { key: "expired", label: "Expired", tone: "bad" };
  if (daysLeft <= 7) return { key: "critical", label: "Critical", tone: "bad" };
  if (daysLeft <= 30) return { key: "soon", label: "Soon", tone: "warn" };
  return { key: "later", label: "Later", tone: "info" };
}

const OWN_KINDS = {
  signer: "Signs documents for", gateway: "Signs delivery receipts", tls: "HTTPS (TLS)",
};

async function renderCertificates(root, ctx) {
  const requested = Number(ctx.params.get("within_days"));
  const within = Number.isInteger(requested) && requested > 0 && requested <= 3650
    ? requested : 30;
  const choices = [...new Set([...WITHIN_DAYS_CHOICES, within])].sort((a, b) => a - b);
  const select = h("select", { id: "within-days", name: "within_days" },
    choices.map((n) => h("option", { value: n, selected: n === within }, `${n} days`)));
  const form = h("form", { class: "filters", "aria-label": "Expiry window" },
    field("within-days", "Expiring within", select),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(`#/certificates${query({ within_days: select.value })}`);
  });
  const result = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  replace(root, viewHead("Certificates",
    "CA certificates and revocation lists (CRLs) of the trusted countries that expire soon, " +
    "and the gateway's own signing and TLS certificates."),
    form, result);
  const body = await api(`/v1/certificates${query({ within_days: within })}`,
    { signal: ctx.signal });
  const items = [...(body.expiring || [])].sort((a, b) => a.days_left - b.days_left ||
    String(a.country).localeCompare(String(b.country)));
  const counts = { expired: 0, critical: 0, soon: 0, later: 0 };
  for (const item of items) counts[urgency(item.days_left).key] += 1;
  replace(result,
    h("dl", { class: "cards", "aria-label": "By urgency" },
      card("Expired", counts.expired, counts.expired ? "bad" : "ok"),
      card("Within 7 days", counts.critical, counts.critical ? "bad" : "ok"),
      card("Within 30 days", counts.soon, counts.soon ? "warn" : "ok"),
      within > 30 ? card(`Within ${within} days`, counts.later, "info") : null),
    table({
      caption: `${items.length} item${items.length === 1 ? "" : "s"} expiring within ${within} ` +
        `days, as of ${formatUtc(body.now)}`,
      head: ["Urgency", "Country", "Kind", "Name", "Expires", h("th", { scope: "col",
        class: "num" }, "Days left")],
      rows: items.map((item) => {
        const u = urgency(item.days_left);
        return h("tr", { class: `urgency-${u.key}`, dataset: { country: item.country,
          kind: item.kind } },
        h("td", {}, h("span", { class: `badge ${u.tone}` }, u.label)),
        h("th", { scope: "row" }, item.country),
        h("td", {}, item.kind === "crl" ? "CRL" : item.kind === "ca" ? "CA certificate"
          : item.kind),
        h("td", { class: "detail-text" }, item.name),
        h("td", {}, timeEl(item.expires)),
        h("td", { class: "num" }, String(item.days_left)));
      }),
      empty: `Nothing expires within ${within} days.`,
    }),
    h("p", { class: "lede" }, "Trust material is loaded for: ",
      (body.countries || []).length ? (body.countries || []).join(", ") : "no country", "."),
    panel("The gateway's own certificates",
      table({
        label: "The gateway's own certificates",
        head: ["Kind", "Country", "Subject", "Expires", h("th", { scope: "col", class: "num" },
          "Days left")],
        rows: [...(body.own || [])].sort((a, b) => a.days_left - b.days_left).map((item) => {
          const u = urgency(item.days_left);
          return h("tr", { class: `urgency-${u.key}`, dataset: { own: item.kind,
            country: item.country } },
          h("td", {}, OWN_KINDS[item.kind] || item.kind),
          h("th", { scope: "row" }, dash(item.country)),
          h("td", { class: "detail-text" }, item.name),
          h("td", {}, timeEl(item.expires)),
          h("td", { class: "num" }, h("span", { class: `badge ${u.tone}` },
            String(item.days_left))));
        }),
        empty: "This gateway holds no signing key and serves no HTTPS certificate.",
      })));
}

// --- partners --------------------------------------------------------------------------------

const PARTNER_STATUS = {
  "broker-down": ["Broker down", "bad"], "breaker-open": ["Breaker open", "bad"],
  failing: ["Failing", "bad"], stalled: ["Stalled", "bad"], degraded: ["Degraded", "warn"],
  unreachable: ["Unreachable", "bad"], healthy: ["Healthy", "ok"], idle: ["Idle", "ok"],
};

function percent(rate) {
  return rate === null || rate === undefined ? h("span", { class: "empty" }, "—")
    : `${Math.round(rate * 1000) / 10}%`;
}

function seconds(value) {
  if (value === null || value === undefined) return h("span", { class: "empty" }, "—");
  const s = Math.round(value);
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

async function renderPartners(root, ctx) {
  const result = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  replace(root, viewHead("Partners",
    "Health of each receiving country judged from what its deliveries did in the last " +
    `hour: healthy means deliveries are succeeding. Refreshes every ${REFRESH_MS / 1000} s.`),
  result);
  const body = await api("/v1/partners", { signal: ctx.signal });
  const partners = [...(body.partners || [])].sort((a, b) =>
    Number(a.healthy) - Number(b.healthy) || String(a.country).localeCompare(String(b.country)));
  const unhealthy = partners.filter((p) => !p.healthy).length;
  replace(result,
    h("dl", { class: "cards", "aria-label": "Health totals" },
      card("Healthy", partners.length - unhealthy, "ok"),
      card("Unhealthy", unhealthy, unhealthy ? "bad" : "ok")),
    table({
      caption: (unhealthy ? "Unhealthy partners first" : "All partners") +
        (body.as_of ? `, as of ${formatUtc(body.as_of)}` : ""),
      head: ["Country", "Adapter", "Health", "Success", "Delivered / failed", "Last success",
        "Last error", "Failing since", "Breaker", "Queue", "Oldest waiting"],
      rows: partners.map((p) => {
        const [label, tone] = PARTNER_STATUS[p.status] || [p.healthy ? "Healthy" : "Unhealthy",
          p.healthy ? "ok" : "bad"];
        const error = p.last_error;
        return h("tr", { dataset: { country: p.country, status: p.status || "" } },
          h("th", { scope: "row" }, h("a", { href: `#/messages${query({ receiver: p.country })}`,
            "aria-label": `Messages to ${p.country}` }, p.country)),
          h("td", {}, h("code", {}, p.adapter)),
          h("td", { class: "health" }, h("span", { class: `badge ${tone}` }, label),
            p.detail ? h("div", { class: "hint" }, p.detail) : null),
          h("td", { class: "num" }, percent(p.success_rate)),
          h("td", { class: "num" }, `${p.delivered ?? 0} / ${p.failed ?? 0}`),
          h("td", {}, timeEl(p.last_success)),
          h("td", {}, error ? [codeEl(error.code), " ", timeEl(error.at)] : dash(null)),
          h("td", {}, timeEl(p.failing_since)),
          h("td", {}, dash(p.breaker)),
          h("td", { class: "num" }, dash(p.queue_depth)),
          h("td", { class: "num" }, seconds(p.oldest_waiting_seconds)));
      }),
      empty: "No partners are configured.",
    }));
}

// --- audit log -------------------------------------------------------------------------------

async function renderAudit(root, ctx) {
  const filters = { actor: ctx.params.get("actor") || "", action: ctx.params.get("action") || "",
    target: ctx.params.get("target") || "" };
  const before = ctx.params.get("before") || "";
  const inputs = Object.fromEntries(Object.entries(filters).map(([name, value]) =>
    [name, h("input", { id: `audit-${name}`, name, type: "text", value, autocomplete: "off" })]));
  const form = h("form", { class: "filters", "aria-label": "Audit filters" },
    field("audit-actor", "Who", inputs.actor),
    field("audit-action", "Action", inputs.action, "e.g. replay, document-viewed, key-added"),
    field("audit-target", "Message or key id", inputs.target),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(`#/audit${query(Object.fromEntries(Object.entries(inputs).map(([n, el]) =>
      [n, el.value.trim()])))}`);
  });
  const result = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  replace(root, viewHead("Audit log",
    "Every operator action and every view of a stored document: who, when, what and why. " +
    "Append-only; readable with an auditor's key."), form, result);
  let body;
  try {
    body = await api(`/v1/audit${query({ ...filters, before, limit: 100 })}`,
      { signal: ctx.signal });
  } catch (error) {
    if (error instanceof ApiProblem && error.status === 403) {
      replace(result, problemBox(error, "The audit log needs an auditor's key"));
      return;
    }
    throw error;
  }
  const entries = body.entries || [];
  const older = body.next ? new URLSearchParams(body.next.split("?")[1] || "").get("before")
    : null;
  replace(result,
    table({
      caption: `${entries.length} entr${entries.length === 1 ? "y" : "ies"}, newest first`,
      head: ["#", "When", "Who", "Role", "Action", "Target", "Reason", "Detail"],
      rows: entries.map((e) => h("tr", { dataset: { action: e.action } },
        h("td", { class: "num" }, String(e.seq)),
        h("td", {}, timeEl(e.at)),
        h("th", { scope: "row" }, e.actor),
        h("td", {}, dash(e.role)),
        h("td", {}, h("code", {}, e.action)),
        h("td", {}, e.target && /^[0-9a-f-]{36}$/.test(e.target) ? idLink(e.target)
          : dash(e.target)),
        h("td", { class: "detail-text" }, dash(e.reason)),
        h("td", { class: "detail-text" }, dash(e.detail)))),
      empty: "Nothing in the audit log matches.",
    }),
    older ? h("p", {}, h("a", { href: `#/audit${query({ ...filters, before: older })}` },
      "Older entries")) : null);
}

// --- start -----------------------------------------------------------------------------------

function start() {
  window.addEventListener("hashchange", () => route({ focus: true }));
  main().addEventListener("input", () => { if (current) current.dirty = true; });
  window.setInterval(showFreshness, 1000);
  const forget = document.getElementById("forget-key");
  if (forget) {
    forget.hidden = !operatorKey();
    forget.addEventListener("click", () => {
      setOperatorKey("");
      announce("The operator key is forgotten.");
      route({ focus: true });
    });
  }
  const skip = document.querySelector(".skip-link");
  if (skip) {
    skip.addEventListener("click", (event) => {
      event.preventDefault();
      const heading = main().querySelector("h1");
      (heading || main()).focus();
    });
  }
  if (!location.hash.startsWith("#/")) history.replaceState(null, "", "#/overview");
  route({ focus: false });
}

// Views in their own files (registers.js, oversight.js) add themselves to VIEWS from these; the
// router starts once the document and every module are loaded.
export {
  ApiProblem, DEADLINE_TONE, DOCUMENT_TYPES, OPERATOR_NAME, PAGE_SIZES, STATES, VIEWS, announce,
  api, append, card, codeEl, dash, deadLetterHref, docType, fact, field, formatUtc, h, idLink,
  messageHref, navigate, num, operatorKey, pageSize, panel, problemBox, query, replace, route,
  stateBadge, table, timeEl, viewHead,
};

document.addEventListener("DOMContentLoaded", start);
