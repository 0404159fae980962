/**
 * AWS IoT fleet provisioning by claim, in the stand-in (docs/fleets.md#fleet-provisioning-by-claim):
 * policies (CreatePolicy / AttachPolicy: what a claim certificate may do), provisioning templates with a
 * pre-provisioning hook, single-use expiring certificate ownership tokens, and the three MQTT operations:
 * CreateKeysAndCertificate, CreateCertificateFromCsr and RegisterThing (`.../provision/json`). A request
 * is checked completely (payload, token, template, hook, rendered resources) before anything is created;
 * a refusal is AWS's ErrorResponse on `/rejected` and changes nothing but the spent token.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { checkIotField, checkIotInput } from "../../core/aws-limits.ts";
import { parseCsr } from "../../core/csr.ts";
import { CsrError, describeError } from "../../core/errors.ts";
import { issuesOf, parseJsonText } from "../../core/parse.ts";
import type { CertificateAuthority, Clock } from "../contracts.ts";
import {
  CLAIM_CLIENT_ID,
  type ClaimAccess,
  CREATE_FROM_CSR_TOPIC,
  CREATE_KEYS_TOPIC,
  provisionTopic,
} from "../provisioning-topics.ts";
import type { ArnContext } from "./arns.ts";
import { certificateArn, parseCertificateArn } from "./arns.ts";
import { IotServiceError, ProvisioningRejection } from "./errors.ts";
import { type PolicyDocument, parsePolicyDocument, policiesAllow } from "./iot-policy.ts";
import type { IotPolicy, ProvisioningState, ProvisioningTemplate } from "./provisioning-model.ts";
import {
  CERTIFICATE_ID_PARAMETER,
  parseTemplateBody,
  type RenderedTemplate,
  renderTemplate,
  TemplateError,
} from "./provisioning-template.ts";
import type { Registry } from "./registry.ts";

/** AWS: a certificate ownership token is valid for one hour (clock time of the stand-in, scalable). */
export const OWNERSHIP_TOKEN_TTL_MS = 3600_000;
/** AWS gives the pre-provisioning hook five seconds. */
export const HOOK_TIMEOUT_MS = 5_000;

/** What AWS sends the pre-provisioning hook Lambda. */
export interface HookInput {
  claimCertificateId: string;
  certificateId: string;
  certificatePem: string;
  templateArn: string;
  clientId: string;
  parameters: Record<string, string>;
}
/** What the hook must answer; anything else fails the request. */
export const HookOutputSchema = z.object({
  allowProvisioning: z.boolean(),
  parameterOverrides: z.record(z.string(), z.string()).optional(),
});
export type InvokeHook = (targetArn: string, input: HookInput) => Promise<unknown>;

const CsrRequest = z.object({ certificateSigningRequest: z.string() }).strict();
const KeysRequest = z.object({}).strict();
const ProvisionRequest = z
  .object({
    certificateOwnershipToken: z.string().min(1).max(2048),
    // RegisterThing's limits: keys up to 2,048 characters, values up to 4,096.
    parameters: z.record(z.string().max(2048), z.string().max(4096)).optional(),
  })
  .strict();

interface OwnershipToken {
  certificateId: string;
  claimCertificateId: string;
  expiresAt: number;
}

export interface ProvisioningAnswer {
  topic: string;
  payload: Record<string, unknown>;
}

export class FleetProvisioning {
  readonly templates = new Map<string, ProvisioningTemplate>();
  readonly policies = new Map<string, IotPolicy>();
  private readonly documents = new Map<string, PolicyDocument>();
  private readonly tokens = new Map<string, OwnershipToken>();

