/**
 * The pre-provisioning hook's decision (docs/fleets.md#fleet-provisioning-by-claim): AWS IoT calls it with
 * the request of a node holding a fleet's claim certificate, before anything is created. It allows only a
 * thing name the fleet's claim rule lists (FLEET#<fleet>/CLAIM), in a fleet this deployment serves, not
 * already registered in another fleet; then it answers the thing's bucket group (created if missing) and
 * records the thing, as `keel fleet register` does. Every decision is audited; any doubt refuses.
 */
import type { IoTClient } from "@aws-sdk/client-iot";
import { z } from "zod";
import { describeError } from "../../core/errors.ts";
import { bucketGroupName, bucketOf } from "../../core/waves.ts";
import type { Logger } from "../log.ts";
import { ThingNameSchema } from "../rollout/model.ts";
import type { Store } from "../store.ts";
import { type ClaimStore, claimRuleAllows } from "../store-claim.ts";
import { ensureGroup } from "./group.ts";
import { fleetOfTemplateArn } from "./names.ts";

/** What AWS IoT sends the hook (payloadVersion 2020-04-01). */
export const HookEventSchema = z.object({
  claimCertificateId: z.string().regex(/^[0-9a-f]{64}$/),
  certificateId: z.string().regex(/^[0-9a-f]{64}$/),
  certificatePem: z.string().max(16_384),
  templateArn: z.string().max(2048),
  clientId: z.string().max(128),
  parameters: z.record(z.string().max(2048), z.string().max(4096)),
});
export type HookEvent = z.infer<typeof HookEventSchema>;

export interface HookAnswer {
  allowProvisioning: boolean;
  parameterOverrides?: Record<string, string>;
}

export interface HookDeps {
  iot: IoTClient;
  store: Store;
  claims: ClaimStore;
  /** Fleets this deployment serves; empty = any. */
  fleets: string[];
  now: () => number;
  log: Logger;
}

export async function decide(deps: HookDeps, raw: unknown): Promise<HookAnswer> {
  const parsed = HookEventSchema.safeParse(raw);
  if (!parsed.success) {
    deps.log.warn("provisioning hook: malformed event refused", { issues: parsed.error.issues.length });
    return { allowProvisioning: false };
  }
  const event = parsed.data;
  const fleet = fleetOfTemplateArn(event.templateArn);
  const thingName = event.parameters.ThingName ?? "";
  const at = new Date(deps.now()).toISOString();
  const who = `claim:${event.claimCertificateId}`;
  const refuse = async (reason: string): Promise<HookAnswer> => {
    deps.log.warn("provisioning hook: refused", { fleet, thingName, clientId: event.clientId, reason });
    await deps.store.audit({
      at,
      who,
      action: "thing.claim-refused",
      target: thingName || "(none)",
      ...(fleet ? { fleets: [fleet] } : {}),
      detail: { reason, clientId: event.clientId, certificateId: event.certificateId },
    });
    return { allowProvisioning: false };
  };

  if (!fleet) return refuse(`${event.templateArn} is not a Keel fleet template`);
  if (deps.fleets.length > 0 && !deps.fleets.includes(fleet)) {
    return refuse(`${fleet} is not one of this deployment's fleets`);
  }
  if (!thingName) return refuse("parameter ThingName is missing");
  if (!ThingNameSchema.safeParse(thingName).success)
    return refuse(`parameter ThingName ${JSON.stringify(thingName)} is not a valid thing name`);
  const why = claimRuleAllows(await deps.claims.getClaimRule(fleet), thingName);
  if (why) return refuse(why);
  const existing = await deps.store.getThing(thingName);
  if (existing && existing.fleet !== fleet)
    return refuse(`${thingName} is registered in fleet ${existing.fleet}`);

  const bucket = bucketOf(thingName);
  const group = bucketGroupName(fleet, bucket);
  try {
    // The template adds the thing to this group; AWS requires it to exist.
    await ensureGroup(deps.iot, group);
    await deps.store.putThing({
      ...(existing ?? {}),
      thingName,
      fleet,
      bucket,
      group,
      registeredAt: existing?.registeredAt ?? at,
      updatedAt: at,
    });
    await deps.store.audit({
      at,
      who,
      action: "thing.claim-enrol",
      target: thingName,
      fleets: [fleet],
      detail: { group, clientId: event.clientId, certificateId: event.certificateId },
    });
  } catch (err) {
    // Without its group or record the node would enrol half-way: refuse, and it retries with a new CSR.
    return refuse(`could not prepare the enrolment: ${describeError(err)}`);
  }
  deps.log.info("provisioning hook: allowed", { fleet, thingName, group, clientId: event.clientId });
  return { allowProvisioning: true, parameterOverrides: { BucketGroup: group } };
}
