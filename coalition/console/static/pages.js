// The console's pages. Each takes the route context and returns nodes to show.
// Figures are the API's own strings; this file only lays them out.

import * as api from "./api.js";
import * as charts from "./charts.js";
import {
  DASH, atWallClock, badge, cards, count, decimal, field, h, instant, money, percent, periodDays, select, signed, table,
  wallClock,
} from "./dom.js";

const CATEGORIES = ["shop", "cafe", "gym", "travel", "other"];
const RATE_KINDS = ["earn", "promo", "threshold", "redemption", "fee", "fx"];
const RATE_HINTS = {
  earn: "Points per 1 unit of the partner's currency. Needs a partner; a category is optional.",
  promo: "Multiplier on earned points, e.g. 2. Needs a partner and an end.",
  threshold: "Flat bonus points for a purchase of at least the minimum amount. Needs a partner.",
  redemption: "Base currency paid per point redeemed; coalition-wide or for one redeeming partner.",
  fee: "Base currency the issuer pays the operator per point issued; coalition-wide or per partner.",
  fx: "Base currency per 1 unit of the currency named.",
};

function heading(text, ...extra) {
  return h("h1", { tabindex: "-1" }, text, ...extra);
}

function link(route, text, attributes = {}) {
  return h("a", { href: `#/${route}`, ...attributes }, text);
}

function route(name, query = {}) {
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const text = params.toString();
  return `${name}${text ? `?${text}` : ""}`;
}

/** Run ``work`` with ``button`` marked busy: a second press meanwhile does nothing, and the
 * button keeps the keyboard's focus, which a disabled one would drop to the page. */
async function whileBusy(button, work) {
  if (button?.getAttribute("aria-disabled") === "true") return;
  button?.setAttribute("aria-disabled", "true");
  try {
    await work();
  } finally {
    button?.removeAttribute("aria-disabled");
  }
}

/** Each field of ``element`` that an API answer refused (its `errors` by field name) marked
 * where it is typed: invalid, with the API's words under it, read with the control as its
 * hint is. What an earlier answer marked is taken off first. */
function markRefused(element, error) {
  for (const note of element.querySelectorAll(".field-error")) {
    const control = note.previousElementSibling;
    control.removeAttribute("aria-invalid");
    const described = control.getAttribute("aria-describedby").split(" ").filter((id) => id !== note.id);
    if (described.length) control.setAttribute("aria-describedby", described.join(" "));
    else control.removeAttribute("aria-describedby");
    note.remove();
  }
  for (const [name, words] of Object.entries(error?.body?.errors?.json ?? {})) {
    const control = element.elements.namedItem(name);
    if (!(control instanceof HTMLElement) || !control.id || !Array.isArray(words)) continue;
    const note = h("small", { class: "field-error", id: `${control.id}-error` }, words.join(" "));
    control.after(note);
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", [control.getAttribute("aria-describedby"), note.id].filter(Boolean).join(" "));
  }
}

/** A form whose submit handler shows the API's message in the form on failure, and marks
 * each field it refused. Enter submits it from a drop-down too, as it does from a text field. */
function form(attributes, submit, ...children) {
  const message = h("p", { class: "form-error", role: "alert", tabindex: "-1", hidden: true });
  const element = h("form", { ...attributes, novalidate: true }, ...children);
  const button = element.querySelector("button[type=submit]");
  if (button) button.before(message);
  else element.append(message);
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    await whileBusy(button, async () => {
      message.hidden = true;
      try {
        await submit(new FormData(element), element);
        markRefused(element, null);
      } catch (error) {
        document.getElementById("notice").hidden = true; // an earlier success is not this form's answer
        message.textContent = error.message;
        message.hidden = false;
        markRefused(element, error);
        message.focus();
      }
    });
  });
  element.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.tagName === "SELECT") {
      event.preventDefault();
      element.requestSubmit();
    }
  });
  return element;
}

function input(id, attributes = {}) {
  return h("input", { id, name: id, ...attributes });
}

function trimmed(data) {
  const out = {};
  for (const [name, value] of data.entries()) {
    const text = String(value).trim();
    if (text !== "") out[name] = text;
  }
  return out;
}

/** A form's whole-number fields as numbers where they are written so, a negative one too
 * (for the API to say it is out of range); anything else is sent as typed, for the API's 422
 * to say what is wrong with it (a number field would hand the page nothing for "7-", and the
 * API would take its default). */
function withWholeNumbers(body, ...names) {
  for (const name of names) if (/^-?[0-9]+$/.test(body[name] ?? "")) body[name] = Number(body[name]);
  return body;
}

/** A form's currency codes upper-cased: ISO 4217 writes them so, and "rub" is RUB. */
function withCurrencyCodes(body, ...names) {
  for (const name of names) if (body[name]) body[name] = body[name].toUpperCase();
  return body;
}

/** The fields of ``typed`` that differ from ``shown``: a change sends only those, and its
 * notice names them; none is the form's error. */
function changedFields(typed, shown, names) {
  // the form trims what it sends, so a value stored with spaces around it is no change
  const differs = (name) => String(typed[name] ?? "") !== String(shown[name]).trim();
  const changed = Object.fromEntries(names.filter(differs).map((name) => [name, typed[name] ?? ""]));
  if (!Object.keys(changed).length) throw new Error("Nothing to change: every field is as it was.");
  return changed;
}

/** A listing's filters: showing them opens the page at an address that keeps the choice. */
function filters(page, label, ...fields) {
  return form(
    { class: "filters", "aria-label": label },
    async (data) => {
      window.location.hash = `#/${route(page, trimmed(data))}`;
    },
    ...fields,
    h("button", { type: "submit" }, "Show"),
  );
}

function rfc3339(wallValue, label, zone) {
  // A datetime-local value is a time of the coalition's zone, whatever the browser's; sent as UTC.
  if (!wallValue) throw new Error(`${label}: enter a date and time.`);
  const date = atWallClock(wallValue, zone);
  if (date === null || Number.isNaN(date.getTime())) throw new Error(`${wallValue} is not a date and time`);
  return date.toISOString();
}

/** A button that downloads a document with the key, saying what was saved or why not. */
function downloadButton(text, label, path, fallbackName, notify) {
  return h(
    "button",
    {
      type: "button",
      class: "small",
      "aria-label": label,
      onclick: (event) =>
        whileBusy(event.currentTarget, async () => {
          try {
            const saved = await api.download(path, fallbackName);
            notify(`Downloaded ${saved.name} (${count(saved.size)} bytes).`);
          } catch (error) {
            // a refused key has signed out already, saying why
            if (error.status !== 401) notify(error.message, "error");
          }
        }),
    },
    text,
  );
}

function documentButton(kind, statement, notify) {
  const label = kind.toUpperCase();
  return downloadButton(
    label,
    `Download statement ${statement.number} as ${label}`,
    `/api/v1/statements/${statement.id}/${kind}`,
    `coalition-statement-${statement.number}.${kind}`,
    notify,
  );
}

/** The partner's transactions of the statement's period, a row per points movement, to
 * check the statement against its own tills (docs/console.md). */
function transactionsButton(statement, notify) {
  return downloadButton(
    "Transactions CSV",
    `Download ${statement.partner_name}'s transactions of ${statement.period_id} as CSV`,
    route("/api/v1/transactions/csv", { period_id: statement.period_id, partner_id: statement.partner_id }),
    "transactions.csv",
    notify,
  );
}

/**
 * The coalition's time zone, which periods follow (SPEC §3), from the settings: the
 * operator's and finance keys' to read; null for a partner key, or when they cannot
 * be read, and the page shows the periods' bounds as UTC instants.
 */
async function timezoneOf(who) {
  if (who.role === "partner") return null;
  try {
    return (await api.get("/api/v1/settings")).timezone || null;
  } catch {
    return null; // the page's own request says what is wrong, if anything is
  }
}

// --- periods ------------------------------------------------------------------------------

