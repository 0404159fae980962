/**
 * Pagination cursors. To the client a cursor is opaque base64url text; inside it is the sort key of the
 * last item a page returned. A cursor is checked against the listing it is given to (the key's shape),
 * so one that was tampered with, truncated or taken from another listing is a 400, never a query.
 */
import { z } from "zod";
import { SchemaError } from "../../core/errors.ts";

const CursorBodySchema = <S extends z.ZodType<string>>(key: S) => z.strictObject({ k: key });

export function encodeCursor(key: string): string {
  return Buffer.from(JSON.stringify({ k: key }), "utf8").toString("base64url");
}

/** The sort key inside `text`, if it is a cursor of the listing whose keys `key` describes. */
export function decodeCursor(text: string, key: z.ZodType<string>, listing: string): string {
  const refuse = () =>
    new SchemaError("query string", [
      { path: "cursor", message: `is not a cursor of ${listing} (pass nextCursor from its previous page)` },
    ]);
  let value: unknown;
  try {
    const bytes = Buffer.from(text, "base64url");
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw refuse();
  }
  const r = CursorBodySchema(key).safeParse(value);
  if (!r.success) throw refuse();
  return r.data.k;
}

/** `nextCursor` for an answer, present only when another page follows. */
export function nextCursorOf(next: string | undefined): { nextCursor?: string } {
  return next === undefined ? {} : { nextCursor: encodeCursor(next) };
}
