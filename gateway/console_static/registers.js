// Registers and deadlines (issue 18): the certified-exporter and AEO registers the gateway keeps
// per issuing country, with their history (who granted what, when, what changed), and the OCP
// time limits that are due or overdue. Read-only views over GET /v1/registers/... and
// GET /v1/deadlines; they add themselves to the console's router.

import { VIEWS, DEADLINE_TONE, h, api, query, table, panel, viewHead, field, card, timeEl, dash,
  docType, idLink, navigate, replace } from "./console.js";
import { cursorOf } from "./oversight.js";

const COUNTRIES = ["BN", "KH", "ID", "LA", "MY", "MM", "PH", "SG", "TH", "VN"];
const CE = "certified-exporters";
const AEO = "aeo";
const DEADLINE_STATUSES = ["due", "overdue", "open", "closed", "met", "late", "used"];
const DEADLINE_TYPES = ["EFD", "OD", "RCQ", "VVQ"];
const STANDING_TONE = { active: "ok", ACTIVE: "ok", suspended: "warn", SUSPENDED: "warn",
  withdrawn: "bad", WITHDRAWN: "bad", REVOKED: "bad", expired: "neutral" };

function today() {
  return new Date().toISOString().slice(0, 10);
}

function validDay(raw) {
  return /^\d{4}-\d{2}-\d{2}$/.test(raw || "") ? raw : today();
}

function badge(status) {
  return h("span", { class: `badge ${STANDING_TONE[status] || "neutral"}` }, status);
}

function registerHref(kind, country, key) {
  return `#/registers/${kind}/${encodeURIComponent(country)}/${encodeURIComponent(key)}`;
}

function list(values) {
  return values && values.length ? values.join(", ") : dash(null);
}

// --- the registers of one country on one day ----------------------------------------------------

async function renderRegisters(root, ctx) {
  const wanted = (ctx.params.get("country") || "SG").toUpperCase();
  const country = COUNTRIES.includes(wanted) ? wanted : "SG";
  const day = validDay(ctx.params.get("on"));
  const select = h("select", { id: "register-country", name: "country" },
    COUNTRIES.map((cc) => h("option", { value: cc, selected: cc === country }, cc)));
  const on = h("input", { id: "register-on", name: "on", type: "date", value: day,
    "aria-describedby": "register-on-hint" });
  const form = h("form", { class: "filters", "aria-label": "Register and day" },
    field("register-country", "Issuing country", select),
    field("register-on", "As it stood on", on, "The register at the end of this day (UTC)."),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Show registers")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(`#/registers${query({ country: select.value, on: on.value || today() })}`);
  });
  const result = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  replace(root, viewHead("Registers",
    "The certified exporters (self-certification, OCP Rules 12A-12D) and the authorised " +
    "economic operators (ASEAN AEO MRA) each country has notified, as they stood on a day. " +
    "Open an entry for its history: who granted what, when, and what changed."),
  form, result);
  const [exporters, aeos] = await Promise.all([
    api(`/v1/registers/${CE}/${country}${query({ on: day })}`, { signal: ctx.signal }),
    api(`/v1/registers/${AEO}/${country}${query({ on: day })}`, { signal: ctx.signal }),
  ]);
  const ces = exporters.exporters || [];
  const ops = aeos.operators || [];
  replace(result,
    h("dl", { class: "cards", "aria-label": `${country} registers on ${day}` },
      card("Certified exporters", ces.length, "info"),
      card("Active exporters", ces.filter((e) => e.status === "active").length, "ok"),
      card("AEOs", ops.length, "info"),
      card("AEOs valid", ops.filter((o) => o.valid).length, "ok")),
    panel("Certified exporters", table({
      caption: `${country}: ${ces.length} certified exporter${ces.length === 1 ? "" : "s"} ` +
        `on ${day}`,
      head: ["Authorisation", "Exporter", "Status", "Since", "Valid", "Signatories", "Products"],
      rows: ces.map((e) => h("tr", { dataset: { authorisation: e.authorisation_id,
        status: e.status } },
      h("th", { scope: "row" }, h("a", { href: registerHref(CE, country, e.authorisation_id) },
        e.authorisation_id)),
      h("td", {}, e.name),
      h("td", {}, badge(e.status)),
      h("td", {}, e.since),
      h("td", { class: "nowrap" }, `${e.issue_date} – ${e.expiry_date}`),
      h("td", {}, list(e.signatories)),
      h("td", {}, list((e.products || []).map((p) => p.code))))),
      empty: `${country} has notified no certified exporter in force on ${day}.`,
    })),
    panel("Authorised economic operators", table({
      caption: `${country}: ${ops.length} AEO${ops.length === 1 ? "" : "s"} on ${day}`,
      head: ["AEO id", "Holder", "Roles", "Status", "Valid from", "Valid to", "MRA benefit"],
      rows: ops.map((o) => h("tr", { dataset: { aeo: o.aeo_id, status: o.status } },
        h("th", { scope: "row" }, h("a", { href: registerHref(AEO, country, o.aeo_id) },
          o.aeo_id)),
        h("td", {}, o.name),
        h("td", {}, list(o.roles)),
        h("td", {}, badge(o.status)),
        h("td", {}, o.valid_from),
        h("td", {}, o.valid_to),
        h("td", {}, o.valid ? "yes" : h("span", { class: "badge warn" }, "no")))),
      empty: `${country} has notified no AEO in force on ${day}.`,
    })));
}