export async function periods({ who, notify, rerender }) {
  const [all, zone] = await Promise.all([api.get("/api/v1/periods"), timezoneOf(who)]);
  const list = all.slice().reverse();
  const settles = !who.own_partner;
  const now = Date.now();
  const close = async (period) => {
    if (!window.confirm(`Close ${period.id} and every earlier open period, and issue final statements?`)) return;
    try {
      await api.post(`/api/v1/settlements/${encodeURIComponent(period.id)}/close`);
      notify(`${period.id} is closed; its statements are issued.`);
      window.location.hash = `#/settlement/${period.id}`;
    } catch (error) {
      notify(error.message, "error");
      rerender();
    }
  };
  return [
    heading("Periods"),
    h(
      "p",
      { class: "lead" },
      settles
        ? "Settlement periods, newest first. An open period shows a live draft; closing it issues final, immutable statements."
        // a key bound to a partner sees no draft and closes nothing: say what it can do here
        : `Settlement periods, newest first. When a period is closed, the final statement of ${who.own_partner} for it is issued: open it from Statements. KPIs shows ${who.own_partner}'s figures of any period, closed or still open.`,
    ),
    table(
      [
        { label: "Period", value: (p) => (settles ? link(`settlement/${p.id}`, p.id) : p.id) },
        ...(zone
          ? [{ label: "Covers", value: (p) => periodDays(p.start, p.end, zone, { named: false }) }]
          : [
              { label: "Starts", value: (p) => instant(p.start) },
              { label: "Ends", value: (p) => instant(p.end) },
            ]),
        { label: "Status", value: (p) => badge(p.status) },
        { label: "Closed at", value: (p) => instant(p.closed_at) },
        {
          label: "Actions",
          value: (p) =>
            h(
              "span",
              { class: "actions" },
              settles ? link(`settlement/${p.id}`, p.status === "closed" ? "Settlement" : "Draft") : null,
              p.status === "closed" ? link(route("statements", { period_id: p.id }), "Statements") : null,
              link(route("kpis", { period: p.id }), "KPIs"),
              who.role === "operator" && p.status === "open" && Date.parse(p.end) <= now
                ? h("button", { type: "button", class: "small", onclick: () => close(p) }, "Close…")
                : null,
            ),
        },
      ],
      list,
      {
        empty: "No periods yet: they begin with the first transaction.",
        caption: zone ? `Days in ${zone}, the coalition's time zone, as on the statements` : null,
      },
    ),
  ];
}

// --- settlement ---------------------------------------------------------------------------

const CHARTED_PARTNERS = 20; // bars of the net-position chart: the largest nets, as the PDF draws ten
const LISTED_PAIR_LINES = 200; // pair lines listed for every partner at once: the largest values

/** The items of largest absolute ``value``, at most ``most``, largest first: what a page
 * of a coalition of hundreds of partners shows at once (its CSV holds every one). */
function largest(items, most, value) {
  return items.slice().sort((a, b) => Math.abs(Number(value(b))) - Math.abs(Number(value(a)))).slice(0, most);
}

/** A partner's name, followed by its id where another partner has the same name (a chain's outlets).
 * Takes a partner as listed (`id`) or as a report's entry (`partner_id`). */
function namer(partners) {
  const uses = new Map();
  for (const p of partners) uses.set(p.name, (uses.get(p.name) ?? 0) + 1);
  return (p) => (uses.get(p.name) > 1 ? `${p.name} (${p.partner_id ?? p.id})` : p.name);
}

/** A drop-down's choices of partners: two of one name are told apart by their ids. */
function partnerChoicesOf(partnerList) {
  const label = namer(partnerList);
  return partnerList.map((p) => [p.id, label(p)]);
}

export async function settlement({ param, query, who, notify }) {
  if (who.own_partner) {
    return [heading("Settlement"), h("p", {}, "A key bound to a partner reads that partner's statements instead."), link("statements", "Go to statements")];
  }
  if (!param) {
    const list = await api.get("/api/v1/periods");
    const closed = list.filter((p) => p.status === "closed");
    const chosen = (closed.length ? closed : list).at(-1);
    if (!chosen) return [heading("Settlement"), h("p", { class: "empty" }, "No periods yet.")];
    window.location.replace(`#/settlement/${chosen.id}`);
    return [];
  }
  const [result, zone] = await Promise.all([api.get(`/api/v1/settlements/${encodeURIComponent(param)}`), timezoneOf(who)]);
  const base = result.base_currency;
  const n = result.netting;
  const partners = result.partners.slice().sort((a, b) => a.partner_id.localeCompare(b.partner_id));
  const label = namer(partners);
  const names = Object.fromEntries(partners.map((p) => [p.partner_id, label(p)]));
  const charted = largest(partners, CHARTED_PARTNERS, (p) => p.net).sort(
    (a, b) => Number(b.net) - Number(a.net) || a.partner_id.localeCompare(b.partner_id),
  );
  const many = result.pair_lines.length > LISTED_PAIR_LINES; // then one partner's may be chosen
  const chosen = many && Object.hasOwn(names, query.partner_id ?? "") ? query.partner_id : "";
  const lines = chosen
    ? result.pair_lines.filter((l) => l.issuer_id === chosen || l.redeemer_id === chosen)
    : many ? largest(result.pair_lines, LISTED_PAIR_LINES, (l) => l.value) : result.pair_lines;
  return [
    heading(`Settlement ${result.period_id} `, badge(result.status)),
    h(
      "p",
      { class: "lead" },
      `${zone ? periodDays(result.start, result.end, zone) : `${instant(result.start)} to ${instant(result.end)}`}. Amounts in ${base}; positive net: the operator pays the partner, negative: the partner pays the operator.`,
      result.status === "draft" ? " This is a live draft: it changes until the period is closed." : "",
      result.missing_fx?.length
        ? ` Closing it needs an fx rate at the period's end for ${result.missing_fx.join(", ")}.`
        : "",
    ),
    h(
      "p",
      { class: "actions" },
      downloadButton(
        "CSV",
        `Download the settlement of ${result.period_id} as CSV`,
        `/api/v1/settlements/${encodeURIComponent(result.period_id)}/csv`,
        `coalition-settlement-${result.period_id}-${result.status}.csv`,
        notify,
      ),
    ),
    h("h2", {}, "Netting"),
    cards([
      ["Gross of pair lines", money(n.gross, base)],
      ["Bilateral net", money(n.bilateral_net, base)],
      ["Multilateral net", money(n.multilateral_net, base), "Σ |net|: paid in and paid out, fees included"],
      ["Netting ratio", percent(n.netting_ratio), "1 − multilateral ÷ gross; below 0 when Σ |net| exceeds the gross"],
      ["Payments", `${count(n.payments_gross)} → ${count(n.payments_net)}`, `${count(n.payments_saved)} saved by netting`],
    ]),
    charts.divergingBars(
      `Net position by partner (${base})`,
      charted.map((p) => ({ label: label(p), value: p.net, text: money(p.net, base) })),
      { description: `Net position of each partner in ${base}`, positive: "operator pays", negative: "partner pays" },
    ),
    charted.length < partners.length
      ? h("p", { class: "hint" }, `The largest ${charted.length} of ${count(partners.length)} partners by size of net position; the table lists them all.`)
      : null,
    h("h2", {}, "Partners"),
    table(
      [
        { label: "Partner", value: (p) => h("span", {}, p.name, h("small", { class: "id" }, p.partner_id)) },
        { label: `Receivable`, value: (p) => decimal(p.receivable), numeric: true },
        { label: `Payable`, value: (p) => decimal(p.payable), numeric: true },
        { label: `Fees`, value: (p) => decimal(p.fees), numeric: true },
        { label: `Net (${base})`, value: (p) => h("strong", {}, decimal(p.net)), numeric: true },
        { label: "FX rate", value: (p) => p.fx_rate ?? DASH, numeric: true },
        { label: "Net in currency", value: (p) => money(p.net_in_currency, p.currency), numeric: true },
        { label: "Points issued", value: (p) => count(p.points_issued), numeric: true },
        { label: "Points redeemed", value: (p) => count(p.points_redeemed), numeric: true },
        { label: "Expired", value: (p) => count(p.points_expired), numeric: true },
        { label: "Late", value: (p) => count(p.late_count), numeric: true },
        { label: `Liability (${base})`, value: (p) => decimal(p.liability), numeric: true },
      ],
      partners,
      { caption: `Amounts in ${base} unless marked` },
    ),
    h("h2", {}, "Pair lines"),
    h("p", { class: "hint" }, "What each issuer owes each redeemer for the points spent there; own redemption carries no money."),
    many
      ? filters(
          `settlement/${encodeURIComponent(result.period_id)}`,
          "Choose a partner's pair lines",
          field("Pair lines of", select("partner_id", [["", "Every partner"], ...partners.map((p) => [p.partner_id, label(p)])], chosen)),
        )
      : null,
    table(
      [
        { label: "Issuer", value: (l) => names[l.issuer_id] ?? l.issuer_id },
        { label: "Redeemer", value: (l) => names[l.redeemer_id] ?? l.redeemer_id },
        { label: "Points", value: (l) => count(l.points), numeric: true },
        { label: `Value (${base})`, value: (l) => (l.own_redemption ? "own redemption" : decimal(l.value)), numeric: true },
      ],
      lines,
      { empty: chosen ? `None of ${names[chosen]}'s points were redeemed in this period, and it redeemed none.` : "No points were redeemed in this period." },
    ),
    !chosen && many
      ? h(
          "p",
          { class: "hint" },
          `The ${count(lines.length)} largest of ${count(result.pair_lines.length)} pair lines by value: choose a partner for every line of its own, or download the CSV for all of them.`,
        )
      : null,
    result.status === "final"
      ? h("p", {}, link(route("statements", { period_id: result.period_id }), "Statements of this period →"))
      : null,
  ];
}

