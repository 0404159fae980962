/**
 * Fleet provisioning template bodies (AWS's JSON template format), the subset Keel's template uses: declared
 * `Parameters`, one `AWS::IoT::Thing` (ThingName, AttributePayload, ThingGroups), one
 * `AWS::IoT::Certificate` (CertificateId from `AWS::IoT::Certificate::Id`, Status), any number of
 * `AWS::IoT::Policy` by PolicyName, and `DeviceConfiguration`. Values are literals, `{"Ref": P}` or
 * `{"Fn::Join": [sep, [values]]}`. A body is checked when the template is created, and rendered against
 * each request's parameters (docs/fleets.md#fleet-provisioning-by-claim).
 */
import { z } from "zod";
import { KeelError } from "../../core/errors.ts";
import { parseJsonText, parseWith } from "../../core/parse.ts";

/** The parameter AWS fills with the new certificate's id. */
export const CERTIFICATE_ID_PARAMETER = "AWS::IoT::Certificate::Id";

type Value = string | { Ref: string } | { "Fn::Join": [string, Value[]] };
const ValueSchema: z.ZodType<Value> = z.lazy(() =>
  z.union([
    z.string(),
    z.object({ Ref: z.string().min(1) }).strict(),
    z.object({ "Fn::Join": z.tuple([z.string(), z.array(ValueSchema)]) }).strict(),
  ]),
);

const ThingResource = z.object({
  Type: z.literal("AWS::IoT::Thing"),
  Properties: z
    .object({
      ThingName: ValueSchema,
      AttributePayload: z.record(z.string(), ValueSchema).optional(),
      ThingGroups: z.array(ValueSchema).max(10).optional(),
    })
    .strict(),
  OverrideSettings: z.record(z.string(), z.string()).optional(),
});
const CertificateResource = z.object({
  Type: z.literal("AWS::IoT::Certificate"),
  Properties: z.object({ CertificateId: ValueSchema, Status: z.enum(["ACTIVE", "INACTIVE"]) }).strict(),
});
const PolicyResource = z.object({
  Type: z.literal("AWS::IoT::Policy"),
  Properties: z.object({ PolicyName: ValueSchema }).strict(),
});
const ResourceSchema = z.discriminatedUnion("Type", [ThingResource, CertificateResource, PolicyResource]);

export const TemplateBodySchema = z.object({
  Parameters: z.record(
    z.string().min(1),
    z.object({ Type: z.literal("String"), Default: z.string().optional() }).strict(),
  ),
  Resources: z.record(z.string().min(1), ResourceSchema),
  DeviceConfiguration: z.record(z.string(), z.string()).optional(),
});
export type TemplateBody = z.infer<typeof TemplateBodySchema>;

/** What one provisioning request creates, once the body is rendered against its parameters. */
export interface RenderedTemplate {
  thingName: string;
  attributes: Record<string, string>;
  thingGroups: string[];
  certificateStatus: "ACTIVE" | "INACTIVE";
  policyNames: string[];
  deviceConfiguration: Record<string, string>;
}

/** Checks a body: JSON, the schema, exactly one thing and one certificate, and every Ref declared. */
export function parseTemplateBody(text: string): TemplateBody {
  const body = parseWith(TemplateBodySchema, parseJsonText(text, "templateBody"), "templateBody");
  const resources = Object.values(body.Resources);
  for (const type of ["AWS::IoT::Thing", "AWS::IoT::Certificate"] as const) {
    const n = resources.filter((r) => r.Type === type).length;
    if (n !== 1)
      throw new TemplateError(`templateBody must declare exactly one ${type} resource (found ${n})`);
  }
  const declared = new Set(Object.keys(body.Parameters));
  for (const ref of refsIn(body)) {
    if (!declared.has(ref)) throw new TemplateError(`templateBody references undeclared parameter ${ref}`);
  }
  return body;
}

/** A template body that cannot be used, or parameters it cannot be rendered with. */
export class TemplateError extends KeelError {
  override name = "TemplateError";
}

/** Renders the body; every referenced parameter must have a value (given, overridden or defaulted). */
export function renderTemplate(body: TemplateBody, parameters: Record<string, string>): RenderedTemplate {
  const values: Record<string, string> = {};
  for (const [name, p] of Object.entries(body.Parameters)) {
    const v = parameters[name] ?? p.Default;
    if (v !== undefined) values[name] = v;
  }
  const resolve = (v: Value): string => {
    if (typeof v === "string") return v;
    if ("Ref" in v) {
      const got = values[v.Ref];
      if (got === undefined) throw new TemplateError(`parameter ${v.Ref} has no value`);
      return got;
    }
    const [sep, parts] = v["Fn::Join"];
    return parts.map(resolve).join(sep);
  };
  const out: RenderedTemplate = {
    thingName: "",
    attributes: {},
    thingGroups: [],
    certificateStatus: "ACTIVE",
    policyNames: [],
    deviceConfiguration: body.DeviceConfiguration ?? {},
  };
  for (const r of Object.values(body.Resources)) {
    if (r.Type === "AWS::IoT::Thing") {
      out.thingName = resolve(r.Properties.ThingName);
      out.attributes = Object.fromEntries(
        Object.entries(r.Properties.AttributePayload ?? {}).map(([k, v]) => [k, resolve(v)]),
      );
      out.thingGroups = (r.Properties.ThingGroups ?? []).map(resolve);
    } else if (r.Type === "AWS::IoT::Certificate") {
      out.certificateStatus = r.Properties.Status;
      if (resolve(r.Properties.CertificateId) !== values[CERTIFICATE_ID_PARAMETER]) {
        throw new TemplateError(`the certificate resource must name ${CERTIFICATE_ID_PARAMETER}`);
      }
    } else {
      out.policyNames.push(resolve(r.Properties.PolicyName));
    }
  }
  return out;
}

function refsIn(body: TemplateBody): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      if ("Ref" in v && typeof v.Ref === "string") out.push(v.Ref);
      Object.values(v).forEach(walk);
    }
  };
  walk(body.Resources);
  return out;
}
