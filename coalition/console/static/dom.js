// Building DOM without innerHTML (every text goes in as text), and formatting
// the API's figures for reading. Formatting only: amounts arrive as exact decimal
// strings and are shown digit for digit, never recomputed here.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  apply(element, attributes);
  element.append(...nodes(children));
  return element;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  apply(element, attributes);
  element.append(...nodes(children));
  return element;
}

function apply(element, attributes) {
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "class") element.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (name === "value" && "value" in element) element.value = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
}

function nodes(children) {
  const out = [];
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    out.push(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return out;
}

export const DASH = "—";
const MINUS = "\u2212";

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A decimal string with thousands separators and a typographic minus: "-1234.50" → "−1,234.50". */
export function decimal(text) {
  if (text === null || text === undefined) return DASH;
  const value = String(text);
  const negative = value.startsWith("-");
  const [whole, fraction] = (negative ? value.slice(1) : value).split(".");
  return (negative ? MINUS : "") + group(whole) + (fraction !== undefined ? `.${fraction}` : "");
}

/** An amount string with its currency: "83.25", "EUR" → "83.25 EUR". */
export function money(text, currency) {
  if (text === null || text === undefined) return DASH;
  return currency ? `${decimal(text)} ${currency}` : decimal(text);
}

/** Whole numbers (points, counts). */
export function count(value) {
  if (value === null || value === undefined) return DASH;
  return decimal(String(value));
}

/** Signed points: "+120", "−30". */
export function signed(value) {
  if (value === null || value === undefined) return DASH;
  return value > 0 ? `+${count(value)}` : count(value);
}

/** A ratio string as a percentage by moving the decimal point: "0.8996" → "89.96 %". */
export function percent(text) {
  if (text === null || text === undefined) return DASH;
  const value = String(text);
  const negative = value.startsWith("-");
  const [whole, fraction = ""] = (negative ? value.slice(1) : value).split(".");
  const padded = fraction.padEnd(2, "0");
  const shifted = `${whole}${padded.slice(0, 2)}`.replace(/^0+(?=\d)/, "");
  const rest = padded.slice(2);
  return `${negative ? MINUS : ""}${group(shifted)}${rest ? `.${rest}` : ""} %`;
}

/** An RFC 3339 instant as "2026-10-31 21:00 UTC". */
export function instant(text) {
  if (!text) return DASH;
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** The wall-clock time of ``date`` in ``zone``, as a datetime-local input writes it: "2026-11-01T00:00". */
export function wallClock(date, zone) {
  const format = new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  });
  const part = Object.fromEntries(format.formatToParts(date).map(({ type, value }) => [type, value]));
  return `${part.year}-${part.month}-${part.day}T${part.hour}:${part.minute}`;
}

/**
 * The instant a datetime-local value ("2026-11-01T00:00") names in ``zone``, the coalition's
 * (SPEC §3: its periods begin at its midnights), whatever the browser's; null for another
 * text. Read as the service reads a local midnight (Python's zoneinfo, fold 0): at the
 * offset of a day before and of a day after, the earlier instant whose wall clock it is;
 * a time the clocks skip at the offset before the change, so "00:00" on a night the clocks
 * go from 00:00 to 01:00 is 01:00, where its day's period begins.
 */
export function atWallClock(value, zone) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!match) return null;
  const [year, month, day, hour, minute, second] = match.slice(1).map((part) => Number(part ?? 0));
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  const offset = (at) => Date.parse(`${wallClock(new Date(at), zone)}:00Z`) - at;
  const DAY = 86_400_000;
  const [before, after] = [wall - offset(wall - DAY), wall - offset(wall + DAY)];
  const named = [before, after].filter((at) => at + offset(at) === wall);
  return new Date((named.length ? Math.min(...named) : before) + second * 1000);
}

function localDay(date, zone) {
  // "1 November 2026": the day as the statement PDF prints it (babel's "d MMMM y", English)
  return new Intl.DateTimeFormat("en-GB", { timeZone: zone, day: "numeric", month: "long", year: "numeric" }).format(date);
}

function midnight(date) {
  return date.getUTCHours() === 0 && date.getUTCMinutes() === 0 && date.getUTCSeconds() === 0 && date.getUTCMilliseconds() === 0;
}

/**
 * A period as the days it covers, as its statement's PDF shows it (reports/written.py, period_dates):
 * "1 November 2026 – 30 November 2026 (Europe/Moscow)"; a daily period is one day. The
 * bounds are UTC instants and the end is exclusive, so the last day is the one holding
 * the instant before it, in the coalition's time zone `zone`, named unless it is UTC
 * (or `named` is false, where the page names it once). Without a zone, bounds at UTC
 * midnights are UTC days, and other bounds the instants they are.
 */
export function periodDays(start, end, zone, { named = true } = {}) {
  const first = new Date(start);
  const after = new Date(end);
  const instants = `${instant(start)} – ${instant(end)}`;
  if (Number.isNaN(first.getTime()) || Number.isNaN(after.getTime())) return instants;
  if (!zone && !(midnight(first) && midnight(after))) return instants;
  let firstDay;
  let lastDay;
  try {
    firstDay = localDay(first, zone || "UTC");
    lastDay = localDay(new Date(after.getTime() - 1), zone || "UTC");
  } catch {
    return instants; // a zone this browser does not know
  }
  const days = firstDay === lastDay ? firstDay : `${firstDay} – ${lastDay}`;
  return named && zone && zone !== "UTC" ? `${days} (${zone})` : days;
}

/** A table; `columns` are {label, value(row) → node|text, numeric?}. */
export function table(columns, rows, { caption, empty = "Nothing to show.", rowClass } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.numeric ? "num" : null }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            { class: rowClass ? rowClass(row) : null },
            columns.map((c) => h("td", { class: c.numeric ? "num" : null }, c.value(row))),
          ),
        ),
      ),
    ),
  );
}

/** Label/value cards for headline figures. */
export function cards(items) {
  return h(
    "dl",
    { class: "cards" },
    items.map(([label, value, note]) =>
      h("div", { class: "card" }, h("dt", {}, label), h("dd", {}, value), note ? h("dd", { class: "note" }, note) : null),
    ),
  );
}

export function badge(status) {
  return h("span", { class: ["badge", `badge-${status}`] }, status);
}

/** A labelled form control; `control` is an input/select element with an id. */
export function field(label, control, hint) {
  const id = control.id;
  // a screen reader reads the hint with the control, as a sighted user sees it under it
  if (hint) control.setAttribute("aria-describedby", `${id}-hint`);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("small", { id: `${id}-hint` }, hint) : null,
  );
}

export function select(id, options, selected, attributes = {}) {
  return h(
    "select",
    { id, name: id, ...attributes },
    options.map(([value, label]) => h("option", { value, selected: String(value) === String(selected ?? "") }, label)),
  );
}