// --- statements ---------------------------------------------------------------------------

const ALL_PERIODS = "all"; // #/statements?period_id=all; a period id begins with its year

export async function statements({ who, query, notify }) {
  const [periodList, partnerList] = await Promise.all([
    api.get("/api/v1/periods"),
    who.role === "partner" || who.own_partner ? Promise.resolve([]) : api.get("/api/v1/partners"),
  ]);
  const closed = periodList.filter((p) => p.status === "closed").reverse();
  // "all" is a choice the address keeps (an empty value is dropped from it); no choice is the newest closed period
  const periodId = query.period_id === "" ? ALL_PERIODS : query.period_id ?? closed[0]?.id ?? ALL_PERIODS;
  const partnerId = who.own_partner ? "" : query.partner_id ?? "";
  // a period the address names that has no statements (open, or none such) is still the one shown
  const periodChoices = closed.map((p) => [p.id, p.id]);
  if (periodId !== ALL_PERIODS && !closed.some((p) => p.id === periodId)) periodChoices.unshift([periodId, periodId]);
  const { items, more } = await api.newest("/api/v1/statements", {
    period_id: periodId === ALL_PERIODS ? undefined : periodId,
    partner_id: partnerId,
  });
  // newest period first, as on the periods page; a period's statements by number
  items.sort((a, b) => b.period_id.localeCompare(a.period_id) || a.number.localeCompare(b.number));
  return [
    heading("Statements"),
    h("p", { class: "lead" }, "Final statements, one per partner and closed period. Documents download as the same bytes every time."),
    filters(
      "statements",
      "Filter statements",
      field("Period", select("period_id", [[ALL_PERIODS, "All periods"], ...periodChoices], periodId)),
      partnerList.length
        ? field("Partner", select("partner_id", [["", "All partners"], ...partnerChoicesOf(partnerList)], partnerId))
        : null,
    ),
    table(
      [
        { label: "Number", value: (st) => link(`statement/${st.id}`, st.number) },
        { label: "Period", value: (st) => st.period_id },
        { label: "Partner", value: (st) => h("span", {}, st.partner_name, h("small", { class: "id" }, st.partner_id)) },
        { label: "Net", value: (st) => money(st.summary.net, st.base_currency), numeric: true },
        { label: "Net in currency", value: (st) => money(st.summary.net_in_currency, st.currency), numeric: true },
        { label: "Issued", value: (st) => instant(st.issued_at) },
        { label: "Documents", value: (st) => h("span", { class: "actions" }, documentButton("pdf", st, notify), documentButton("csv", st, notify)) },
      ],
      items,
      { empty: "No statements for this choice: statements are issued when a period is closed." },
    ),
    more ? h("p", { class: "hint" }, `Showing the newest ${count(api.NEWEST)} statements: choose a period or a partner for older ones.`) : null,
  ];
}

const OPERATOR_PARTNER = "coalition"; // the operator's own account, which its bonus points are paid from
const NBSP = "\u00a0";

/**
 * Who pays whom, in words: the sentence of the statement's PDF (reports/statement.py,
 * docs/decisions.md). Positive net: the operator pays the partner. The amount goes
 * without its sign, the partner's currency first, since that is what moves, then the
 * base amount and the fx rate; a net that converts to nothing in the partner's minor
 * unit is nothing to pay.
 */
function settlementSentence(st) {
  const sum = st.summary;
  const base = st.base_currency;
  const net = String(sum.net);
  const zero = (text) => /^-?0*(\.0*)?$/.test(text);
  const unsigned = (text) => decimal(String(text).replace(/^-/, ""));
  if (zero(net)) return `Nothing to pay: the net position for this period is ${unsigned(net)}${NBSP}${base}.`;
  let amount = `${unsigned(net)}${NBSP}${base}`;
  if (st.currency !== base && sum.net_in_currency !== null && sum.net_in_currency !== undefined) {
    const inCurrency = String(sum.net_in_currency);
    const atRate = `at ${sum.fx_rate} ${base} per ${st.currency}`;
    if (zero(inCurrency)) {
      return `Nothing to pay: the net position of ${decimal(net)}${NBSP}${base} comes to ${unsigned(inCurrency)}${NBSP}${st.currency} ${atRate}.`;
    }
    amount = `${unsigned(inCurrency)}${NBSP}${st.currency} (${amount} ${atRate})`;
  }
  // set apart, an Arabic or Hebrew name reads in its own direction, and the figure after it stays after it
  const partner = h("bdi", {}, st.partner_name);
  const paid = !net.startsWith("-");
  if (st.partner_id === OPERATOR_PARTNER) {
    const account = [partner, ", the operator's own account,"];
    return paid ? ["The clearing house pays ", account, ` ${amount}.`] : [account, ` pays the clearing house ${amount}.`];
  }
  return paid ? ["The coalition operator pays ", partner, ` ${amount}.`] : [partner, ` pays the coalition operator ${amount}.`];
}

/** What the fees are made of, as the PDF writes them: points issued at each fee rate
 * (statements closed before fee lines were kept have none). */
function feeTerms(lines, base) {
  if (!lines?.length) return null;
  return lines.map((line) => `${count(line.points)} × ${line.fee_rate}${NBSP}${base}`).join("; ");
}

