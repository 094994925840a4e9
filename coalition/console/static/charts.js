// Charts drawn as inline SVG. Figures come from the API as decimal strings; they
// are turned into numbers only to place marks on the canvas, and every label and
// tooltip shows the API's own string.

import { h, s } from "./dom.js";

export const COLOURS = ["#1d4ed8", "#c2410c", "#0f766e", "#7e22ce", "#a16207"];
const POSITIVE = "#15803d";
const NEGATIVE = "#b91c1c";
const WIDTH = 760; // the net-position bars
const SMALL = 560; // charts drawn two to a row
const LABEL_SIZE = 12; // px, .svg-chart .bar-label in console.css

let uid = 0;

function figure(title, description, svg, legend) {
  const id = `chart-${++uid}`;
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-labelledby", `${id}-title`);
  svg.prepend(s("title", { id: `${id}-title` }, description || title));
  return h("figure", { class: "chart" }, h("figcaption", {}, title), svg, legend || null);
}

function legendOf(series) {
  return h(
    "ul",
    { class: "legend" },
    series.map((item, index) =>
      h("li", {}, h("span", { class: `swatch swatch-${index}`, "aria-hidden": "true" }), item.name),
    ),
  );
}

function toNumber(text) {
  if (text === null || text === undefined) return null;
  const value = Number.parseFloat(text);
  return Number.isFinite(value) ? value : null;
}

/** Round axis steps: 1, 2 or 5 × 10^n, about four of them. */
function ticks(low, high, whole = false, count = 4) {
  if (high === low) high = low + 1;
  const raw = Math.max((high - low) / count, whole ? 1 : 0);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= raw);
  const first = Math.floor(low / step) * step;
  const out = [];
  for (let tick = first; tick <= high + step * 1e-9; tick += step) out.push(Number(tick.toPrecision(12)));
  if (out[out.length - 1] < high) out.push(out[out.length - 1] + step);
  return out;
}

function axisLabel(value, kind) {
  if (kind === "percent") return `${Number((value * 100).toPrecision(6))} %`;
  if (Math.abs(value) >= 1e6) return `${Number((value / 1e6).toPrecision(4))}M`;
  if (Math.abs(value) >= 1e3) return `${Number((value / 1e3).toPrecision(4))}k`;
  return String(Number(value.toPrecision(6)));
}

/**
 * Horizontal bars either side of zero: one per item, e.g. each partner's net position.
 * items: [{label, value: "83.25", text: "83.25 EUR"}].
 */
