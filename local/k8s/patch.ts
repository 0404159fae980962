/**
 * The three PATCH flavours clients send: JSON merge patch (RFC 7386, what @kubernetes/client-node's
 * merge-patch middleware sends), strategic merge patch (what `kubectl cordon` sends), and JSON patch
 * (RFC 6902, client-node's default). Strategic merge is merge patch plus merge-by-key for the few lists
 * of the objects we keep; any other `$` directive is refused by name instead of being misapplied.
 */
import { KubeApiError } from "./errors.ts";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const isObject = (v: unknown): v is Record<string, Json> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

/** Lists merged element by element on this key (the `patchMergeKey` of the Kubernetes types we store). */
const MERGE_KEYS: Record<string, string> = {
  conditions: "type",
  taints: "key",
  addresses: "type",
  ownerReferences: "uid",
  containers: "name",
  volumes: "name",
};

export function strategicMergePatch(target: Json, patch: Json, field = ""): Json {
  if (!isObject(patch)) {
    const key = MERGE_KEYS[field];
    if (key && Array.isArray(patch) && Array.isArray(target)) return mergeList(target, patch, key);
    return structuredClone(patch);
  }
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith("$setElementOrder/")) continue; // ordering hint only; our merge keeps existing order
    if (k.startsWith("$")) {
      throw new KubeApiError(
        "BadRequest",
        `strategic merge patch directive ${k} is not supported by this server`,
      );
    }
    if (v === null) delete out[k];
    else out[k] = strategicMergePatch(out[k] ?? null, v, k);
  }
  return out;
}

function mergeList(target: Json[], patch: Json[], key: string): Json[] {
  const out = [...target];
  for (const item of patch) {
    if (!isObject(item))
      throw new KubeApiError("BadRequest", `list items merged on "${key}" must be objects`);
    if (item.$patch === "delete") {
      const i = out.findIndex((t) => isObject(t) && t[key] === item[key]);
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    const i = out.findIndex((t) => isObject(t) && t[key] === item[key]);
    if (i >= 0) out[i] = strategicMergePatch(out[i] ?? null, item);
    else out.push(strategicMergePatch(null, item));
  }
  return out;
}

const pointer = (path: string): string[] => {
  if (path === "") return [];
  if (!path.startsWith("/"))
    throw new KubeApiError("BadRequest", `JSON patch path "${path}" must start with /`);
  return path
    .slice(1)
    .split("/")
    .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
};

/** RFC 6902 add / remove / replace / test (move and copy are refused by name). */
export function jsonPatch(target: Json, ops: unknown): Json {
  if (!Array.isArray(ops))
    throw new KubeApiError("BadRequest", "a JSON patch must be an array of operations");
  let doc = structuredClone(target);
  for (const [i, op] of ops.entries()) {
    if (!isObject(op) || typeof op.op !== "string" || typeof op.path !== "string") {
      throw new KubeApiError("BadRequest", `JSON patch operation ${i} needs string "op" and "path"`);
    }
    const parts = pointer(op.path);
    if (parts.length === 0) {
      if (op.op === "replace" || op.op === "add") doc = structuredClone(op.value ?? null);
      else
        throw new KubeApiError("BadRequest", `JSON patch operation ${i}: cannot ${op.op} the whole document`);
      continue;
    }
    const last = parts[parts.length - 1] as string;
    let parent: Json = doc;
    for (const p of parts.slice(0, -1)) {
      const next: Json | undefined = Array.isArray(parent)
        ? parent[Number(p)]
        : isObject(parent)
          ? parent[p]
          : undefined;
      if (next === undefined)
        throw new KubeApiError("Invalid", `JSON patch operation ${i}: path ${op.path} does not exist`);
      parent = next;
    }
    const has = Array.isArray(parent) ? Number(last) < parent.length : isObject(parent) && last in parent;
    switch (op.op) {
      case "test": {
        const cur = Array.isArray(parent)
          ? parent[Number(last)]
          : isObject(parent)
            ? parent[last]
            : undefined;
        if (JSON.stringify(cur) !== JSON.stringify(op.value)) {
          throw new KubeApiError("Invalid", `JSON patch operation ${i}: test of ${op.path} failed`);
        }
        break;
      }
      case "remove":
      case "replace":
      case "add":
        if (op.op !== "add" && !has) {
          throw new KubeApiError("Invalid", `JSON patch operation ${i}: path ${op.path} does not exist`);
        }
        if (Array.isArray(parent)) {
          const idx = last === "-" ? parent.length : Number(last);
          if (!Number.isInteger(idx) || idx < 0 || idx > parent.length) {
            throw new KubeApiError("Invalid", `JSON patch operation ${i}: bad array index in ${op.path}`);
          }
          if (op.op === "remove") parent.splice(idx, 1);
          else parent.splice(idx, op.op === "replace" ? 1 : 0, structuredClone(op.value ?? null));
        } else if (isObject(parent)) {
          if (op.op === "remove") delete parent[last];
          else parent[last] = structuredClone(op.value ?? null);
        } else {
          throw new KubeApiError("Invalid", `JSON patch operation ${i}: ${op.path} has no parent object`);
        }
        break;
      default:
        throw new KubeApiError("BadRequest", `JSON patch operation ${i}: op "${op.op}" is not supported`);
    }
  }
  return doc;
}

export const PATCH_TYPES = {
  "application/merge-patch+json": (t: Json, p: Json) => mergePatch(t, p),
  "application/strategic-merge-patch+json": (t: Json, p: Json) => strategicMergePatch(t, p),
  "application/json-patch+json": (t: Json, p: Json) => jsonPatch(t, p),
} as const;

/** 415 for a media type that is none of the three, judged before the body is even read. */
export function checkPatchType(contentType: string): keyof typeof PATCH_TYPES {
  const type = contentType.split(";")[0]?.trim() ?? "";
  if (!(type in PATCH_TYPES)) {
    throw new KubeApiError(
      "UnsupportedMediaType",
      `the body of the request was in an unknown format - accepted media types include: ${Object.keys(PATCH_TYPES).join(", ")}`,
    );
  }
  return type as keyof typeof PATCH_TYPES;
}

export function applyPatch(contentType: string, target: unknown, patch: unknown): unknown {
  return PATCH_TYPES[checkPatchType(contentType)](target as Json, patch as Json);
}