export async function statement({ param, notify }) {
  if (!/^[0-9]+$/.test(param ?? "")) {
    return [heading("Not found"), h("p", { class: "form-error", role: "alert" }, `There is no statement ${JSON.stringify(param ?? "")}: statements are numbered.`)];
  }
  const st = await api.get(`/api/v1/statements/${encodeURIComponent(param)}`);
  const sum = st.summary;
  return [
    heading(`Statement ${st.number} `, badge(st.status)),
    h("p", { class: "lead" }, h("bdi", {}, st.partner_name), ` · period ${st.period_id}, ${periodDays(st.period_start, st.period_end, st.timezone)} · issued ${instant(st.issued_at)}`),
    h("p", { class: "summary-box" }, settlementSentence(st)),
    h("p", { class: "actions" }, documentButton("pdf", st, notify), documentButton("csv", st, notify), transactionsButton(st, notify)),
    cards([
      ["Receivable", money(sum.receivable, st.base_currency)],
      ["Payable", money(sum.payable, st.base_currency)],
      ["Fees", money(sum.fees, st.base_currency), feeTerms(sum.fee_lines, st.base_currency)],
      [
        "Net",
        money(sum.net, st.base_currency),
        st.currency !== st.base_currency ? `${money(sum.net_in_currency, st.currency)} at fx ${sum.fx_rate ?? DASH}` : null,
      ],
      ["Points issued", count(sum.points_issued)],
      ["Points redeemed here", count(sum.points_redeemed)],
      ["Points expired", count(sum.points_expired)],
      ["Outstanding liability", money(sum.liability, st.base_currency), `${count(sum.liability_points)} points`],
    ]),
    h("h2", {}, "Counterparties"),
    table(
      [
        { label: "Partner", value: (c) => c.name },
        { label: "Points in", value: (c) => count(c.points_in), numeric: true },
        { label: `Value in (${st.base_currency})`, value: (c) => decimal(c.value_in), numeric: true },
        { label: "Points out", value: (c) => count(c.points_out), numeric: true },
        { label: `Value out (${st.base_currency})`, value: (c) => decimal(c.value_out), numeric: true },
        { label: `Net (${st.base_currency})`, value: (c) => decimal(c.net), numeric: true },
      ],
      st.counterparties,
      { empty: "No points moved between this partner and another." },
    ),
    h("h2", {}, "Late items"),
    table(
      [
        { label: "Transaction", value: (i) => i.external_id },
        { label: "Type", value: (i) => i.type },
        { label: "Occurred", value: (i) => instant(i.occurred_at) },
        { label: "Belonged to", value: (i) => i.original_period_id },
        { label: "Points", value: (i) => signed(i.points), numeric: true },
      ],
      st.late_items,
      { empty: "No late items." },
    ),
    h("p", { class: "hash" }, "SHA-256 ", h("code", {}, st.sha256)),
  ];
}

// --- partners -----------------------------------------------------------------------------

/** A link to a partner's KPIs, for a key that may see them: a key bound to a partner sees its own only. */
function kpisLink(who, partnerId) {
  return !who.own_partner || who.own_partner === partnerId ? link(route("kpis", { scope: partnerId }), "KPIs") : null;
}

export async function partners({ who, notify, rerender }) {
  const list = await api.get("/api/v1/partners");
  const add = who.role === "operator"
    ? form(
        { class: "panel", "aria-labelledby": "add-partner" },
        async (data, element) => {
          const body = withWholeNumbers(withCurrencyCodes(trimmed(data), "currency"), "hold_days");
          const created = await api.post("/api/v1/partners", body);
          element.reset();
          notify(`Partner ${created.name} (${created.id}) added.`);
          rerender();
        },
        h("h2", { id: "add-partner" }, "Add a partner"),
        h(
          "div",
          { class: "grid" },
          field("Id", input("id", { required: true, pattern: "[a-z0-9][a-z0-9-]{1,62}", autocomplete: "off" }), "a-z, 0-9 and -"),
          field("Name", input("name", { required: true })),
          field("Category", select("category", CATEGORIES.map((c) => [c, c]), "shop")),
          field("Currency", input("currency", { required: true, maxlength: 3, placeholder: "EUR", autocomplete: "off", autocapitalize: "characters" }), "ISO 4217"),
          field("Hold days", input("hold_days", { inputmode: "numeric", value: "0", autocomplete: "off" })),
        ),
        h("button", { type: "submit" }, "Add partner"),
      )
    : null;
  return [
    heading("Partners"),
    table(
      [
        { label: "Id", value: (p) => link(`partner/${encodeURIComponent(p.id)}`, h("code", {}, p.id), { "aria-label": `Partner ${p.id}` }) },
        { label: "Name", value: (p) => p.name },
        { label: "Category", value: (p) => p.category },
        { label: "Currency", value: (p) => p.currency },
        { label: "Hold days", value: (p) => count(p.hold_days), numeric: true },
        { label: "Status", value: (p) => badge(p.status) },
        {
          label: "",
          value: (p) =>
            h(
              "span",
              { class: "actions" },
              link(route("rates", { partner_id: p.id }), "Rates"),
              kpisLink(who, p.id),
            ),
        },
      ],
      list,
    ),
    add,
  ];
}

// --- a partner ----------------------------------------------------------------------------

const PARTNER_FIELDS = ["name", "category", "currency", "hold_days", "status"];

export async function partner({ who, param, notify }) {
  if (!param) return [heading("Not found"), h("p", { class: "form-error", role: "alert" }, "Choose a partner on the Partners page: its page is at its id.")];
  const shown = await api.get(`/api/v1/partners/${encodeURIComponent(param)}`);
  const change = who.role === "operator"
    ? form(
        { class: "panel", "aria-labelledby": "change-partner" },
        async (data) => {
          const typed = withWholeNumbers(withCurrencyCodes(trimmed(data), "currency"), "hold_days");
          const body = changedFields(typed, shown, PARTNER_FIELDS);
          if (body.status === "suspended" && !window.confirm(`Suspend ${shown.name}? Its new transactions are refused until it is made active again.`)) return;
          const changed = await api.patch(`/api/v1/partners/${encodeURIComponent(shown.id)}`, body);
          notify(`Partner ${changed.name} (${changed.id}) changed: ${Object.keys(body).map((name) => `${name} ${changed[name]}`).join(", ")}.`);
          window.location.hash = `#/${route("partners")}`;
        },
        h("h2", { id: "change-partner" }, "Change this partner"),
        h(
          "div",
          { class: "grid" },
          field("Name", input("name", { required: true, value: shown.name })),
          field("Category", select("category", CATEGORIES.map((c) => [c, c]), shown.category)),
          field("Currency", input("currency", { required: true, maxlength: 3, value: shown.currency, autocomplete: "off", autocapitalize: "characters" }), "fixed once it has transactions"),
          field("Hold days", input("hold_days", { inputmode: "numeric", value: String(shown.hold_days), autocomplete: "off" })),
          field("Status", select("status", [["active", "active"], ["suspended", "suspended"]], shown.status), "a suspended partner's new transactions are refused"),
        ),
        h("button", { type: "submit" }, "Change partner"),
      )
    : null;
  return [
    heading(h("bdi", {}, shown.name), " ", badge(shown.status)),
    h("p", { class: "lead" }, h("code", {}, shown.id), ` · ${shown.category} · settles in ${shown.currency} · points on hold for ${count(shown.hold_days)} day${shown.hold_days === 1 ? "" : "s"}`),
    h(
      "p",
      { class: "actions" },
      link(route("rates", { partner_id: shown.id }), "Rates"),
      kpisLink(who, shown.id),
      // a key bound to a partner reads no record of changes
      who.own_partner ? null : link(route("changes", { subject: "partner", subject_id: shown.id }), "Changes"),
    ),
    change,
  ];
}

// --- rates --------------------------------------------------------------------------------

