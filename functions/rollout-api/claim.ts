/**
 * Fleet provisioning by claim, the operator's side (docs/fleets.md#fleet-provisioning-by-claim):
 *   POST /fleets/{fleet}/claim-rule          which thing names may enrol by claim (the hook's rule)
 *   POST /fleets/{fleet}/claim-certificates  a claim certificate (and the fleet's template and claim
 *                                            policy, made once) to bake into factory images
 * Both audited. The claim certificate's key exists only in the answer, as a registered device's does.
 */
import { DescribeEndpointCommand } from "@aws-sdk/client-iot";
import { describeError } from "../../core/errors.ts";
import { parseWith } from "../../core/parse.ts";
import type { ApiDeps } from "../deps.ts";
import { CloudCallError, ConflictError } from "../errors.ts";
import { createClaimCertificate, ensureFleetProvisioning } from "../provisioning-hook/template.ts";
import { ClaimRuleSchema, type ClaimStore } from "../store-claim.ts";
import { type ClaimCertificate, ClaimRuleBodySchema } from "./contract.ts";
import { checkFleet } from "./rollouts.ts";
import type { Result } from "./router.ts";

export interface ClaimDeps {
  claims: ClaimStore;
  /** From PROVISIONING_HOOK_ARN / PROVISIONING_ROLE_ARN; undefined when the deployment has none. */
  provisioning?: { hookArn: string; roleArn: string };
}

function claimOf(deps: ApiDeps): ClaimDeps {
  if (!deps.claim) throw new ConflictError("this deployment does not serve fleet provisioning by claim");
  return deps.claim;
}

export async function setClaimRule(
  deps: ApiDeps,
  fleet: string,
  rawBody: unknown,
  caller: string,
): Promise<Result> {
  checkFleet(deps, fleet);
  const body = parseWith(ClaimRuleBodySchema, rawBody, "claim rule");
  const at = new Date(deps.now()).toISOString();
  // The stored rule is checked as the hook reads it (the pattern must compile), before it replaces the old one.
  const rule = parseWith(ClaimRuleSchema, { ...body, updatedAt: at, updatedBy: caller }, "claim rule");
  await claimOf(deps).claims.putClaimRule(fleet, rule);
  await deps.store.audit({
    at,
    who: caller,
    action: "fleet.claim-rule",
    target: fleet,
    fleets: [fleet],
    detail: body,
  });
  return { status: 200, value: rule };
}

export async function createClaimCert(deps: ApiDeps, fleet: string, caller: string): Promise<Result> {
  checkFleet(deps, fleet);
  const provisioning = claimOf(deps).provisioning;
  if (!provisioning) {
    throw new ConflictError(
      "this deployment has no provisioning hook (PROVISIONING_HOOK_ARN): no claim certificates",
    );
  }
  const arn = /^arn:[^:]+:lambda:([^:]+):(\d{12}):/.exec(provisioning.hookArn);
  if (!arn?.[1] || !arn[2]) throw new CloudCallError(`PROVISIONING_HOOK_ARN is not a Lambda ARN`);
  try {
    const { templateName } = await ensureFleetProvisioning(deps.jobs.iot, {
      fleet,
      region: arn[1],
      account: arn[2],
      hookArn: provisioning.hookArn,
      provisioningRoleArn: provisioning.roleArn,
      ...(deps.thingPolicyName ? { devicePolicyName: deps.thingPolicyName } : {}),
    });
    const cert = await createClaimCertificate(deps.jobs.iot, fleet);
    const endpoint = await deps.jobs.iot.send(new DescribeEndpointCommand({ endpointType: "iot:Data-ATS" }));
    await deps.store.audit({
      at: new Date(deps.now()).toISOString(),
      who: caller,
      action: "fleet.claim-certificate",
      target: fleet,
      fleets: [fleet],
      detail: { certificateId: cert.certificateId, templateName },
    });
    const value: ClaimCertificate = {
      fleet,
      templateName,
      ...cert,
      ...(endpoint.endpointAddress ? { endpoint: endpoint.endpointAddress } : {}),
    };
    return { status: 201, value };
  } catch (err) {
    if (err instanceof CloudCallError) throw err;
    throw new CloudCallError(`creating a claim certificate for ${fleet} failed: ${describeError(err)}`, {
      cause: err,
    });
  }
}
