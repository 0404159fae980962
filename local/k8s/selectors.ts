/**
 * Field and label selectors as the API server parses them (`?fieldSelector=spec.nodeName=n1`,
 * `?labelSelector=app=web,tier!=db`). Only the fields the real server indexes for each resource are
 * accepted; anything else is refused with the server's own wording ("field label not supported").
 */
import { KubeApiError } from "./errors.ts";

type Requirement = { key: string; op: "=" | "!=" | "exists" | "!exists"; value: string };

function parseTerms(text: string, what: string, allowExists: boolean): Requirement[] {
  if (text.trim() === "") return [];
  return text.split(",").map((raw) => {
    const term = raw.trim();
    const m = /^([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.:-]*)$/.exec(term);
    if (m) return { key: m[1] as string, op: m[2] === "!=" ? "!=" : "=", value: m[3] as string };
    if (allowExists) {
      const e = /^(!?)([A-Za-z0-9_./-]+)$/.exec(term);
      if (e) return { key: e[2] as string, op: e[1] ? "!exists" : "exists", value: "" };
    }
    throw new KubeApiError("BadRequest", `unable to parse requirement in ${what}: "${term}"`);
  });
}

const matches = (r: Requirement, value: string | undefined): boolean => {
  switch (r.op) {
    case "=":
      return value === r.value;
    case "!=":
      return value !== r.value;
    case "exists":
      return value !== undefined;
    case "!exists":
      return value === undefined;
  }
};

/** Supported field selector fields per resource → how to read the field from an object. */
export type FieldGetters = Record<string, (o: never) => string | undefined>;

export function fieldSelector<T>(text: string | null, getters: FieldGetters): (o: T) => boolean {
  const reqs = parseTerms(text ?? "", "field selector", false);
  for (const r of reqs) {
    if (!(r.key in getters)) throw new KubeApiError("BadRequest", `field label not supported: ${r.key}`);
  }
  return (o) => reqs.every((r) => matches(r, (getters[r.key] as (o: T) => string | undefined)(o)));
}

export function labelSelector(text: string | null): (labels: Record<string, string> | undefined) => boolean {
  const reqs = parseTerms(text ?? "", "label selector", true);
  return (labels) => reqs.every((r) => matches(r, labels?.[r.key]));
}

/** A `matchLabels` selector: every label must match; an empty selector matches everything. */
export const matchLabels = (
  sel: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
) => Object.entries(sel ?? {}).every(([k, v]) => labels?.[k] === v);
