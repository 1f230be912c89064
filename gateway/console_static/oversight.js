// Oversight views of the operator console: refusals, the message search and the dead letters
// with bulk replay (previewed first) and discard. Registered into console.js's router before it
// starts; the same rules hold: DOM built from text nodes only, everything from /v1/, every view
// re-read by the router's auto-refresh (paused while the operator edits a form or selects rows).

import {
  ApiProblem, OPERATOR_NAME, PAGE_SIZES, STATES, VIEWS, announce, api, codeEl, dash, deadLetterHref, docType,
  fact, field, h, idLink, navigate, num, operatorKey, pageSize, panel, problemBox, query, replace, route, stateBadge,
  table, timeEl, viewHead,
} from "./console.js";

const WINDOWS = [
  ["", "Any time"], ["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
];
const WINDOW_MS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const LIMIT = 50;

/** The ISO start of a named time window ("24h"), or "" for any time. */
function since(within) {
  const ms = WINDOW_MS[within];
  return ms ? new Date(Date.now() - ms).toISOString() : "";
}

/** The cursor of the API's `next` link (the following page), or null. */
export function cursorOf(next) {
  if (!next) return null;
  return new URLSearchParams(next.split("?")[1] || "").get("cursor");
}

function upper(value) {
  return (value || "").trim().toUpperCase();
}

function textInput(id, name, value, attrs = {}) {
  return h("input", { id, name, type: "text", value, autocomplete: "off", spellcheck: "false",
    ...attrs });
}

function windowSelect(id, within) {
  return h("select", { id, name: "within" },
    WINDOWS.map(([value, label]) => h("option", { value, selected: within === value }, label)));
}

/** A filter form whose fields become the view's URL fragment when submitted. */
function filterForm(view, label, fields, controls) {
  const form = h("form", { class: "filters", "aria-label": label }, fields,
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Apply filters"),
      h("a", { class: "button secondary", href: `#/${view}` }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = {};
    for (const [name, control] of Object.entries(controls)) {
      values[name] = control.tagName === "SELECT" || name.endsWith("id") || name === "code"
        || name === "reason" ? control.value.trim() : upper(control.value);
    }
    navigate(`#/${view}${query(values)}`);
  });
  return form;
}

/** Paging and export links under a list: newest page, next page, CSV of the same filters. */
function pager(view, filters, next, csvPath, noun) {
  const cursor = cursorOf(next);
  return h("div", { class: "pager" },
    filters.cursor ? h("a", { class: "button secondary", href: `#/${view}${query(
      { ...filters, cursor: "" })}` }, "Newest") : null,
    cursor ? h("a", { class: "button secondary", rel: "next",
      href: `#/${view}${query({ ...filters, cursor })}` }, `Older ${noun}`) : null,
    csvLink(csvPath));
}

/** A link to the CSV of a list; with an operator key it is fetched (the key cannot ride on a
 *  plain link) and handed to the browser as a download. */
function csvLink(path) {
  const link = h("a", { class: "button secondary csv-link", href: path, download: "" },
    "Export CSV");
  link.addEventListener("click", async (event) => {
    const key = operatorKey();
    if (!key) return;
    event.preventDefault();
    const response = await fetch(path, { headers: { Accept: "text/csv",
      Authorization: `Bearer ${key}` }, cache: "no-store", credentials: "same-origin" });
    if (!response.ok) {
      announce(`The CSV export failed: HTTP ${response.status}.`);
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const save = h("a", { href: url, download: `${path.split("?")[0].split("/").pop()}.csv` });
    document.body.append(save);
    save.click();
    save.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  return link;
}

function apiFilters(filters) {
  const { within, ...rest } = filters;
  return { limit: LIMIT, ...rest, since: since(within) };
}

async function load(result, path, ctx, context) {
  try {
    return await api(path, { signal: ctx.signal });
  } catch (error) {
    // The router shows unreachable gateways and server faults (and keeps "as of" stale);
    // a refused filter is shown under the form so it can be corrected.
    if (error.name === "AbortError" || !(error instanceof ApiProblem) || error.status === 0 ||
      error.status === 401 || error.status >= 500) {
      throw error;
    }
    replace(result, problemBox(error, context));
    return null;
  }
}

// --- refusals --------------------------------------------------------------------------------

function refusalHref(id) {
  return `#/refusals/${encodeURIComponent(id)}`;
}

async function renderRefusals(root, ctx) {
  const p = ctx.params;
  const filters = { sender: upper(p.get("sender")), code: (p.get("code") || "").trim(),
    within: p.get("within") || "", cursor: p.get("cursor") || "" };
  const controls = {
    sender: textInput("r-sender", "sender", filters.sender, { maxlength: "2", size: "4" }),
    code: textInput("r-code", "code", filters.code, { size: "22" }),
    within: windowSelect("r-within", filters.within),
  };
  const form = filterForm("refusals", "Filter refusals", [
    field("r-sender", "Sender", controls.sender, "Two-letter country code"),
    field("r-code", "Error code", controls.code, "e.g. schema-violation"),
    field("r-within", "Time window", controls.within)], controls);
  const result = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  replace(root, viewHead("Refusals",
    "Submissions the gateway refused (REJECTED or DUPLICATE), newest first. Open one for its " +
    "findings."), form, result);
  const params = apiFilters(filters);
  const body = await load(result, `/v1/refusals${query(params)}`, ctx, "Refusals");
  if (!body) return;
  const refusals = body.refusals || [];
  replace(result,
    table({
      caption: `${refusals.length} refusal${refusals.length === 1 ? "" : "s"} on this page`,
      head: ["Refused", "Refusal", "Sender → receiver", "Document", "Document id", "State",
        "Code", "Detail"],
      rows: refusals.map((r) => h("tr", { dataset: { refusalId: r.refusal_id,
        messageId: r.message_id || "" } },
        h("td", {}, timeEl(r.at)),
        h("td", {}, idLink(r.refusal_id, refusalHref(r.refusal_id))),
        h("td", { class: "nowrap" }, `${r.sender || "?"} → ${r.receiver || "?"}`),
        h("td", {}, r.document_type ? docType(r.document_type) : dash(null)),
        h("td", {}, dash(r.document_id)),
        h("td", {}, stateBadge(r.state)),
        h("td", {}, codeEl(r.code)),
        h("td", { class: "detail-text" }, dash(r.detail)))),
      empty: "No refusal matches these filters.",
    }),
    pager("refusals", filters, body.next, `/v1/refusals${query({ ...params, format: "csv" })}`,
      "refusals"));
}

async function renderRefusal(root, ctx, id) {
  const r = await api(`/v1/refusals/${encodeURIComponent(id)}`, { signal: ctx.signal });
  const findings = Array.isArray(r.findings) ? r.findings : [];
  replace(root,
    h("p", { class: "crumbs" }, h("a", { href: "#/refusals" }, "← All refusals")),
    viewHead(h("span", {}, "Refusal ", h("span", { class: "mono" }, r.refusal_id)), null,
      stateBadge(r.state)),
    panel("What was refused", h("dl", { class: "facts" },
      fact("Code", codeEl(r.code)),
      fact("HTTP status", String(r.status ?? "—")),
      fact("Detail", dash(r.detail)),
      fact("Refused at", timeEl(r.at, { withRelative: true })),
      fact("Channel", dash(r.channel)),
      fact("Caller", dash(r.caller)),
      fact("Message id (claimed)", dash(r.message_id)),
      fact("Sender → receiver", `${r.sender || "?"} → ${r.receiver || "?"}`),
      fact("Document", r.document_type ? docType(r.document_type) : dash(null)),
      fact("Document id", dash(r.document_id)),
      fact("Size", `${Number(r.size || 0).toLocaleString("en")} bytes`),
      fact("SHA-256", h("span", { class: "mono" }, r.digest_sha256 || "—")),
      fact("Refused bytes kept", r.payload_kept ? "yes" : "no"))),
    panel("Findings", findings.length ? table({
      label: "Findings",
      head: ["Severity", "Code", "Where", "Message", "Hint"],
      rows: findings.map((f) => h("tr", { class: "finding", dataset: { code: f.code || "" } },
        h("td", {}, dash(f.severity)),
        h("td", {}, codeEl(f.code)),
        h("td", { class: "mono" }, dash([f.box, f.path, f.line].filter((x) => x !== null &&
          x !== undefined && x !== "").join(" · "))),
        h("td", { class: "detail-text" }, dash(f.message)),
        h("td", { class: "detail-text" }, dash(f.hint)))),
    }) : h("p", {}, "No findings: the code and detail above say why.")));
}

// --- message search --------------------------------------------------------------------------

async function renderSearch(root, ctx) {
  const p = ctx.params;
  const filters = {
    document_id: (p.get("document_id") || "").trim(),
    document_type: upper(p.get("document_type")),
    sender: upper(p.get("sender")), receiver: upper(p.get("receiver")),
    state: upper(p.get("state")), code: (p.get("code") || "").trim(),
    test: p.get("test") || "", within: p.get("within") || "",
    limit: String(pageSize(p.get("limit"))), cursor: p.get("cursor") || "",
  };
  const cc = { maxlength: "2", size: "4" };
  const controls = {
    document_id: textInput("s-document-id", "document_id", filters.document_id, { size: "20" }),
    document_type: textInput("s-document-type", "document_type", filters.document_type,
      { maxlength: "3", size: "5" }),
    sender: textInput("s-sender", "sender", filters.sender, cc),
    receiver: textInput("s-receiver", "receiver", filters.receiver, cc),
    state: h("select", { id: "s-state", name: "state" }, h("option", { value: "" }, "Any state"),
      STATES.map((s) => h("option", { value: s, selected: filters.state === s }, s))),
    code: textInput("s-code", "code", filters.code, { size: "18" }),
    test: h("select", { id: "s-test", name: "test" },
      [["", "Live and test"], ["false", "Live only"], ["true", "Test only"]].map(([value, label]) =>
        h("option", { value, selected: filters.test === value }, label))),
    within: windowSelect("s-within", filters.within),
    limit: h("select", { id: "s-limit", name: "limit" },
      [...new Set([...PAGE_SIZES, Number(filters.limit)])].sort((a, b) => a - b)
        .map((n) => h("option", { value: n, selected: Number(filters.limit) === n }, String(n)))),
  };
  const form = filterForm("messages", "Search messages", [
    field("s-document-id", "Document number", controls.document_id),
    field("s-document-type", "Type", controls.document_type, "e.g. EFD"),
    field("s-sender", "Sender", controls.sender),
    field("s-receiver", "Receiver", controls.receiver),
    field("s-state", "State", controls.state),
    field("s-code", "Error code", controls.code),
    field("s-test", "Test messages", controls.test),
    field("s-within", "Received", controls.within),
    field("s-limit", "Per page", controls.limit)], controls);
  const result = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  replace(root, viewHead("Messages",
    "Search the journal, newest first. Open a message for its timeline."), form, result);
  const params = apiFilters(filters);
  const body = await load(result, `/v1/messages${query(params)}`, ctx, "Messages");
  if (!body) return;
  const messages = body.messages || [];
  replace(result,
    table({
      caption: `${messages.length} message${messages.length === 1 ? "" : "s"} on this page`,
      head: ["Received", "Message id", "Document", "Document id", "Route", "State",
        h("th", { scope: "col", class: "num" }, "Attempts"), "Last error"],
      rows: messages.map((m) => h("tr", { dataset: { messageId: m.message_id } },
        h("td", {}, timeEl(m.received_at)),
        h("td", {}, idLink(m.message_id)),
        h("td", {}, docType(m.document_type),
          m.test ? [" ", h("span", { class: "badge test" }, "TEST")] : null),
        h("td", {}, dash(m.document_id)),
        h("td", { class: "nowrap" }, `${m.sender} → ${m.receiver}`),
        h("td", {}, stateBadge(m.state), h("div", { class: "updated" }, timeEl(m.state_at))),
        num(m.attempts),
        h("td", {}, codeEl(m.last_error)))),
      empty: "No message matches these filters.",
    }),
    pager("messages", filters, body.next, `/v1/messages${query({ ...params, format: "csv" })}`,
      "messages"));
}

// --- dead letters ----------------------------------------------------------------------------

function savedOperator() {
  try { return window.localStorage.getItem(OPERATOR_NAME) || ""; } catch { return ""; }
}

function saveOperator(name) {
  try { window.localStorage.setItem(OPERATOR_NAME, name); } catch { /* storage disabled */ }
}

async function renderDeadLetterList(root, ctx) {
  const p = ctx.params;
  const filters = { receiver: upper(p.get("receiver")), reason: (p.get("reason") || "").trim(),
    within: p.get("within") || "", cursor: p.get("cursor") || "" };
  const controls = {
    receiver: textInput("d-receiver", "receiver", filters.receiver, { maxlength: "2", size: "4" }),
    reason: textInput("d-reason", "reason", filters.reason, { size: "22" }),
    within: windowSelect("d-within", filters.within),
  };
  const form = filterForm("dead-letters", "Filter dead letters", [
    field("d-receiver", "Receiver", controls.receiver),
    field("d-reason", "Reason", controls.reason, "e.g. retries-exhausted"),
    field("d-within", "Died", controls.within)], controls);
  const result = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  replace(root, viewHead("Dead letters",
    "Parked messages by time of death, newest first. Select some (or all matching) to replay " +
    "them after a preview, or discard one."), form, result);
  const params = apiFilters(filters);
  const body = await load(result, `/v1/dead-letters${query(params)}`, ctx, "Dead letters");
  if (!body) return;
  const dead = body.dead_letters || [];
  const boxes = new Map();
  const rows = dead.map((m) => {
    const box = h("input", { type: "checkbox", class: "pick", value: m.message_id,
      "aria-label": `Select ${m.message_id}` });
    boxes.set(m.message_id, box);
    const discard = h("button", { type: "button", class: "secondary discard",
      "aria-label": `Discard ${m.message_id}` }, "Discard…");
    discard.addEventListener("click", () => {
      ctx.dirty = true;
      showDiscard(actions, m, ctx);
    });
    return h("tr", { dataset: { messageId: m.message_id } },
      h("td", {}, box),
      h("td", {}, timeEl(m.died_at || m.state_at)),
      h("td", {}, idLink(m.message_id, deadLetterHref(m.message_id))),
      h("td", {}, docType(m.document_type)),
      h("td", { class: "nowrap" }, `${m.sender} → ${m.receiver}`),
      h("td", {}, m.reason ? h("code", { class: "reason" }, m.reason) : dash(null),
        m.last_error && m.last_error !== m.reason
          ? h("div", { class: "updated" }, "last error ", h("code", {}, m.last_error)) : null),
      h("td", { class: "detail-text" }, dash(m.detail)),
      num(m.attempts),
      h("td", {}, discard));
  });
  const actions = h("div", { class: "bulk-actions" });
  const selected = () => [...boxes.values()].filter((b) => b.checked).map((b) => b.value);
  const replaySelected = h("button", { type: "button", class: "replay-selected" },
    "Replay selected…");
  const replayAll = h("button", { type: "button", class: "secondary replay-all" },
    "Replay all matching…");
  replaySelected.addEventListener("click", () => {
    const ids = selected();
    if (!ids.length) {
      replace(actions, h("p", { class: "error-text", role: "alert" },
        "Select at least one dead letter first."));
      return;
    }
    ctx.dirty = true;
    showReplay(actions, { message_ids: ids }, `${ids.length} selected`, ctx);
  });
  const { cursor, ...matching } = params;
  delete matching.limit;
  replayAll.addEventListener("click", () => {
    ctx.dirty = true;
    showReplay(actions, { filter: Object.fromEntries(Object.entries(matching)
      .filter(([, v]) => v !== "")) }, "all matching the filters", ctx);
  });
  void cursor;
  replace(result,
    table({
      caption: `${dead.length} dead letter${dead.length === 1 ? "" : "s"} on this page, ` +
        "newest death first",
      head: [h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Select")),
        "Died", "Message id", "Document", "Route", "Reason", "Detail",
        h("th", { scope: "col", class: "num" }, "Attempts"),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions"))],
      rows,
      empty: "No dead letters match: nothing is parked.",
    }),
    pager("dead-letters", filters, body.next,
      `/v1/dead-letters${query({ ...params, format: "csv" })}`, "dead letters"),
    dead.length ? h("div", { class: "toolbar" }, replaySelected, replayAll) : null,
    actions);
}

/** The reason and operator fields every action asks for; returns the values or null. */
function whoAndWhy(prefix) {
  const reason = h("textarea", { id: `${prefix}-reason`, name: "reason", required: true,
    maxlength: "500" });
  const operator = h("input", { id: `${prefix}-operator`, name: "operator", type: "text",
    required: true, maxlength: "100", autocomplete: "name", value: savedOperator() });
  const error = h("p", { class: "error-text", role: "alert" });
  const fields = [field(`${prefix}-reason`, "Reason (required)", reason),
    field(`${prefix}-operator`, "Your name (required)", operator), error];
  const read = () => {
    const values = { reason: reason.value.trim(), operator: operator.value.trim() };
    if (!values.reason || !values.operator) {
      error.textContent = "Give a reason and your name; both are recorded in the audit log.";
      (values.reason ? operator : reason).focus();
      return null;
    }
    error.textContent = "";
    saveOperator(values.operator);
    return values;
  };
  return { fields, read };
}

function showReplay(container, selection, label, ctx) {
  const { fields, read } = whoAndWhy("bulk");
  const preview = h("div", { class: "replay-preview", "aria-live": "polite" });
  const form = h("form", { class: "replay-form", novalidate: true,
    "aria-label": "Replay dead letters" },
    h("h2", {}, `Replay ${label}`), fields,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Preview replay"),
      h("button", { type: "button", class: "secondary cancel" }, "Cancel")),
    preview);
  form.querySelector(".cancel").addEventListener("click", () => {
    replace(container);
    ctx.dirty = false;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const who = read();
    if (!who) return;
    let answer;
    try {
      answer = await api("/v1/dead-letters/replay",
        { method: "POST", json: { ...who, ...selection, dry_run: true } });
    } catch (error) {
      replace(preview, problemBox(error, "Preview"));
      return;
    }
    const where = Object.entries(answer.by_receiver || {});
    const confirm = h("button", { type: "button", class: "confirm-replay" },
      `Replay ${answer.count} message${answer.count === 1 ? "" : "s"}`);
    confirm.disabled = answer.count === 0;
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      try {
        const done = await api("/v1/dead-letters/replay",
          { method: "POST", json: { ...who, message_ids: answer.message_ids, dry_run: false } });
        const failed = (done.results || []).filter((r) => r.error);
        replace(preview, h("p", { class: "outcome", role: "status" },
          `Replayed ${done.replayed} of ${done.count}.`,
          failed.length ? ` ${failed.length} refused: ${failed.map((f) => f.error).join(", ")}.`
            : ""));
        announce(`Replayed ${done.replayed} dead letters.`);
        ctx.dirty = false;
        ctx.later(() => route({ focus: false, refreshing: true }), 1500);
      } catch (error) {
        confirm.disabled = false;
        replace(preview, problemBox(error, "Replay"));
      }
    });
    replace(preview, h("div", { class: "preview", role: "status" },
      h("p", { class: "preview-count" },
        `${answer.count} dead letter${answer.count === 1 ? "" : "s"} would be replayed` +
        (answer.not_dead && answer.not_dead.length
          ? ` (${answer.not_dead.length} no longer dead, left alone)` : "") + "."),
      where.length ? h("ul", { class: "preview-where" }, where.map(([receiver, w]) =>
        h("li", { dataset: { receiver } }, `${w.count} to ${receiver}`,
          w.adapter ? ` through ${w.adapter}` : ""))) : null,
      h("div", { class: "actions" }, confirm)));
    confirm.focus();
  });
  replace(container, form);
  form.querySelector("textarea").focus();
}

function showDiscard(container, m, ctx) {
  const { fields, read } = whoAndWhy("discard");
  const outcome = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "discard-form", novalidate: true,
    "aria-label": "Discard dead letter" },
    h("h2", {}, "Discard ", h("span", { class: "mono" }, m.message_id)),
    h("p", {}, `The message to ${m.receiver} will not be delivered; it stays in the journal as ` +
      "DISCARDED for audit."),
    fields,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "danger" },
      "Discard message"), h("button", { type: "button", class: "secondary cancel" }, "Cancel")),
    outcome);
  form.querySelector(".cancel").addEventListener("click", () => {
    replace(container);
    ctx.dirty = false;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const who = read();
    if (!who) return;
    try {
      const done = await api(`/v1/dead-letters/${encodeURIComponent(m.message_id)}/discard`,
        { method: "POST", json: who });
      replace(outcome, h("p", { class: "outcome", role: "status" },
        `${done.message_id} is `, stateBadge(done.state), "."));
      announce("Dead letter discarded.");
      ctx.dirty = false;
      ctx.later(() => route({ focus: false, refreshing: true }), 1500);
    } catch (error) {
      replace(outcome, problemBox(error, "Discard"));
    }
  });
  replace(container, form);
  form.querySelector("textarea").focus();
}

VIEWS.refusals = { title: "Refusals", render: renderRefusals, detail: renderRefusal };
VIEWS.messages = { ...VIEWS.messages, render: renderSearch };
VIEWS["dead-letters"] = { ...VIEWS["dead-letters"], render: renderDeadLetterList };
