/**
 * The API's edge against AWS's own limits (core/aws-limits.ts): everything a request carries into an IoT
 * call is checked here, by building the very inputs the engine will send (functions/rollout/iot.ts) and
 * checking them against the table, before anything is written. A value AWS would refuse later — a
 * CreateJob that fails forever, a CancelJob that leaves devices installing — is a 400 now, naming the
 * request field and the limit.
 */
import { checkIotInput, type IotLimitViolation, type IotOperation } from "../../core/aws-limits.ts";
import { SchemaError } from "../../core/errors.ts";
import { bucketGroupName } from "../../core/waves.ts";
import { cancelJobInput, createJobInput } from "../rollout/iot.ts";
import { createThingInput } from "../rollout/iot-devices.ts";
import type { Rollout } from "../rollout/model.ts";

type Issue = { path: string; message: string };

/** Stand-ins for what only exists later (target ARNs, the document): checked where they are made. */
const LATER = { targets: ["arn:aws:iot:us-east-1:000000000000:thing/keel"], document: "{}" };

function issuesOf(
  operation: IotOperation,
  input: object,
  fieldOf: (iotPath: string) => string | undefined,
): Issue[] {
  return checkIotInput(operation, input as Record<string, unknown>).flatMap((v: IotLimitViolation) => {
    const path = fieldOf(v.path);
    // A violation no request field leads to is a Keel bug, not a client error: left to the call's check.
    return path === undefined ? [] : [{ path, message: `AWS IoT ${operation} refuses this: ${v.message}` }];
  });
}

function refuse(what: string, issues: Issue[]): void {
  if (issues.length > 0) throw new SchemaError(what, issues);
}

/** Every wave's CreateJob, every bucket group, canary and thing group name of a planned rollout. */
export function checkRolloutForAws(r: Rollout, presignRoleArn: string): void {
  const issues: Issue[] = [];
  for (const [i, w] of r.waves.entries()) {
    const input = createJobInput(r, i, { ...LATER, presignRoleArn });
    issues.push(
      ...issuesOf("iot:CreateJob", input, (p) => {
        if (p.startsWith("abortConfig.criteriaList")) return `waves[${i}].failureThresholdPercent`;
        if (p.startsWith("jobExecutionsRolloutConfig")) return "rolloutRate.maximumPerMinute";
        if (p.startsWith("timeoutConfig")) return "inProgressTimeoutMinutes";
        if (p === "description") return "release";
        return undefined;
      }),
    );
    for (const [j, t] of (w.things ?? []).entries()) {
      issues.push(...issuesOf("iot:DescribeThing", { thingName: t }, () => `waves[${i}].canary[${j}]`));
    }
  }
  for (const [k, fleet] of r.fleets.entries()) {
    // The longest bucket group name stands for all of them; the prefix is what ListThingGroups gets.
    const group = bucketGroupName(fleet, 99);
    issues.push(...issuesOf("iot:CreateThingGroup", { thingGroupName: group }, () => `fleets[${k}]`));
    issues.push(...issuesOf("iot:ListThingGroups", { namePrefixFilter: `${fleet}-b` }, () => `fleets[${k}]`));
  }
  for (const [k, g] of r.thingGroups.entries()) {
    issues.push(...issuesOf("iot:DescribeThingGroup", { thingGroupName: g }, () => `thingGroups[${k}]`));
  }
  refuse("rollout request", dedupe(issues));
}

/** The abort's CancelJob comment (the reason as the rollout records it). */
export function checkAbortForAws(r: Rollout, reason: string): void {
  const jobId = r.waves[r.current]?.jobId ?? "";
  refuse(
    "abort request",
    issuesOf("iot:CancelJob", cancelJobInput(jobId, reason), (p) => (p === "comment" ? "reason" : undefined)),
  );
}

/** A new device's CreateThing (its name, and its fleet as an attribute). */
export function checkThingForAws(thingName: string, fleet: string): void {
  refuse(
    "thing registration",
    issuesOf("iot:CreateThing", createThingInput(thingName, fleet), (p) =>
      p === "thingName" ? "thingName" : p.startsWith("attributePayload") ? "fleet" : undefined,
    ),
  );
}

function dedupe(issues: Issue[]): Issue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.path}\n${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