export async function rates({ who, query, notify, rerender }) {
  const partnerList = await api.get("/api/v1/partners");
  const current = query.current !== "0";
  const list = await api.get("/api/v1/rates", {
    kind: query.kind,
    partner_id: query.partner_id,
    currency: query.currency,
    at: current ? new Date().toISOString() : undefined,
  });
  const names = Object.fromEntries(partnerList.map((p) => [p.id, p.name]));
  const partnerOptions = partnerList.map((p) => [p.id, `${p.name} (${p.id})`]);
  const choice = form(
    { class: "filters", "aria-label": "Filter rates" },
    async (data) => {
      const chosen = withCurrencyCodes(trimmed(data), "currency");
      chosen.current = data.get("current") ? "1" : "0";
      window.location.hash = `#/${route("rates", chosen)}`;
    },
    field("Kind", select("kind", [["", "All kinds"], ...RATE_KINDS.map((k) => [k, k])], query.kind)),
    field("Partner", select("partner_id", [["", "All"], ...partnerOptions], query.partner_id)),
    // a daily fx rate per currency is thousands of versions a year: one currency's history
    field("Currency", input("currency", { maxlength: 3, autocomplete: "off", autocapitalize: "characters", value: query.currency ?? "" })),
    h("div", { class: "field check" }, h("input", { type: "checkbox", id: "current", name: "current", checked: current }), h("label", { for: "current" }, "Only versions in force now")),
    h("button", { type: "submit" }, "Show"),
  );
  let add = null;
  if (who.role === "operator") {
    // times in the coalition's zone, as its periods are: a start at its midnight starts a period.
    // Not read, the page is not shown: a form that guessed UTC would start a Tokyo rate 9 hours late.
    const zone = (await api.get("/api/v1/settings")).timezone;
    const hint = h("p", { class: "hint", id: "kind-hint" }, RATE_HINTS.earn);
    const kind = select("rate-kind", RATE_KINDS.map((k) => [k, k]), "earn", { name: "kind", "aria-describedby": "kind-hint" });
    kind.addEventListener("change", () => {
      hint.textContent = RATE_HINTS[kind.value];
    });
    add = form(
      { class: "panel", "aria-labelledby": "add-rate" },
      async (data, element) => {
        const body = withCurrencyCodes(trimmed(data), "currency");
        body.effective_from = rfc3339(body.effective_from, "Effective from", zone);
        if (body.effective_to) body.effective_to = rfc3339(body.effective_to, "Effective to", zone);
        const created = await api.post("/api/v1/rates", body);
        element.reset();
        const later = new Date(created.effective_from) > new Date() ? " It is not in force yet: untick “Only versions in force now” to list it." : "";
        notify(`Rate ${created.id} added: ${created.kind} ${created.value}${created.currency ? ` per ${created.currency}` : ""}${created.partner_id ? ` for ${created.partner_id}` : ""}, from ${wallClock(new Date(created.effective_from), zone).replace("T", " ")} ${zone}${zone === "UTC" ? "" : ` (${instant(created.effective_from)})`}.${later}`);
        rerender();
      },
      h("h2", { id: "add-rate" }, "Add a rate"),
      h("p", { class: "hint" }, "Rates are append-only versions: a new version replaces the one in force from its start. A start inside a closed period is refused."),
      h(
        "div",
        { class: "grid" },
        field("Kind", kind),
        field("Value", input("rate-value", { name: "value", required: true, inputmode: "decimal", autocomplete: "off", placeholder: "0.01" })),
        field("Partner", select("rate-partner", [["", "Coalition-wide"], ...partnerOptions], "", { name: "partner_id" })),
        field("Category", input("rate-category", { name: "category", autocomplete: "off" }), "earn and promo only"),
        field("Currency", input("rate-currency", { name: "currency", maxlength: 3, autocomplete: "off", autocapitalize: "characters" }), "fx only"),
        field("Minimum amount", input("rate-min", { name: "min_amount", inputmode: "decimal", autocomplete: "off" }), "threshold only"),
        field("Effective from", input("rate-from", { name: "effective_from", type: "datetime-local", required: true, value: wallClock(new Date(), zone) }), `in ${zone}, the coalition's time zone`),
        field("Effective to", input("rate-to", { name: "effective_to", type: "datetime-local" }), `in ${zone}; optional, required for a promo`),
      ),
      hint,
      h("button", { type: "submit" }, "Add rate"),
    );
  }
  return [
    heading("Rates"),
    choice,
    table(
      [
        { label: "Id", value: (r) => r.id, numeric: true },
        { label: "Kind", value: (r) => r.kind },
        { label: "Value", value: (r) => r.value, numeric: true },
        { label: "Partner", value: (r) => (r.partner_id ? names[r.partner_id] ?? r.partner_id : "coalition-wide") },
        { label: "Category", value: (r) => r.category ?? DASH },
        { label: "Currency", value: (r) => r.currency ?? DASH },
        { label: "Min amount", value: (r) => r.min_amount ?? DASH, numeric: true },
        { label: "From", value: (r) => instant(r.effective_from) },
        { label: "To", value: (r) => instant(r.effective_to) },
      ],
      list.slice().reverse(),
      { empty: "No rates for this choice." },
    ),
    add,
  ];
}

// --- members ------------------------------------------------------------------------------

export async function members({ param, who }) {
  const lookup = form(
    { class: "filters", role: "search", "aria-label": "Find a member" },
    async (data) => {
      const id = String(data.get("member") || "").trim();
      if (!id) throw new Error("Enter a member id.");
      window.location.hash = `#/members/${encodeURIComponent(id)}`;
    },
    field("Member id", input("member", { required: true, value: param ?? "", autocomplete: "off", placeholder: "card-0042" })),
    h("button", { type: "submit" }, "Look up"),
  );
  const out = [heading("Members"), lookup];
  if (!param) {
    out.push(h("p", { class: "hint" }, "A member's balance, the points expiring soon and every movement of points."));
    return out;
  }
  const path = `/api/v1/members/${encodeURIComponent(param)}`;
  let balance;
  let history;
  try {
    [balance, history] = await Promise.all([api.get(`${path}/balance`), api.newest(`${path}/history`)]);
  } catch (error) {
    if (!(error instanceof api.ApiError) || error.status !== 404) throw error;
    out.push(h("p", { class: "form-error", role: "alert" }, error.message));
    return out;
  }
  out.push(
    h("h2", {}, `Member ${balance.member_id}`),
    cards([
      ["Available", count(balance.available)],
      ["Pending", count(balance.pending), "held, not yet spendable"],
      ["Lifetime earned", count(balance.lifetime_earned)],
      ["Lifetime burned", count(balance.lifetime_burned)],
    ]),
    h("p", { class: "hint" }, `As of ${instant(balance.as_of)}.`),
    h("h3", {}, "Expiring in the next 90 days"),
    table(
      [
        { label: "Points", value: (e) => count(e.points), numeric: true },
        { label: "Expires", value: (e) => instant(e.expires_at) },
      ],
      balance.expiring,
      { empty: "Nothing expires in the next 90 days." },
    ),
    h("h3", {}, "History"),
    who.own_partner ? h("p", { class: "hint" }, "Only your own partner's movements are shown.") : null,
    table(
      [
        { label: "When", value: (m) => instant(m.occurred_at) },
        { label: "Type", value: (m) => m.type },
        { label: "Partner", value: (m) => m.partner_id },
        { label: "External id", value: (m) => m.external_id },
        { label: "Reason", value: (m) => m.reason },
        { label: "Points", value: (m) => signed(m.points), numeric: true },
        { label: "Shortfall", value: (m) => (m.shortfall_points ? count(m.shortfall_points) : DASH), numeric: true },
        { label: "Lots", value: (m) => lotsText(m.lots) },
      ],
      history.items,
      { empty: "No movements visible to this key." },
    ),
    history.more ? h("p", { class: "hint" }, `Showing the newest ${count(api.NEWEST)} movements.`) : null,
  );
  return out;
}

// --- transactions -------------------------------------------------------------------------

// the types of coalition/domain/lots.py (TYPES)
const TRANSACTION_TYPES = ["earn", "bonus", "burn", "earn_reversal", "burn_reversal", "expiry"];

/** Lots points moved into or out of: a member's history lists them, a transaction has its
 * own lot (an earn, a bonus) or its allocations. */
function lotsText(lots) {
  return lots.map((l) => `#${l.lot_id} ${l.issuer_id} ${count(l.points)}`).join(", ") || DASH;
}