  constructor(
    private readonly ctx: ArnContext,
    private readonly clock: Clock,
    private readonly registry: Registry,
    private readonly ca: CertificateAuthority,
    private readonly invokeHook: InvokeHook | undefined,
    private readonly changed: () => void,
    private readonly log: (msg: string, fields?: Record<string, unknown>) => void,
    saved?: ProvisioningState,
  ) {
    for (const t of saved?.templates ?? []) this.templates.set(t.templateName, t);
    for (const p of saved?.policies ?? []) {
      this.policies.set(p.policyName, p);
      this.documents.set(p.policyName, parsePolicyDocument(p.policyDocument, `policy ${p.policyName}`));
    }
  }

  snapshot(): ProvisioningState {
    return { templates: [...this.templates.values()], policies: [...this.policies.values()] };
  }

  templateArn(name: string): string {
    return `arn:aws:iot:${this.ctx.region}:${this.ctx.account}:provisioningtemplate/${name}`;
  }

  // ---- control plane ----

  createPolicy(policyName: string, policyDocument: string): Record<string, unknown> {
    if (this.policies.has(policyName)) {
      throw new IotServiceError("ResourceAlreadyExistsException", `Policy ${policyName} already exists`);
    }
    let doc: PolicyDocument;
    try {
      doc = parsePolicyDocument(policyDocument, "policyDocument");
    } catch (err) {
      throw new IotServiceError("InvalidRequestException", describeError(err), { cause: err });
    }
    this.policies.set(policyName, { policyName, policyDocument, targets: [] });
    this.documents.set(policyName, doc);
    this.changed();
    const policyArn = `arn:aws:iot:${this.ctx.region}:${this.ctx.account}:policy/${policyName}`;
    return { policyName, policyArn, policyDocument, policyVersionId: "1" };
  }

  attachPolicy(policyName: string, target: string): void {
    const p = this.policy(policyName);
    const certificateId = parseCertificateArn(this.ctx, target);
    if (!certificateId) {
      throw new IotServiceError("InvalidRequestException", `target must be a certificate ARN, got ${target}`);
    }
    this.registry.certificate(certificateId);
    if (!p.targets.includes(certificateId)) p.targets.push(certificateId);
    this.changed();
  }

  createTemplate(input: {
    templateName: string;
    description?: string;
    templateBody: string;
    enabled?: boolean;
    provisioningRoleArn: string;
    preProvisioningHook?: { targetArn: string; payloadVersion?: string };
    type?: string;
  }): Record<string, unknown> {
    if (this.templates.has(input.templateName)) {
      throw new IotServiceError(
        "ResourceAlreadyExistsException",
        `Provisioning template ${input.templateName} already exists`,
      );
    }
    if (input.type === "JITP") {
      throw new IotServiceError(
        "InvalidRequestException",
        "The stand-in serves FLEET_PROVISIONING templates only",
      );
    }
    try {
      parseTemplateBody(input.templateBody);
    } catch (err) {
      throw new IotServiceError("InvalidRequestException", `Invalid templateBody: ${describeError(err)}`, {
        cause: err,
      });
    }
    const t: ProvisioningTemplate = {
      templateName: input.templateName,
      templateId: randomBytes(16).toString("hex"),
      ...(input.description === undefined ? {} : { description: input.description }),
      templateBody: input.templateBody,
      enabled: input.enabled ?? false,
      provisioningRoleArn: input.provisioningRoleArn,
      ...(input.preProvisioningHook ? { preProvisioningHook: input.preProvisioningHook } : {}),
      createdAt: this.clock.now(),
    };
    this.templates.set(t.templateName, t);
    this.changed();
    return {
      templateArn: this.templateArn(t.templateName),
      templateName: t.templateName,
      defaultVersionId: 1,
    };
  }

  describeTemplate(name: string): Record<string, unknown> {
    const t = this.template(name);
    return {
      templateArn: this.templateArn(name),
      templateName: name,
      description: t.description,
      creationDate: t.createdAt / 1000,
      lastModifiedDate: t.createdAt / 1000,
      defaultVersionId: 1,
      templateBody: t.templateBody,
      enabled: t.enabled,
      provisioningRoleArn: t.provisioningRoleArn,
      preProvisioningHook: t.preProvisioningHook,
      type: "FLEET_PROVISIONING",
    };
  }

