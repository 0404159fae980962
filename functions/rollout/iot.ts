/**
 * The IoT Jobs side effects of the engine, each idempotent: creating a wave's job (derived id, so a
 * repeat hits ResourceAlreadyExists), canceling it, and reading its counters. Calls grow with waves and
 * their ≤100 targets, never with devices.
 */

import {
  type MaintenanceWindow as AwsMaintenanceWindow,
  CancelJobCommand,
  type CancelJobCommandInput,
  CreateJobCommand,
  type CreateJobCommandInput,
  CreateThingGroupCommand,
  DescribeJobCommand,
  DescribeThingCommand,
  DescribeThingGroupCommand,
  type IoTClient,
  ListThingGroupsCommand,
} from "@aws-sdk/client-iot";
import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { checkIotInput, formatIotViolations, type IotOperation } from "../../core/aws-limits.ts";
import { mapLimit } from "../../core/concurrency.ts";
import { describeError } from "../../core/errors.ts";
import { buildJobDocument } from "../../core/job-document.ts";
import type { MaintenanceWindow } from "../../core/maintenance-window.ts";
import { AwsLimitError, awsErrorName, CloudCallError } from "../errors.ts";
import { countsFrom, type Observation } from "./engine.ts";
import type { Rollout } from "./model.ts";
import { awsMaintenanceWindows, documentWindows } from "./windows.ts";

export interface JobsConfig {
  iot: IoTClient;
  s3: S3Client;
  bucket: string;
  region: string;
  presignRoleArn: string;
}

/**
 * Ensures the group exists. An identical CreateThingGroup returns the existing group; one that differs
 * (say, created by hand with a description) answers ResourceAlreadyExists, which is just as good.
 */
export async function ensureThingGroup(iot: IoTClient, name: string): Promise<string> {
  try {
    const r = await iot.send(new CreateThingGroupCommand({ thingGroupName: name }));
    if (!r.thingGroupArn) throw new CloudCallError(`CreateThingGroup ${name} returned no ARN`);
    return r.thingGroupArn;
  } catch (err) {
    if (awsErrorName(err) !== "ResourceAlreadyExistsException") throw err;
    return must(thingGroupArn(iot, name), `thing group ${name}`);
  }
}

/** The ARN of an existing thing, or undefined when there is no such thing. */
export async function thingArn(iot: IoTClient, name: string): Promise<string | undefined> {
  try {
    const r = await iot.send(new DescribeThingCommand({ thingName: name }));
    return r.thingArn;
  } catch (err) {
    if (awsErrorName(err) === "ResourceNotFoundException") return undefined;
    throw err;
  }
}

/** The ARN of an existing thing group, or undefined when there is no such group. */
export async function thingGroupArn(iot: IoTClient, name: string): Promise<string | undefined> {
  try {
    const r = await iot.send(new DescribeThingGroupCommand({ thingGroupName: name }));
    return r.thingGroupArn;
  } catch (err) {
    if (awsErrorName(err) === "ResourceNotFoundException") return undefined;
    throw err;
  }
}

async function must(arn: Promise<string | undefined>, what: string): Promise<string> {
  const a = await arn;
  if (!a) throw new CloudCallError(`${what} does not exist`);
  return a;
}

/** Trust roots newer than root 1, for devices to walk forward before verifying (job document rootUrls). */
export async function newerRootKeys(s3: S3Client, bucket: string): Promise<string[]> {
  const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "trust/root." }));
  return (r.Contents ?? [])
    .map((o) => ({ key: o.Key ?? "", n: Number(/^trust\/root\.(\d+)\.json$/.exec(o.Key ?? "")?.[1] ?? 0) }))
    .filter((x) => x.n >= 2)
    .sort((a, b) => a.n - b.n)
    .slice(-16)
    .map((x) => x.key);
}

/** IoT registry APIs have low per-account rates; up to 100 targets go a few at a time, in order. */
const TARGET_CONCURRENCY = 8;

