/// <reference lib="dom" />
/**
 * A few DOM helpers for the console's web app: elements from a tag, attributes and children (text is
 * always set as text, never parsed as HTML, so API data cannot inject markup), SVG elements, formatting.
 */

export type Child = Node | string | number | null | undefined | false;
type AttrValue = string | number | boolean | undefined | null | ((e: Event) => void);
export type Attrs = Record<string, AttrValue>;

function apply(el: Element, attrs: Attrs, children: Child[]): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.slice(2).toLowerCase(), v);
    else el.setAttribute(k === "className" ? "class" : k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, attrs, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs, children);
  return el;
}

/** A labelled form control: the label names it for screen readers and is a click target. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const hintEl = hint ? h("small", { id: `${id}-hint`, className: "hint" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { className: "field" }, h("label", { for: id }, label), control, hintEl);
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** `m:ss` (or `h:mm:ss`) for a countdown. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh > 0 ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** "12 s ago", "5 min ago", or the date for anything older than a day. */
export function ago(at: string | number | undefined, now: number): string {
  if (at === undefined) return "–";
  const t = typeof at === "number" ? at : Date.parse(at);
  if (!Number.isFinite(t)) return String(at);
  const s = Math.round((now - t) / 1000);
  if (s < 60) return `${Math.max(0, s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toISOString().slice(0, 10);
}

/** A `<time>` element: machine-readable datetime, human text, the exact instant on hover. */
export function time(at: string | number, text: string): HTMLTimeElement {
  const iso = new Date(at).toISOString();
  return h("time", { datetime: iso, title: iso }, text);
}

/** Tells screen-reader users about a change they did not cause by focus (a finished action, an error). */
export function announce(message: string): void {
  const el = document.getElementById("announce");
  if (el) el.textContent = message;
}

export function statusBadge(status: string): HTMLElement {
  return h("span", { className: `badge badge-${status.toLowerCase().replace(/_/g, "-")}` }, status);
}

export function errorBox(message: string): HTMLElement {
  return h("div", { className: "error", role: "alert" }, message);
}

/** A horizontally scrollable table: a caption for screen readers, column headers, and the body a view fills. */
export function dataTable(
  caption: string,
  columns: readonly string[],
  body: HTMLTableSectionElement,
): HTMLElement {
  return h(
    "div",
    { className: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { className: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { scope: "col" }, c)))),
      body,
    ),
  );
}
