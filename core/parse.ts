/** The one way outside input becomes typed data: JSON text or values through a zod schema. */
import type { z } from "zod";
import { describeError, SchemaError, StrictJsonError } from "./errors.ts";
import { JsonSyntaxError, parseStrictJson } from "./strict-json.ts";

/** Upper bound for any JSON document we parse (manifests, roots, job documents are a few KB). */
export const MAX_JSON_BYTES = 1024 * 1024;

export function issuesOf(error: z.ZodError): Array<{ path: string; message: string }> {
  return error.issues.map((i) => ({
    path: i.path
      .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
      .join("")
      .replace(/^\./, ""),
    message: i.message,
  }));
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new SchemaError(what, issuesOf(r.error), { cause: r.error });
  return r.data;
}

/**
 * JSON text (or UTF-8 bytes) to a value with the strict parser: a repeated member name or a member named
 * `__proto__` can never be hidden from the schema that checks the value (core/strict-json.ts).
 */
export function parseJsonText(text: string | Uint8Array, what: string): unknown {
  const size = typeof text === "string" ? Buffer.byteLength(text) : text.byteLength;
  if (size > MAX_JSON_BYTES) {
    throw new SchemaError(what, [
      { path: "", message: `document is ${size} bytes, limit is ${MAX_JSON_BYTES}` },
    ]);
  }
  try {
    return parseStrictJson(
      typeof text === "string" ? text : new TextDecoder("utf-8", { fatal: true }).decode(text),
    );
  } catch (err) {
    const path = err instanceof JsonSyntaxError ? err.path : "";
    throw new StrictJsonError(what, [{ path, message: `not valid UTF-8 JSON (${describeError(err)})` }], {
      cause: err,
    });
  }
}

export function parseJsonWith<S extends z.ZodType>(
  schema: S,
  text: string | Uint8Array,
  what: string,
): z.output<S> {
  return parseWith(schema, parseJsonText(text, what), what);
}