function lotsMoved(t) {
  return lotsText(t.lot_id === null ? t.allocations : [{ lot_id: t.lot_id, issuer_id: t.partner_id, points: t.points }]);
}

/** Choices for a filter, the one the address names first when it is not among them, so
 * that the page shows what it filters by. */
function choicesWith(chosen, options) {
  return chosen && !options.some(([value]) => value === chosen) ? [[chosen, chosen], ...options] : options;
}

export async function transactions({ who, query, notify }) {
  const bound = who.role === "partner" || Boolean(who.own_partner);
  const [periodList, partnerList, keyList] = await Promise.all([
    api.get("/api/v1/periods"),
    bound ? Promise.resolve([]) : api.get("/api/v1/partners"),
    bound ? Promise.resolve([]) : api.get("/api/v1/keys"),
  ]);
  const keyNames = Object.fromEntries(keyList.map((k) => [k.id, k.name]));
  const chosen = {
    period_id: query.period_id,
    partner_id: bound ? undefined : query.partner_id,
    type: query.type,
    member_id: query.member_id,
  };
  const read = await api.newest("/api/v1/transactions", chosen);
  const periodChoices = choicesWith(chosen.period_id, periodList.slice().reverse().map((p) => [p.id, p.id]));
  const partnerChoices = choicesWith(chosen.partner_id, partnerChoicesOf(partnerList));
  return [
    heading("Transactions"),
    h(
      "p",
      { class: "lead" },
      "Points transactions, newest first: what partners posted, with the key that posted each, and the expiries of lots past their date, each under the lot's issuer.",
      bound ? " A key bound to a partner sees that partner's only." : "",
    ),
    filters(
      "transactions",
      "Filter transactions",
      field("Period", select("period_id", [["", "All periods"], ...periodChoices], chosen.period_id)),
      bound ? null : field("Partner", select("partner_id", [["", "All partners"], ...partnerChoices], chosen.partner_id)),
      field("Type", select("type", [["", "All types"], ...TRANSACTION_TYPES.map((t) => [t, t])], chosen.type)),
      field("Member id", input("member_id", { value: chosen.member_id ?? "", autocomplete: "off", placeholder: "card-0042" })),
    ),
    h(
      "p",
      { class: "actions" },
      downloadButton(
        "CSV",
        "Download every transaction of this choice as CSV, in posting order, a row per points movement",
        route("/api/v1/transactions/csv", chosen),
        "transactions.csv",
        notify,
      ),
      h("span", { class: "hint" }, "Every transaction of this choice, in posting order, a row per points movement."),
    ),
    table(
      [
        { label: "When", value: (t) => instant(t.occurred_at) },
        { label: "Partner", value: (t) => t.partner_id },
        { label: "Type", value: (t) => t.type },
        { label: "Member", value: (t) => link(`members/${encodeURIComponent(t.member_id)}`, t.member_id) },
        { label: "External id", value: (t) => t.external_id },
        { label: "Amount", value: (t) => (t.amount === null ? DASH : money(t.amount, t.currency)), numeric: true },
        { label: "Points", value: (t) => signed(t.points), numeric: true },
        { label: "Period", value: (t) => (t.late ? [t.period_id, " ", badge("late")] : t.period_id) },
        { label: "Lots", value: lotsMoved },
        // none for what a command or job posted (coalition import, expiry, demo)
        { label: "Key", value: (t) => (t.key_id === null ? DASH : keyShown(t.key_id, keyNames)) },
      ],
      read.items,
      { empty: "No transactions for this choice." },
    ),
    read.more ? h("p", { class: "hint" }, `Showing the newest ${count(api.NEWEST)} transactions: the CSV holds them all.`) : null,
  ];
}

// --- KPIs ---------------------------------------------------------------------------------

const MEASURES = [
  ["Active members", (f) => count(f.active_members), "distinct members who earned or spent points"],
  ["New members", (f) => count(f.new_members), "first points ever in this period"],
  ["Purchases", (f) => count(f.purchases)],
  ["Purchase frequency", (f) => decimal(f.purchase_frequency), "purchases per purchasing member"],
  ["Sales", (f) => money(f.sales, f.currency)],
  ["Average purchase", (f) => money(f.average_purchase, f.currency)],
  ["Average purchase, members who spent points", (f) => money(f.average_purchase_with_points, f.currency)],
  ["Average purchase, members who did not", (f) => money(f.average_purchase_without_points, f.currency)],
  ["Visits earning points", (f) => percent(f.earn_share), "earns ÷ (earns + burns)"],
  ["Visits spending points", (f) => percent(f.burn_share), "burns ÷ (earns + burns)"],
  ["Points issued", (f) => count(f.points_issued)],
  ["Points redeemed", (f) => count(f.points_redeemed), "these points, spent anywhere"],
  ["Points expired", (f) => count(f.points_expired)],
  ["Redemption rate", (f) => percent(f.redemption_rate), "redeemed ÷ issued net of returns"],
  ["Breakage rate", (f) => percent(f.breakage_rate), "expired ÷ issued net of returns"],
  ["Points outstanding", (f) => count(f.liability_points), "at the period's end"],
];

// The report of the charts' periods last read, kept while the page stays on KPIs: another
// scope, or another period of the charts, is drawn from it without a request (at 400
// partners the report is megabytes and a second of the server's work). Opening the page
// from another, or "Read again", reads it anew.
let keptKpis = null;