  deleteTemplate(name: string): void {
    this.template(name);
    this.templates.delete(name);
    this.changed();
  }

  /** What a certificate's attached policies let it do on the provisioning topics; undefined: nothing. */
  claimAccess(certificateId: string): ClaimAccess | undefined {
    const docs = [...this.policies.values()]
      .filter((p) => p.targets.includes(certificateId))
      .map((p) => this.documents.get(p.policyName))
      .filter((d): d is PolicyDocument => d !== undefined);
    if (docs.length === 0) return undefined;
    const prefix = `arn:aws:iot:${this.ctx.region}:${this.ctx.account}`;
    const requests = [
      CREATE_KEYS_TOPIC,
      CREATE_FROM_CSR_TOPIC,
      ...[...this.templates.keys()].map(provisionTopic),
    ];
    const publish = requests.filter((t) => policiesAllow(docs, "iot:Publish", `${prefix}:topic/${t}`));
    if (publish.length === 0) return undefined;
    const subscribe = publish
      .flatMap((t) => [`${t}/accepted`, `${t}/rejected`])
      .filter((f) => policiesAllow(docs, "iot:Subscribe", `${prefix}:topicfilter/${f}`));
    return { publish, subscribe };
  }

  // ---- MQTT API ----

  /** Answers one request routed by the broker from `clientId` holding `claimCertificateId`. */
  async handle(
    claimCertificateId: string,
    clientId: string,
    awsTopic: string,
    payload: Buffer,
  ): Promise<ProvisioningAnswer> {
    try {
      const access = this.claimAccess(claimCertificateId);
      if (!access?.publish.includes(awsTopic) || !CLAIM_CLIENT_ID.test(clientId)) {
        throw new ProvisioningRejection(
          403,
          "AccessDenied",
          `The claim certificate may not publish to ${awsTopic}`,
        );
      }
      const body = decode(payload);
      let accepted: Record<string, unknown>;
      if (awsTopic === CREATE_KEYS_TOPIC) {
        parse(KeysRequest, body);
        accepted = await this.createKeys(claimCertificateId);
      } else if (awsTopic === CREATE_FROM_CSR_TOPIC) {
        accepted = await this.createFromCsr(claimCertificateId, parse(CsrRequest, body));
      } else {
        const name = /^\$aws\/provisioning-templates\/([^/]+)\/provision\/json$/.exec(awsTopic)?.[1];
        if (!name)
          throw new ProvisioningRejection(404, "NotFound", `${awsTopic} is not a provisioning topic`);
        accepted = await this.provision(claimCertificateId, clientId, name, parse(ProvisionRequest, body));
      }
      return { topic: `${awsTopic}/accepted`, payload: accepted };
    } catch (err) {
      const r =
        err instanceof ProvisioningRejection
          ? err
          : new ProvisioningRejection(500, "InternalError", "The service could not process the request", {
              cause: err,
            });
      this.log("provisioning request refused", {
        topic: awsTopic,
        clientId,
        claimCertificateId: claimCertificateId.slice(0, 12),
        errorCode: r.errorCode,
        error: r.statusCode === 500 ? describeError(err) : r.message,
      });
      return {
        topic: `${awsTopic}/rejected`,
        payload: { statusCode: r.statusCode, errorCode: r.errorCode, errorMessage: r.message },
      };
    }
  }

  private async createKeys(claimCertificateId: string): Promise<Record<string, unknown>> {
    const issued = await this.ca.issueDeviceCertificate();
    // Not usable until RegisterThing activates it (AWS: PENDING_ACTIVATION).
    this.registry.addCertificate(issued, false);
    return {
      certificateId: issued.certificateId,
      certificatePem: issued.certificatePem,
      privateKey: issued.privateKeyPem,
      certificateOwnershipToken: this.issueToken(issued.certificateId, claimCertificateId),
    };
  }