// --- one entry and its history --------------------------------------------------------------------

const FIELD_NAMES = {
  name: "name", exporter_id: "exporter id", issue_date: "issued", expiry_date: "expires",
  products: "products", signatories: "signatories", roles: "roles", valid_from: "valid from",
  valid_to: "valid to", status: "status", reason: "reason",
};

function shown(value) {
  if (Array.isArray(value)) {
    return value.map((v) => (v && typeof v === "object" ? v.code : String(v))).join(", ") || "—";
  }
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

/** What an entry changed against the record before it, one line per field. */
function changes(before, after) {
  if (!after) return [h("li", {}, "the record is removed")];
  if (!before) return [h("li", {}, "first entry")];
  const lines = [];
  for (const key of Object.keys(FIELD_NAMES)) {
    if (!(key in after) && !(key in before)) continue;
    const was = shown(before[key]);
    const now = shown(after[key]);
    if (was !== now) {
      lines.push(h("li", { dataset: { field: key } }, `${FIELD_NAMES[key]}: `,
        h("del", {}, was), " → ", h("ins", {}, now)));
    }
  }
  return lines.length ? lines : [h("li", {}, "no change to the record")];
}

function historyTable(history, key) {
  let before = null;
  const rows = [];
  for (const entry of history) {
    const own = entry.record_key === key;
    const after = own ? entry.record : null;
    rows.push(h("tr", { dataset: { action: entry.action } },
      h("td", {}, entry.effective_date),
      h("td", {}, h("code", {}, entry.action)),
      h("td", {}, own ? h("ul", { class: "changes" }, changes(before, after))
        : "snapshot: the register is replaced by the notification's list"),
      h("td", {}, dash(entry.reason)),
      h("td", {}, entry.message_id ? idLink(entry.message_id) : dash(null)),
      h("td", {}, timeEl(entry.recorded_at))));
    if (own) before = after;
  }
  return table({
    label: "History",
    head: ["Effective", "Action", "What changed", "Reason", "Message", "Recorded"],
    rows,
    empty: "No entry.",
  });
}

async function renderRegisterEntry(root, ctx, rest) {
  const [kind, country, ...keyParts] = rest.split("/");
  const key = keyParts.join("/");
  if (![CE, AEO].includes(kind) || !country || !key) {
    replace(root, viewHead("Register entry not found"),
      h("p", {}, h("a", { href: "#/registers" }, "Back to the registers")));
    return;
  }
  const day = validDay(ctx.params.get("on"));
  const path = `/v1/registers/${kind}/${encodeURIComponent(country)}/${encodeURIComponent(key)}`;
  const body = await api(`${path}${query({ on: day })}`, { signal: ctx.signal });
  const record = kind === CE ? body.standing : body.record;
  const status = record ? record.status : "not in the register";
  const title = `${kind === CE ? "Certified exporter" : "AEO"} ${key}`;
  const facts = record ? h("dl", { class: "facts" },
    h("div", {}, h("dt", {}, "Issuing country"), h("dd", {}, country)),
    h("div", {}, h("dt", {}, "Holder"), h("dd", {}, record.name)),
    h("div", {}, h("dt", {}, `Status on ${day}`), h("dd", {}, badge(status))),
    kind === CE
      ? [h("div", {}, h("dt", {}, "Valid"), h("dd", {}, `${record.issue_date} – ${record.expiry_date}`)),
        h("div", {}, h("dt", {}, "Signatories"), h("dd", {}, list(record.signatories))),
        h("div", {}, h("dt", {}, "Products"), h("dd", {},
          list((record.products || []).map((p) => `${p.code} ${p.description || ""}`.trim()))))]
      : [h("div", {}, h("dt", {}, "Roles"), h("dd", {}, list(record.roles))),
        h("div", {}, h("dt", {}, "Valid"), h("dd", {}, `${record.valid_from} – ${record.valid_to}`)),
        h("div", {}, h("dt", {}, "MRA benefit"), h("dd", {}, body.valid ? "yes" : "no"))])
    : h("p", { class: "empty" }, `Not in ${country}'s register on ${day}.`);
  replace(root,
    viewHead(title, `${country}'s register as it stood on ${day}, and every update to it.`,
      h("a", { href: `#/registers${query({ country, on: day })}` }, "Back to the registers")),
    panel("Standing", facts),
    panel("History", historyTable(body.history || [], key)));
}

// --- deadlines -------------------------------------------------------------------------------------

function choice(id, name, values, chosen, labelOf = (v) => v) {
  return h("select", { id, name },
    h("option", { value: "", selected: chosen === "" }, "any"),
    values.map((v) => h("option", { value: v, selected: v === chosen }, labelOf(v))));
}

async function renderDeadlines(root, ctx) {
  const pick = (name, allowed) => (allowed.includes(ctx.params.get(name)) ?
    ctx.params.get(name) : "");
  const status = pick("status", DEADLINE_STATUSES);
  const type = pick("type", DEADLINE_TYPES);
  const country = pick("country", COUNTRIES);
  const cursor = ctx.params.get("cursor") || null;
  const select = choice("deadline-status", "status", DEADLINE_STATUSES, status);
  const types = choice("deadline-type", "type", DEADLINE_TYPES, type, docType);
  const countries = choice("deadline-country", "country", COUNTRIES, country);
  const filters = () => ({ status: select.value || null, type: types.value || null,
    country: countries.value || null });
  const form = h("form", { class: "filters", "aria-label": "Deadline filter" },
    field("deadline-status", "Status", select,
      "due / overdue: an answer is owed; open / closed: a rejection window."),
    field("deadline-type", "Document", types, "the message the limit runs on"),
    field("deadline-country", "Country", countries, "sender or receiver"),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Show deadlines")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(`#/deadlines${query(filters())}`);
  });
  const result = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  replace(root, viewHead("Deadlines",
    "The OCP time limits of every message that carries one, however old (rejection window, " +
    "Rule 13(3); retroactive check, Rule 18; verification visit, Rule 19), oldest first."),
  form, result);
  const body = await api(`/v1/deadlines${query({ status: status || null, type: type || null,
    country: country || null, cursor })}`, { signal: ctx.signal });
  const rows = [];
  let overdue = 0;
  let due = 0;
  for (const m of body.messages || []) {
    for (const d of m.deadlines || []) {
      if (status && d.status !== status) continue;
      if (d.status === "overdue") overdue += 1;
      if (d.status === "due") due += 1;
      rows.push(h("tr", { dataset: { messageId: m.message_id, status: d.status } },
        h("td", {}, idLink(m.message_id)),
        h("td", {}, docType(m.document_type)),
        h("td", { class: "nowrap" }, `${m.sender} → ${m.receiver}`),
        h("td", {}, d.name),
        h("td", {}, d.rule),
        h("td", {}, h("span", { class: `badge ${DEADLINE_TONE[d.status] || ""}` }, d.status)),
        h("td", {}, timeEl(d.due_at, { withRelative: true })),
        h("td", {}, d.done_at ? timeEl(d.done_at) : dash(null))));
    }
  }
  const later = cursorOf(body.next);
  const chosen = { status: status || null, type: type || null, country: country || null };
  replace(result,
    h("dl", { class: "cards", "aria-label": "Owed answers" },
      card("Overdue", overdue, overdue ? "bad" : "ok"),
      card("Due", due, due ? "warn" : "ok")),
    table({
      caption: `${rows.length} time limit${rows.length === 1 ? "" : "s"}` +
        (status ? ` with status ${status}` : "") + (cursor ? " (a later page)" : ""),
      head: ["Message", "Document", "Sender → receiver", "Limit", "Rule", "Status", "Due", "Done"],
      rows,
      empty: status ? `No time limit is ${status}.` : "No time limit runs on any message.",
    }),
    h("div", { class: "pager" },
      cursor ? h("a", { class: "button secondary", href: `#/deadlines${query(chosen)}` },
        "Oldest") : null,
      later ? h("a", { class: "button secondary", rel: "next",
        href: `#/deadlines${query({ ...chosen, cursor: later })}` }, "Later messages") : null));
}

VIEWS.registers = { title: "Registers", render: renderRegisters, detail: renderRegisterEntry };
VIEWS.deadlines = { title: "Deadlines", render: renderDeadlines };
