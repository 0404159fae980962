/**
 * AWS IoT policy documents, as far as the stand-in evaluates them: Allow / Deny statements over
 * `iot:Publish` and `iot:Subscribe` on topic and topic-filter ARNs, with `*` and `?` wildcards (IAM's
 * globbing) and Deny winning. The stand-in evaluates them only for fleet provisioning (which topics a claim
 * certificate may use); a device's own jobs topics come from the thing it is attached to
 * (docs/fleets.md#fleet-provisioning-by-claim). Other actions and condition keys are kept but not evaluated.
 */
import { z } from "zod";
import { parseJsonText, parseWith } from "../../core/parse.ts";

const OneOrMany = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);
const StatementSchema = z.object({
  Effect: z.enum(["Allow", "Deny"]),
  Action: OneOrMany,
  Resource: OneOrMany,
  Condition: z.record(z.string(), z.unknown()).optional(),
});
export const PolicyDocumentSchema = z.object({
  Version: z.string().optional(),
  // One statement or a list: read as a list, so an error names the statement and field (Statement[0].Effect).
  Statement: z.preprocess((v) => (Array.isArray(v) ? v : [v]), z.array(StatementSchema).min(1)),
});
export type PolicyDocument = z.infer<typeof PolicyDocumentSchema>;

/** Parses a policy document (JSON text); a clear error naming the field otherwise. */
export function parsePolicyDocument(text: string, what: string): PolicyDocument {
  return parseWith(PolicyDocumentSchema, parseJsonText(text, what), what);
}

const list = (v: string | string[]): string[] => (Array.isArray(v) ? v : [v]);

function glob(pattern: string, caseInsensitive: boolean): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`, caseInsensitive ? "i" : "");
}

/**
 * Whether the documents together allow `action` on `resource`: some Allow matches, no Deny does.
 * Statements with a Condition are not evaluated locally, so they never allow (and an unevaluated Deny
 * still denies: failing closed either way).
 */
export function policiesAllow(
  documents: readonly PolicyDocument[],
  action: string,
  resource: string,
): boolean {
  let allowed = false;
  for (const doc of documents) {
    for (const st of doc.Statement) {
      const actionMatches = list(st.Action).some((a) => glob(a, true).test(action));
      const resourceMatches = list(st.Resource).some((r) => glob(r, false).test(resource));
      if (!actionMatches || !resourceMatches) continue;
      if (st.Effect === "Deny") return false;
      if (st.Condition === undefined) allowed = true;
    }
  }
  return allowed;
}