  private async createFromCsr(
    claimCertificateId: string,
    req: z.infer<typeof CsrRequest>,
  ): Promise<Record<string, unknown>> {
    const violations = checkIotInput("iot:CreateCertificateFromCsr", req);
    if (violations.length > 0) {
      throw new ProvisioningRejection(400, "InvalidPayload", violations.map((v) => v.message).join("; "));
    }
    let key: ReturnType<typeof parseCsr>["publicKey"];
    try {
      ({ publicKey: key } = parseCsr(req.certificateSigningRequest));
    } catch (err) {
      if (!(err instanceof CsrError)) throw err;
      const why = err.issues[0]?.message ?? "is not valid";
      throw new ProvisioningRejection(400, "InvalidCertificateSigningRequest", `The CSR ${why}`, {
        cause: err,
      });
    }
    // The certificate is for the CSR's key: only whoever holds that private key can use it.
    const cert = await this.ca.issueCertificateForKey(key);
    this.registry.addCertificate(cert, false);
    return {
      certificateId: cert.certificateId,
      certificatePem: cert.certificatePem,
      certificateOwnershipToken: this.issueToken(cert.certificateId, claimCertificateId),
    };
  }

  private async provision(
    claimCertificateId: string,
    clientId: string,
    templateName: string,
    req: z.infer<typeof ProvisionRequest>,
  ): Promise<Record<string, unknown>> {
    const template = this.templates.get(templateName);
    if (!template)
      throw new ProvisioningRejection(404, "NotFound", `Template ${templateName} does not exist`);
    if (!template.enabled)
      throw new ProvisioningRejection(403, "AccessDenied", `Template ${templateName} is disabled`);
    // Spent on first use, whatever the outcome: a token can never be replayed.
    const token = this.tokens.get(req.certificateOwnershipToken);
    this.tokens.delete(req.certificateOwnershipToken);
    if (!token || token.expiresAt <= this.clock.now() || token.claimCertificateId !== claimCertificateId) {
      throw new ProvisioningRejection(
        400,
        "InvalidCertificateOwnershipToken",
        "The certificate ownership token is unknown, expired, already used or from another claim",
      );
    }
    const cert = this.registry.certificate(token.certificateId);
    let parameters: Record<string, string> = {
      ...req.parameters,
      [CERTIFICATE_ID_PARAMETER]: cert.certificateId,
    };
    if (template.preProvisioningHook) {
      const overrides = await this.callHook(template.preProvisioningHook.targetArn, {
        claimCertificateId,
        certificateId: cert.certificateId,
        certificatePem: cert.pem,
        templateArn: this.templateArn(templateName),
        clientId,
        parameters,
      });
      parameters = { ...parameters, ...overrides, [CERTIFICATE_ID_PARAMETER]: cert.certificateId };
    }
    const plan = this.plan(template.templateBody, parameters);
    this.apply(plan, cert.certificateId);
    this.log("device provisioned by claim", {
      thingName: plan.thingName,
      template: templateName,
      certificateId: cert.certificateId.slice(0, 12),
      claimCertificateId: claimCertificateId.slice(0, 12),
    });
    return { deviceConfiguration: plan.deviceConfiguration, thingName: plan.thingName };
  }