export async function kpis({ who, query, staying, rerender }) {
  if (!staying || keptKpis?.keyId !== who.key_id) {
    keptKpis = { keyId: who.key_id, readAt: new Date().toISOString(), report: await api.get("/api/v1/kpis", { periods: 12 }) };
  }
  const { report, readAt } = keptKpis;
  const base = report.base_currency;
  const series = report.periods;
  if (!series.length) return [heading("KPIs"), h("p", { class: "empty" }, "No periods yet.")];
  // the Periods page links every period here; one older than the charts' is read on its own
  const older = query.period && !series.some((p) => p.period_id === query.period);
  const selected = older
    ? (await api.get("/api/v1/kpis", { period_id: query.period })).periods[0]
    : series.find((p) => p.period_id === query.period) ?? series.at(-1);
  const offered = older ? [selected, ...series] : series;
  const partnerIds = selected.partners.map((p) => p.partner_id);
  const scope = who.own_partner ?? (partnerIds.includes(query.scope) ? query.scope : "");
  const pick = (period) => (scope ? period.partners.find((p) => p.partner_id === scope) : period.coalition);
  const chosen = pick(selected);
  const label = namer(selected.partners);
  const scopeName = scope ? label(chosen) : "Coalition-wide";
  const controls = filters(
    "kpis",
    "Choose period and scope",
    field("Period", select("period", offered.map((p) => [p.period_id, `${p.period_id} (${p.status})`]).reverse(), selected.period_id)),
    who.own_partner
      ? h("p", { class: "hint" }, `This key is bound to ${chosen.name}: it sees that partner's figures only, not the coalition's totals.`)
      : field("Scope", select("scope", [["", "Coalition-wide"], ...selected.partners.map((p) => [p.partner_id, label(p)])], scope)),
  );
  const columnsOf = [scope ? [scopeName, chosen] : null, selected.coalition ? ["Coalition-wide", selected.coalition] : null].filter(Boolean);
  const measureRows = [...MEASURES, ["Liability", (f) => money(f.liability, base), "outstanding points × redemption rate"]];
  const comparison = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "kpi-table" },
      h(
        "caption",
        {},
        `Period ${selected.period_id} (${selected.status})`,
        // a month of millions of transactions is counted at most hourly (docs/console.md)
        selected.counted_at ? h("small", {}, `Members, purchases, sales and redemptions (and the charts' figures of them) as counted at ${instant(selected.counted_at)}; points as of now.`) : null,
      ),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Measure"), columnsOf.map(([label]) => h("th", { scope: "col", class: "num" }, label)))),
      h(
        "tbody",
        {},
        measureRows.map(([label, show, note]) =>
          h("tr", {}, h("th", { scope: "row" }, label, note ? h("small", {}, note) : null), columnsOf.map(([, figures]) => h("td", { class: "num" }, show(figures)))),
        ),
      ),
    ),
  );
  const labels = series.map((p) => p.period_id);
  const over = series.map(pick);
  const pickSeries = (name, key, show) => ({ name, values: over.map((f) => (f ? f[key] : null)), texts: over.map((f) => (f ? show(f[key], f) : DASH)) });
  const currency = chosen.currency;
  const charted = [
    charts.columns(`Members — ${scopeName}`, labels, [
      pickSeries("Active members", "active_members", (v) => count(v)),
      pickSeries("New members", "new_members", (v) => count(v)),
    ], { kind: "count" }),
    charts.lines(`Average purchase (${currency}) — ${scopeName}`, labels, [
      pickSeries("All purchases", "average_purchase", (v, f) => money(v, f.currency)),
      pickSeries("Members who spent points", "average_purchase_with_points", (v, f) => money(v, f.currency)),
      pickSeries("Members who did not", "average_purchase_without_points", (v, f) => money(v, f.currency)),
    ]),
    charts.lines(`Redemption and breakage rate — ${scopeName}`, labels, [
      pickSeries("Redemption rate", "redemption_rate", (v) => percent(v)),
      pickSeries("Breakage rate", "breakage_rate", (v) => percent(v)),
    ], { kind: "percent" }),
    charts.lines(`Liability (${base}) — ${scopeName}`, labels, [
      pickSeries("Liability", "liability", (v) => money(v, base)),
    ]),
  ];
  const everyone = !who.own_partner && selected.partners.length > 1
    ? [
        h("h2", {}, `Partners in ${selected.period_id}`),
        table(
          [
            { label: "Partner", value: (p) => link(route("kpis", { period: selected.period_id, scope: p.partner_id }), label(p)) },
            { label: "Active", value: (p) => count(p.active_members), numeric: true },
            { label: "New", value: (p) => count(p.new_members), numeric: true },
            { label: "Purchases", value: (p) => count(p.purchases), numeric: true },
            { label: "Average purchase", value: (p) => money(p.average_purchase, p.currency), numeric: true },
            { label: "Redemption rate", value: (p) => percent(p.redemption_rate), numeric: true },
            { label: "Breakage rate", value: (p) => percent(p.breakage_rate), numeric: true },
            { label: `Liability (${base})`, value: (p) => decimal(p.liability), numeric: true },
          ],
          selected.partners,
        ),
      ]
    : [];
  return [
    heading("KPIs"),
    h("p", { class: "lead" }, "Programme measures per settlement period. A period counts the transactions that belong to it, as its settlement does, so a closed period's figures never change."),
    controls,
    h(
      "p",
      { class: "hint" },
      `Figures as read at ${instant(readAt)}; choosing another ${who.own_partner ? "period" : "scope or period"} shows them without reading them again. `,
      h("button", { type: "button", class: "small", onclick: () => { keptKpis = null; rerender(); } }, "Read again"),
    ),
    cards([
      ["Active members", count(chosen.active_members)],
      ["Average purchase", money(chosen.average_purchase, chosen.currency)],
      ["Redemption rate", percent(chosen.redemption_rate)],
      ["Liability", money(chosen.liability, base), `${count(chosen.liability_points)} points outstanding`],
    ]),
    comparison,
    h("h2", {}, "Over time"),
    h("div", { class: "charts" }, charted),
    ...everyone,
  ];
}

// --- keys ---------------------------------------------------------------------------------

const ROLES = ["operator", "finance", "partner"];
const ROLE_HINTS = {
  operator: "Everything: configuration, closing periods, keys. Never bound to a partner.",
  finance: "Reads everything; bound to a partner, only that partner's transactions and statements.",
  partner: "One partner's tills and apps: posts its transactions, reads its statements and members' balances. Needs a partner.",
};

/** The key a create answered with, in the one place it is ever shown; "Done" takes it off the page. */
function newKey(created, done) {
  return h(
    "section",
    { class: "panel secret", "aria-labelledby": "new-key-title" },
    h("h2", { id: "new-key-title", tabindex: "-1" }, `Store the new key ${created.id} now`),
    h("p", {}, "It is shown this once: the service keeps only its hash, and this page forgets it when you leave. Copy it to where it will be used (a till's settings, a password manager); a lost key cannot be shown again, only revoked and replaced."),
    field("New key", h("input", { id: "new-key", readonly: true, value: created.key, autocomplete: "off", spellcheck: "false", onfocus: (event) => event.target.select() })),
    h("button", { type: "button", onclick: done }, "Done: I have stored it"),
  );
}

// --- settings -----------------------------------------------------------------------------

const SETTINGS = [
  ["base_currency", "Base currency", "the clearing house settles in it; fixed once the ledger has started"],
  ["timezone", "Time zone", "periods run from one local midnight to another; fixed once the ledger has started"],
  ["period", "Period", "monthly, weekly (ISO weeks) or daily; fixed once the ledger has started"],
  ["points_ttl_days", "Points expire after (days)", "counted from each lot's purchase"],
  ["max_backdate_days", "Backdating allowed (days)", "an older occurred_at is refused"],
  ["auto_close_after_hours", "Auto-close after (hours)", "the scheduler closes a period this long after its end"],
];
const WHOLE_SETTINGS = ["points_ttl_days", "max_backdate_days", "auto_close_after_hours"];

/**
 * The browser's IANA zone names, offered while typing the time zone; the API decides what it
 * takes. None from a browser that cannot list them (before Chrome 99, Firefox 93, Safari 15.4).
 */
function timezoneNames() {
  const zones = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
  return h("datalist", { id: "timezone-names" }, zones.map((zone) => h("option", { value: zone })));
}

export async function settings({ who, notify, rerender }) {
  const shown = await api.get("/api/v1/settings");
  const control = (name) => {
    if (name === "period") return select(name, [["monthly", "monthly"], ["weekly", "weekly"], ["daily", "daily"]], shown.period);
    if (name === "timezone") return input(name, { required: true, value: shown.timezone, autocomplete: "off", spellcheck: "false", list: "timezone-names" });
    const attributes = WHOLE_SETTINGS.includes(name) ? { inputmode: "numeric" } : {};
    return input(name, { required: true, value: String(shown[name]), autocomplete: "off", ...attributes });
  };
  const change = who.role === "operator"
    ? form(
        { class: "panel", "aria-labelledby": "change-settings" },
        async (data) => {
          const typed = withWholeNumbers(withCurrencyCodes(trimmed(data), "base_currency"), ...WHOLE_SETTINGS);
          const body = changedFields(typed, shown, SETTINGS.map(([name]) => name));
          const changed = await api.put("/api/v1/settings", body);
          notify(`Settings changed: ${Object.keys(body).map((name) => `${name} ${shown[name]} → ${changed[name]}`).join(", ")}.`);
          rerender();
        },
        h("h2", { id: "change-settings" }, "Change the settings"),
        h("div", { class: "grid" }, SETTINGS.map(([name, label, hint]) => field(label, control(name), hint))),
        timezoneNames(),
        h("button", { type: "submit" }, "Change settings"),
      )
    : null;
  return [
    heading("Settings"),
    h("p", { class: "lead" }, "The programme's calendar, its settlement currency and the ledger's time limits."),
    table(
      [
        { label: "Setting", value: ([, label]) => label },
        { label: "Value", value: ([name]) => h("code", {}, String(shown[name])) },
        { label: "Means", value: ([, , hint]) => hint },
      ],
      SETTINGS,
    ),
    change,
  ];
}