/** Page size of ListThingGroups: a fleet's 100 bucket groups fit in one page. */
const GROUP_PAGE = 250;

/**
 * ARNs of a wave's bucket groups. Registration creates a device's bucket group, so most exist: one
 * ListThingGroups per fleet finds them, and only groups no device has joined yet are created (a job's
 * targets must exist). Calls grow with fleets and missing buckets, never with devices.
 */
export async function bucketGroupArns(
  iot: IoTClient,
  fleets: readonly string[],
  names: string[],
): Promise<string[]> {
  const known = new Map<string, string>();
  for (const fleet of fleets) {
    let nextToken: string | undefined;
    do {
      const page = await iot.send(
        new ListThingGroupsCommand({ namePrefixFilter: `${fleet}-b`, maxResults: GROUP_PAGE, nextToken }),
      );
      for (const g of page.thingGroups ?? [])
        if (g.groupName && g.groupArn) known.set(g.groupName, g.groupArn);
      nextToken = page.nextToken;
    } while (nextToken);
  }
  return mapLimit(names, TARGET_CONCURRENCY, async (g) => known.get(g) ?? ensureThingGroup(iot, g));
}

/**
 * The CreateJob input for a wave, as a pure function of the rollout: the API checks these same inputs
 * against AWS's limits before it accepts a rollout (functions/rollout-api/aws-edge.ts), and the call
 * checks them again, so what reaches AWS is what was checked.
 */
export function createJobInput(
  r: Rollout,
  waveIndex: number,
  call: {
    targets: string[];
    document: string;
    presignRoleArn: string;
    /** The fleets' maintenance windows in AWS's form, where they have one (windows.ts). */
    maintenanceWindows?: AwsMaintenanceWindow[] | undefined;
  },
): CreateJobCommandInput {
  const wave = r.waves[waveIndex];
  if (!wave) throw new RangeError(`rollout ${r.id} has no wave ${waveIndex + 1}`);
  return {
    jobId: wave.jobId,
    targets: call.targets,
    document: call.document,
    description: `Keel rollout ${r.id}: ${r.release}, wave ${waveIndex + 1} of ${r.waves.length}`,
    targetSelection: "SNAPSHOT",
    jobExecutionsRolloutConfig: { maximumPerMinute: r.maximumPerMinute },
    // The native net behind our gate: IoT cancels queued executions itself if failures spike.
    ...(wave.failureThresholdPercent > 0
      ? {
          abortConfig: {
            criteriaList: [
              {
                failureType: "ALL",
                action: "CANCEL",
                thresholdPercentage: wave.failureThresholdPercent,
                minNumberOfExecutedThings: wave.kind === "canary" ? 1 : 10,
              },
            ],
          },
        }
      : {}),
    timeoutConfig: { inProgressTimeoutInMinutes: r.inProgressTimeoutMinutes },
    presignedUrlConfig: { roleArn: call.presignRoleArn, expiresInSec: 3600 },
    // IoT rolls the wave out only inside a window; one that closes mid-wave stops it until the next.
    ...(call.maintenanceWindows ? { schedulingConfig: { maintenanceWindows: call.maintenanceWindows } } : {}),
  };
}

/** The CancelJob input for an abort (or a replaced convergence job); `reason` becomes the job's comment. */
export function cancelJobInput(
  jobId: string,
  reason: string,
  reasonCode = "KEEL_ROLLOUT_ABORTED",
): CancelJobCommandInput {
  return { jobId, reasonCode, comment: reason };
}

/**
 * Refuses, before the call, an input AWS would refuse (core/aws-limits.ts): a named, permanent error
 * instead of an InvalidRequestException, which would fail the same way on every retry.
 */
export function checkIotCall(operation: IotOperation, input: object): void {
  const violations = checkIotInput(operation, input as Record<string, unknown>);
  if (violations.length > 0) {
    throw new AwsLimitError(`${operation} input breaks AWS's limits: ${formatIotViolations(violations)}`);
  }
}

