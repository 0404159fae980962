/** Reading IAM and IoT policy documents out of a synthesized template. */
import type { TemplateJson } from "./synth.ts";

export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

/** An intrinsic-laden value as one string: `{Ref: X}` → `<X>`, GetAtt → `<X.Attr>`, Join concatenated. */
export function flatten(value: unknown): string {
  if (typeof value === "string") return value;
  if (value && typeof value === "object") {
    const v = value as Record<string, unknown>;
    if (typeof v.Ref === "string") return `<${v.Ref}>`;
    const getAtt = v["Fn::GetAtt"];
    if (Array.isArray(getAtt)) return `<${getAtt.join(".")}>`;
    const join = v["Fn::Join"];
    if (Array.isArray(join)) {
      const [sep, parts] = join as [string, unknown[]];
      return parts.map(flatten).join(sep);
    }
  }
  throw new Error(`cannot flatten ${JSON.stringify(value)}`);
}

export const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);
export const actionsOf = (s: Statement): string[] => list(s.Action).map(String);
export const resourcesOf = (s: Statement): string[] => list(s.Resource).map(flatten);

/** Every statement of every AWS::IAM::Policy attached to the role, plus its inline policies. */
export function roleStatements(json: TemplateJson, roleLogicalId: string): Statement[] {
  const out: Statement[] = [];
  const role = json.Resources[roleLogicalId]?.Properties ?? {};
  for (const p of list(role.Policies ?? [])) {
    out.push(...((p as { PolicyDocument: { Statement: Statement[] } }).PolicyDocument.Statement ?? []));
  }
  for (const r of Object.values(json.Resources)) {
    if (r.Type !== "AWS::IAM::Policy") continue;
    const roles = list(r.Properties?.Roles ?? []).map(flatten);
    if (!roles.includes(`<${roleLogicalId}>`)) continue;
    const doc = r.Properties?.PolicyDocument as { Statement: Statement[] } | undefined;
    out.push(...(doc?.Statement ?? []));
  }
  return out;
}

/** IAM wildcard match (`s3:GetObject*` grants `s3:GetObject`). */
export function actionGranted(granted: readonly string[], action: string): boolean {
  return granted.some((g) =>
    new RegExp(`^${g.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`).test(action),
  );
}