export function divergingBars(title, items, { description, positive = "receives", negative = "pays" } = {}) {
  const rowHeight = 30;
  const labelWidth = 200;
  const margin = 96;
  const top = 28;
  const height = top + items.length * rowHeight + 12;
  const plot = WIDTH - labelWidth - 16;
  const centre = labelWidth + plot / 2;
  const half = plot / 2 - margin;
  const largest = Math.max(...items.map((item) => Math.abs(toNumber(item.value) || 0)), 0) || 1;
  const svg = s(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${height}`, class: "svg-chart wide", preserveAspectRatio: "xMinYMin meet" },
    s("text", { x: centre - 8, y: 16, "text-anchor": "end", class: "axis-note" }, `← ${negative}`),
    s("text", { x: centre + 8, y: 16, class: "axis-note" }, `${positive} →`),
    items.map((item, index) => {
      const value = toNumber(item.value) || 0;
      const length = (Math.abs(value) / largest) * half;
      const y = top + index * rowHeight;
      const x = value < 0 ? centre - length : centre;
      const colour = value < 0 ? NEGATIVE : POSITIVE;
      const textX = value < 0 ? x - 6 : centre + length + 6;
      return s(
        "g",
        { class: "bar" },
        s("title", {}, `${item.label}: ${item.text}`),
        s("text", { x: labelWidth - 10, y: y + rowHeight / 2 + 4, "text-anchor": "end", class: "bar-label" }, fit(item.label, labelWidth - 14, LABEL_SIZE)),
        s("rect", { x, y: y + 5, width: Math.max(length, 1), height: rowHeight - 10, fill: colour, rx: 2 }),
        s(
          "text",
          { x: textX, y: y + rowHeight / 2 + 4, "text-anchor": value < 0 ? "end" : "start", class: "bar-value" },
          item.text,
        ),
      );
    }),
    s("line", { x1: centre, x2: centre, y1: top - 4, y2: height - 8, class: "zero" }),
  );
  return figure(title, description, svg);
}

let measure = null;

/** The width of `text` in the charts' font at `size` px: the viewBox's units, which the text is set in. */
function widthOf(text, size) {
  if (!measure) measure = document.createElement("canvas").getContext("2d");
  // .svg-chart text inherits the page's font (console.css); a chart is measured before it is shown
  measure.font = `${size}px ${getComputedStyle(document.documentElement).fontFamily}`;
  return measure.measureText(text).width;
}

/**
 * The text, or as much of its beginning as fits `width` followed by an ellipsis. Cut by
 * measured width, not by characters: 28 Cyrillic letters are wider than 28 Latin ones,
 * and an end-anchored label too wide for its area loses its beginning off the edge.
 */
function fit(text, width, size) {
  if (widthOf(text, size) <= width) return text;
  const characters = Array.from(text); // whole code points: never half a surrogate pair
  const cut = (length) => `${characters.slice(0, length).join("").trimEnd()}…`;
  let low = 0;
  let high = characters.length - 1;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (widthOf(cut(middle), size) <= width) low = middle;
    else high = middle - 1;
  }
  return cut(low);
}

function frame(labels, series, kind, height) {
  const WIDTH = SMALL;
  const margin = { left: 56, right: 12, top: 12, bottom: 30 };
  const values = series.flatMap((item) => item.values.map(toNumber)).filter((value) => value !== null);
  const low = Math.min(0, ...values);
  const high = Math.max(0, ...values);
  const steps = ticks(low, high === low ? low + 1 : high, kind === "count");
  const bottom = steps[0];
  const topValue = steps[steps.length - 1];
  const plotWidth = WIDTH - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const y = (value) => margin.top + plotHeight - ((value - bottom) / (topValue - bottom)) * plotHeight;
  const band = plotWidth / Math.max(labels.length, 1);
  const x = (index) => margin.left + band * index + band / 2;
  const grid = steps.map((tick) =>
    s(
      "g",
      {},
      s("line", { x1: margin.left, x2: WIDTH - margin.right, y1: y(tick), y2: y(tick), class: tick === 0 ? "zero" : "grid" }),
      s("text", { x: margin.left - 8, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, axisLabel(tick, kind)),
    ),
  );
  const every = Math.ceil(labels.length / 8);
  const xLabels = labels.map((label, index) =>
    index % every === 0
      ? s("text", { x: x(index), y: height - 10, "text-anchor": "middle", class: "tick" }, label)
      : null,
  );
  return { y, x, band, grid, xLabels, margin };
}

/**
 * Lines over periods. series: [{name, values: ["0.12", null, …], texts: ["12.00 %", …]}];
 * kind "percent" labels the axis in per cent.
 */
export function lines(title, labels, series, { kind = "number", height = 220, description } = {}) {
  const { x, y, grid, xLabels } = frame(labels, series, kind, height);
  const marks = series.map((item, index) => {
    const points = item.values.map((value, position) => [position, toNumber(value)]);
    let path = "";
    let drawing = false;
    for (const [position, value] of points) {
      if (value === null) {
        drawing = false;
        continue;
      }
      path += `${drawing ? "L" : "M"}${x(position).toFixed(1)},${y(value).toFixed(1)}`;
      drawing = true;
    }
    return s(
      "g",
      { class: `series series-${index}` },
      s("path", { d: path, fill: "none", stroke: COLOURS[index % COLOURS.length], "stroke-width": 2.5 }),
      points
        .filter(([, value]) => value !== null)
        .map(([position, value]) =>
          s(
            "circle",
            { cx: x(position), cy: y(value), r: 4, fill: COLOURS[index % COLOURS.length] },
            s("title", {}, `${item.name}, ${labels[position]}: ${item.texts[position]}`),
          ),
        ),
    );
  });
  const svg = s("svg", { viewBox: `0 0 ${SMALL} ${height}`, class: "svg-chart" }, grid, xLabels, marks);
  return figure(title, description, svg, legendOf(series));
}

/** Grouped columns over periods, e.g. active and new members (kind "count": whole-number axis). */
export function columns(title, labels, series, { kind = "number", height = 220, description } = {}) {
  const { x, y, band, grid, xLabels } = frame(labels, series, kind, height);
  const width = Math.min(28, (band * 0.7) / series.length);
  const marks = series.map((item, index) =>
    s(
      "g",
      { class: `series series-${index}` },
      item.values.map((value, position) => {
        const number = toNumber(value);
        if (number === null) return null;
        const left = x(position) - (width * series.length) / 2 + index * width;
        const top = Math.min(y(number), y(0));
        return s(
          "rect",
          { x: left, y: top, width: width - 2, height: Math.max(Math.abs(y(0) - y(number)), 1), fill: COLOURS[index % COLOURS.length] },
          s("title", {}, `${item.name}, ${labels[position]}: ${item.texts[position]}`),
        );
      }),
    ),
  );
  const svg = s("svg", { viewBox: `0 0 ${SMALL} ${height}`, class: "svg-chart" }, grid, xLabels, marks);
  return figure(title, description, svg, legendOf(series));
}