export async function createWaveJob(
  cfg: JobsConfig,
  r: Rollout,
  waveIndex: number,
  windows: ReadonlyArray<readonly MaintenanceWindow[]> = [],
): Promise<void> {
  const wave = r.waves[waveIndex];
  if (!wave) throw new RangeError(`rollout ${r.id} has no wave ${waveIndex + 1}`);
  // Named thing groups and canary things must exist (the API checked them); bucket groups are looked up
  // per fleet and the missing ones created.
  const targets =
    wave.kind !== "percent"
      ? await mapLimit(wave.things ?? [], TARGET_CONCURRENCY, (t) => must(thingArn(cfg.iot, t), `thing ${t}`))
      : r.thingGroups.length > 0
        ? await mapLimit(wave.groups ?? [], TARGET_CONCURRENCY, (g) =>
            must(thingGroupArn(cfg.iot, g), `thing group ${g}`),
          )
        : await bucketGroupArns(cfg.iot, r.fleets, wave.groups ?? []);
  const document = buildJobDocument({
    rolloutId: r.id,
    version: r.release,
    region: cfg.region,
    bucket: cfg.bucket,
    manifestKey: r.manifestKey,
    imageKey: r.imageKey,
    rootKeys: await newerRootKeys(cfg.s3, cfg.bucket),
    policy: { healthDeadlineSeconds: r.healthDeadlineSeconds },
    maintenanceWindows: documentWindows(windows),
    ...(r.includeRolledBack ? { includeRolledBack: true } : {}),
  });
  // The document's size (≤ 32 KB) is checked here, where it is built, with the rest of the input.
  const input = createJobInput(r, waveIndex, {
    targets,
    document: JSON.stringify(document),
    presignRoleArn: cfg.presignRoleArn,
    maintenanceWindows: awsMaintenanceWindows(documentWindows(windows)),
  });
  await sendCreateJob(cfg.iot, input);
}

/**
 * CreateJob with a derived id, checked against AWS's limits first: a repeat (a retry after a crash or a
 * lost answer) hits ResourceAlreadyExists, which means the job is there.
 */
export async function sendCreateJob(iot: IoTClient, input: CreateJobCommandInput): Promise<void> {
  checkIotCall("iot:CreateJob", input);
  try {
    await iot.send(new CreateJobCommand(input));
  } catch (err) {
    if (awsErrorName(err) === "ResourceAlreadyExistsException") return;
    throw new CloudCallError(`CreateJob ${input.jobId} failed: ${describeError(err)}`, { cause: err });
  }
}

export async function cancelWaveJob(
  iot: IoTClient,
  jobId: string,
  reason: string,
  reasonCode?: string,
): Promise<void> {
  const input = cancelJobInput(jobId, reason, reasonCode);
  checkIotCall("iot:CancelJob", input);
  try {
    await iot.send(new CancelJobCommand(input));
  } catch (err) {
    const name = awsErrorName(err);
    // Never created, or already canceled / completed: nothing left to cancel.
    if (name === "ResourceNotFoundException" || name === "InvalidStateTransitionException") return;
    throw new CloudCallError(`CancelJob ${jobId} failed: ${describeError(err)}`, { cause: err });
  }
}

export async function observeWave(iot: IoTClient, jobId: string): Promise<Observation> {
  const r = await iot.send(new DescribeJobCommand({ jobId }));
  const job = r.job;
  if (!job) throw new CloudCallError(`DescribeJob ${jobId} returned no job`);
  const details = job.jobProcessDetails as Record<string, unknown> | undefined;
  return {
    jobStatus: job.status ?? "IN_PROGRESS",
    counts: countsFrom(details),
    processing: (job.jobProcessDetails?.processingTargets?.length ?? 0) > 0,
    reasonCode: job.reasonCode,
    comment: job.comment,
  };
}