export async function keys({ who, query, notify }) {
  const chosen = { partner_id: query.partner_id, role: query.role, status: query.status };
  const [partnerList, list] = await Promise.all([api.get("/api/v1/partners"), api.get("/api/v1/keys", chosen)]);
  const names = Object.fromEntries(partnerList.map((p) => [p.id, p.name]));
  const partnerOptions = partnerList.map((p) => [p.id, `${p.name} (${p.id})`]);
  const operator = who.role === "operator";
  const title = heading("Keys");
  const listing = h("div", {});
  const shown = h("div", {});
  const refresh = async () => {
    try {
      listing.replaceChildren(draw(await api.get("/api/v1/keys", chosen)));
    } catch (error) {
      if (error.status !== 401) notify(error.message, "error"); // a refused key has signed out already, saying why
    }
  };
  const revoke = async (key) => {
    const own = key.id === who.key_id ? " It is the key this console is signed in with: you will be signed out." : "";
    if (!window.confirm(`Revoke ${key.id}${key.name ? ` (${key.name})` : ""}? Whatever uses it is refused from now on; this cannot be undone.${own}`)) return;
    try {
      await api.remove(`/api/v1/keys/${encodeURIComponent(key.id)}`);
    } catch (error) {
      if (error.status !== 401) notify(error.message, "error");
      return;
    }
    notify(`Key ${key.id} is revoked.`);
    await refresh();
    title.focus();
  };
  const draw = (rows) =>
    table(
      [
        { label: "Id", value: (k) => h("span", {}, h("code", {}, k.id), k.id === who.key_id ? h("small", { class: "id" }, "this console's key") : null) },
        { label: "Role", value: (k) => k.role },
        { label: "Partner", value: (k) => (k.partner_id ? names[k.partner_id] ?? k.partner_id : DASH) },
        { label: "Name", value: (k) => k.name ?? DASH },
        { label: "Created", value: (k) => instant(k.created_at) },
        { label: "Status", value: (k) => (k.revoked_at ? h("span", {}, badge("revoked"), " ", instant(k.revoked_at)) : badge("active")) },
        ...(operator
          ? [{
              label: "",
              value: (k) => (k.revoked_at ? null : h("button", { type: "button", class: "small", "aria-label": `Revoke key ${k.id}`, onclick: () => revoke(k) }, "Revoke…")),
            }]
          : []),
      ],
      rows.slice().reverse(),
      { empty: "No keys for this choice." },
    );
  listing.append(draw(list));
  let add = null;
  if (operator) {
    const hint = h("p", { class: "hint", id: "key-role-hint" });
    const role = select("key-role", ROLES.map((r) => [r, r]), "partner", { name: "role", "aria-describedby": "key-role-hint" });
    const partner = select("key-partner", [["", "None"], ...partnerOptions], "", { name: "partner_id" });
    const fit = () => {
      hint.textContent = ROLE_HINTS[role.value];
      partner.disabled = role.value === "operator"; // and so not sent
    };
    role.addEventListener("change", fit);
    fit();
    add = form(
      { class: "panel", "aria-labelledby": "add-key" },
      async (data, element) => {
        const created = await api.post("/api/v1/keys", trimmed(data));
        element.reset();
        fit();
        shown.replaceChildren(newKey(created, () => {
          shown.replaceChildren();
          title.focus();
        }));
        shown.querySelector("h2").focus();
        await refresh();
      },
      h("h2", { id: "add-key" }, "Create a key"),
      h("p", { class: "hint" }, "Name a key for what will use it (a till, a team), so that the one to revoke can be found later."),
      h(
        "div",
        { class: "grid" },
        field("Role", role),
        field("Partner", partner, "needed for a partner key; a finance key bound to one reads only its figures"),
        field("Name", input("key-name", { name: "name", autocomplete: "off", placeholder: "till 7" }), "optional"),
      ),
      hint,
      h("button", { type: "submit" }, "Create key"),
    );
  }
  return [
    title,
    h(
      "p",
      { class: "lead" },
      "API keys, newest first: what each is for and whether it still works. A key itself is shown once, when it is created; the service keeps only its hash.",
      operator ? "" : " Only the operator creates and revokes keys.",
    ),
    filters(
      "keys",
      "Filter keys",
      field("Partner", select("partner_id", [["", "All"], ...partnerOptions], query.partner_id)),
      field("Role", select("role", [["", "All roles"], ...ROLES.map((r) => [r, r])], query.role)),
      field("Status", select("status", [["", "Active and revoked"], ["active", "Active"], ["revoked", "Revoked"]], query.status)),
    ),
    listing,
    shown,
    add,
  ];
}

// --- changes ------------------------------------------------------------------------------

const SUBJECTS = ["settings", "partner", "rate", "key", "period"];
const MADE_BY = { cli: "command line", scheduler: "scheduler", system: "system" };
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** A key by its name beside its id; its id alone where it has no name, or where this
 * console's key may not list keys (a key bound to a partner). */
function keyShown(keyId, keyNames) {
  const name = keyNames[keyId];
  return name ? h("span", {}, name, h("small", { class: "id" }, keyId)) : h("code", {}, keyId);
}

/** Who made a change: a key, else how it was made. */
function author(change, keyNames) {
  if (change.via !== "api") return MADE_BY[change.via] ?? change.via;
  return keyShown(change.key_id, keyNames);
}

/** What was changed, linked to the page that shows it where the console has one. */
function subjectOf(change) {
  const id = change.subject_id;
  const page = { settings: "settings", partner: `partner/${encodeURIComponent(id)}`, rate: route("rates", { current: "0" }), key: "keys", period: `settlement/${id}` }[change.subject];
  const text = change.subject === "settings" ? "settings" : `${change.subject} ${id}`;
  return page ? link(page, text) : text;
}

function valueOf(value) {
  if (value === null || value === undefined) return DASH;
  if (typeof value === "string" && RFC3339.test(value)) return instant(value);
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** "name: Gym → Gym One" for each field an update changed; "name: Gym" for each a create set. */
function fieldsOf(change) {
  const paired = change.action === "update" || change.action === "revoke";
  const lines = Object.entries(change.fields)
    .filter(([, value]) => paired || value !== null)
    .map(([name, value]) => (paired ? `${name}: ${valueOf(value[0])} → ${valueOf(value[1])}` : `${name}: ${valueOf(value)}`));
  return lines.length ? h("ul", { class: "fields" }, lines.map((line) => h("li", {}, line))) : DASH;
}

export async function changes({ query }) {
  const chosen = { subject: query.subject, subject_id: query.subject_id, via: query.via };
  const [read, keyList] = await Promise.all([
    api.newest("/api/v1/changes", chosen),
    api.get("/api/v1/keys"),
  ]);
  const keyNames = Object.fromEntries(keyList.map((k) => [k.id, k.name]));
  return [
    heading("Changes"),
    h(
      "p",
      { class: "lead" },
      "Who changed the settings, partners, rates and keys, and who closed each period, newest first: a key, by its name, or the command line, the scheduler or the system. An update shows each field it changed as before → after; a creation, the fields it set.",
    ),
    filters(
      "changes",
      "Filter changes",
      field("Subject", select("subject", [["", "All subjects"], ...SUBJECTS.map((name) => [name, name])], query.subject)),
      field(
        "Id",
        input("subject_id", { value: query.subject_id ?? "", autocomplete: "off", placeholder: "aroma", "aria-describedby": "subject_id-hint" }),
        "a partner's or key's id, a rate's number, a period",
      ),
      field("Made by", select("via", [["", "Anyone"], ["api", "a key"], ...Object.entries(MADE_BY)], query.via)),
    ),
    table(
      [
        { label: "When", value: (c) => instant(c.at) },
        { label: "Who", value: (c) => author(c, keyNames) },
        { label: "What", value: subjectOf },
        { label: "Action", value: (c) => c.action },
        { label: "Fields", value: fieldsOf },
      ],
      read.items,
      { empty: "No changes for this choice." },
    ),
    read.more
      ? h("p", { class: "hint" }, `Showing the newest ${count(api.NEWEST)} changes: choose a subject, an id or who made them for older ones.`)
      : null,
  ];
}