  /** Calls the hook; its overrides when it allows provisioning, a 403 refusal when it does not. */
  private async callHook(targetArn: string, input: HookInput): Promise<Record<string, string>> {
    if (!this.invokeHook) {
      throw new ProvisioningRejection(500, "InternalError", `No Lambda can be invoked for ${targetArn}`);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the hook did not answer in ${HOOK_TIMEOUT_MS} ms`)),
        HOOK_TIMEOUT_MS,
      );
    });
    let raw: unknown;
    try {
      raw = await Promise.race([this.invokeHook(targetArn, input), timeout]);
    } catch (err) {
      throw new ProvisioningRejection(
        500,
        "InternalError",
        `The pre-provisioning hook failed: ${describeError(err)}`,
        {
          cause: err,
        },
      );
    } finally {
      clearTimeout(timer);
    }
    const out = HookOutputSchema.safeParse(raw);
    if (!out.success) {
      throw new ProvisioningRejection(
        500,
        "InternalError",
        "The pre-provisioning hook returned an invalid answer",
      );
    }
    if (!out.data.allowProvisioning) {
      throw new ProvisioningRejection(
        403,
        "AccessDenied",
        "The pre-provisioning hook did not allow provisioning",
      );
    }
    return out.data.parameterOverrides ?? {};
  }

  /** Renders and checks everything the request would create, creating nothing. */
  private plan(templateBody: string, parameters: Record<string, string>): RenderedTemplate {
    let plan: RenderedTemplate;
    try {
      plan = renderTemplate(parseTemplateBody(templateBody), parameters);
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      throw new ProvisioningRejection(400, "InvalidParameters", err.message, { cause: err });
    }
    const bad = (m: string) => new ProvisioningRejection(400, "InvalidParameters", m);
    if (checkIotField("iot:CreateThing", "thingName", plan.thingName).length > 0)
      throw bad(`thing name ${JSON.stringify(plan.thingName)} is not valid`);
    // As in AWS, an existing thing gets the new certificate as well (a re-imaged node enrols again): who
    // may name which thing is the pre-provisioning hook's decision.
    for (const g of plan.thingGroups)
      if (!this.registry.groups.has(g)) throw bad(`thing group ${g} does not exist`);
    for (const p of plan.policyNames) if (!this.policies.has(p)) throw bad(`policy ${p} does not exist`);
    return plan;
  }

  private apply(plan: RenderedTemplate, certificateId: string): void {
    try {
      this.registry.createThing({ thingName: plan.thingName, attributes: plan.attributes });
    } catch (err) {
      throw new ProvisioningRejection(400, "ResourceConflict", describeError(err), { cause: err });
    }
    for (const g of plan.thingGroups) this.registry.addThingToThingGroup(g, plan.thingName);
    for (const p of plan.policyNames) this.attachPolicy(p, certificateArn(this.ctx, certificateId));
    this.registry.updateCertificate(certificateId, plan.certificateStatus);
    this.registry.attachPrincipal(plan.thingName, certificateId);
  }

  private issueToken(certificateId: string, claimCertificateId: string): string {
    const token = randomBytes(32).toString("base64url");
    const now = this.clock.now();
    // Forget expired tokens so an abandoned enrolment does not keep memory forever.
    for (const [k, t] of this.tokens) if (t.expiresAt <= now) this.tokens.delete(k);
    this.tokens.set(token, { certificateId, claimCertificateId, expiresAt: now + OWNERSHIP_TOKEN_TTL_MS });
    return token;
  }

  private policy(name: string): IotPolicy {
    const p = this.policies.get(name);
    if (!p) throw new IotServiceError("ResourceNotFoundException", `Policy ${name} does not exist`);
    return p;
  }

  private template(name: string): ProvisioningTemplate {
    const t = this.templates.get(name);
    if (!t)
      throw new IotServiceError("ResourceNotFoundException", `Provisioning template ${name} does not exist`);
    return t;
  }
}

function decode(payload: Buffer): unknown {
  try {
    return parseJsonText(payload, "payload");
  } catch (err) {
    throw new ProvisioningRejection(400, "InvalidPayload", "The payload is not valid UTF-8 JSON", {
      cause: err,
    });
  }
}

function parse<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new ProvisioningRejection(400, "InvalidPayload", "The payload must be a JSON object");
  }
  const r = schema.safeParse(body);
  if (!r.success) {
    const msg = issuesOf(r.error)
      .map((i) => `${i.path || "(root)"}: ${i.message}`)
      .join("; ");
    throw new ProvisioningRejection(400, "InvalidPayload", `Invalid payload: ${msg}`);
  }
  return r.data;
}
