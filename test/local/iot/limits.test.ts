/**
 * The stand-in refuses what AWS refuses, driven by core/aws-limits.ts: one test per kind of constraint
 * (pattern, length, enum, range, decimals, list size, document size) through the real @aws-sdk/client-iot,
 * each proving the refusal is InvalidRequestException 400 naming the member and that nothing changed; and
 * the MQTT data plane refusing clientTokens and statusDetails AWS refuses.
 */
import {
  CancelJobCommand,
  CreateJobCommand,
  type CreateJobCommandInput,
  CreateThingCommand,
  DescribeJobCommand,
  DescribeThingCommand,
  ListJobsCommand,
  ResourceNotFoundException,
} from "@aws-sdk/client-iot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConformanceEnv, Device } from "./helpers.ts";
import { makePlainEnv } from "./helpers.ts";

let env: ConformanceEnv;
let device: Device;
const THING = "limits-1";
const thingArn = (t: string) => `arn:aws:iot:${env.region}:${env.account}:thing/${t}`;

beforeAll(async () => {
  env = await makePlainEnv();
  await env.iot.send(new CreateThingCommand({ thingName: THING }));
  device = await env.connectDevice(THING);
});
afterAll(async () => {
  await device.close();
  await env.close();
});

const createJob = (jobId: string, extra: Partial<CreateJobCommandInput> = {}) =>
  env.iot.send(
    new CreateJobCommand({
      jobId,
      targets: [thingArn(THING)],
      document: JSON.stringify({ op: "install" }),
      ...extra,
    }),
  );

async function refusal(p: Promise<unknown>): Promise<{ name: string; status?: number; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
  throw new Error("expected AWS IoT to refuse the call");
}

/** CreateJob with `extra` is refused for `member`, and the job does not exist afterwards. */
async function expectCreateRefused(jobId: string, extra: Partial<CreateJobCommandInput>, member: RegExp) {
  const e = await refusal(createJob(jobId, extra));
  expect(e).toMatchObject({ name: "InvalidRequestException", status: 400 });
  expect(e.message).toMatch(/validation error/);
  expect(e.message).toMatch(member);
  const jobs = await env.iot.send(new ListJobsCommand({ maxResults: 250 }));
  expect(jobs.jobs?.map((j) => j.jobId)).not.toContain(jobId);
}

describe("AWS IoT input limits on the control plane (real SDK)", () => {
  it("pattern: a CancelJob comment with a newline is refused and the job stays IN_PROGRESS", async () => {
    await createJob("lim-pattern");
    const e = await refusal(
      env.iot.send(new CancelJobCommand({ jobId: "lim-pattern", comment: "operator said:\nstop" })),
    );
    expect(e).toMatchObject({ name: "InvalidRequestException", status: 400 });
    expect(e.message).toMatch(/comment: .* does not match \(pattern=\[\^\\p\{C\}\]\+\)/);
    const after = await env.iot.send(new DescribeJobCommand({ jobId: "lim-pattern" }));
    expect(after.job?.status).toBe("IN_PROGRESS");
    const code = await refusal(
      env.iot.send(new CancelJobCommand({ jobId: "lim-pattern", reasonCode: "lower_case" })),
    );
    expect(code.message).toMatch(/reasonCode/);
  });

  it("length: a 65-character jobId and a 129-character thing name are refused", async () => {
    await expectCreateRefused("j".repeat(65), {}, /jobId: is 65 characters, at most 64 allowed \(max=64\)/);
    const e = await refusal(env.iot.send(new CreateThingCommand({ thingName: "t".repeat(129) })));
    expect(e).toMatchObject({ name: "InvalidRequestException", status: 400 });
    expect(e.message).toMatch(/thingName: is 129 characters/);
    await expect(
      env.iot.send(new DescribeThingCommand({ thingName: "t".repeat(128) })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it("enum: an unknown targetSelection, and an unknown status filter, are refused", async () => {
    await expectCreateRefused(
      "lim-enum",
      { targetSelection: "SOMETIMES" as "SNAPSHOT" },
      /targetSelection: "SOMETIMES" is not one of CONTINUOUS, SNAPSHOT/,
    );
    const e = await refusal(env.iot.send(new ListJobsCommand({ status: "FINISHED" as "COMPLETED" })));
    expect(e.message).toMatch(/status: "FINISHED" is not one of/);
  });

  it("range: an in-progress timeout over 7 days and maxResults over 250 are refused", async () => {
    await expectCreateRefused(
      "lim-range",
      { timeoutConfig: { inProgressTimeoutInMinutes: 10081 } },
      /timeoutConfig\.inProgressTimeoutInMinutes: 10081 is above 10080/,
    );
    const e = await refusal(env.iot.send(new ListJobsCommand({ maxResults: 251 })));
    expect(e.message).toMatch(/maxResults: 251 is above 250/);
  });

  it("decimals: a failure threshold with three decimals and an increment factor with two are refused", async () => {
    await expectCreateRefused(
      "lim-decimals",
      {
        abortConfig: {
          criteriaList: [
            {
              failureType: "FAILED",
              action: "CANCEL",
              thresholdPercentage: 10.999,
              minNumberOfExecutedThings: 1,
            },
          ],
        },
      },
      /abortConfig\.criteriaList\[0\]\.thresholdPercentage: 10\.999 has more than 2 digit/,
    );
    await expectCreateRefused(
      "lim-decimals-2",
      {
        jobExecutionsRolloutConfig: {
          exponentialRate: {
            baseRatePerMinute: 1,
            incrementFactor: 1.55,
            rateIncreaseCriteria: { numberOfNotifiedThings: 1 },
          },
        },
      },
      /incrementFactor: 1\.55 has more than 1 digit/,
    );
    // Two decimals are fine.
    await createJob("lim-decimals-ok", {
      abortConfig: {
        criteriaList: [
          {
            failureType: "FAILED",
            action: "CANCEL",
            thresholdPercentage: 10.99,
            minNumberOfExecutedThings: 1,
          },
        ],
      },
    });
  });

  it("list size: three retry criteria (at most 2) and an empty target list are refused", async () => {
    const criterion = { failureType: "FAILED" as const, numberOfRetries: 1 };
    await expectCreateRefused(
      "lim-list",
      { jobExecutionsRetryConfig: { criteriaList: [criterion, criterion, criterion] } },
      /jobExecutionsRetryConfig\.criteriaList: has 3 items, at most 2 allowed/,
    );
    await expectCreateRefused("lim-list-2", { targets: [] }, /targets: has 0 items, at least 1 needed/);
  });

  it("document size: over 32 KB of UTF-8 is refused even when under 32768 characters", async () => {
    const doc = JSON.stringify({ note: "é".repeat(16_400) });
    expect(doc.length).toBeLessThan(32_768);
    await expectCreateRefused(
      "lim-doc",
      { document: doc },
      /document: is 32811 bytes, at most 32768 allowed/,
    );
  });
});

describe("AWS IoT input limits on the MQTT data plane", () => {
  it("clientToken: longer than 64 characters or not printable ASCII is InvalidRequest", async () => {
    await createJob("lim-mqtt");
    for (const clientToken of ["c".repeat(65), "with space"]) {
      const topic = `${device.base}/lim-mqtt/update`;
      const from = device.messages.length;
      const answer = device.waitFor((m) => m.topic === `${topic}/rejected`, "rejection", from);
      await device.client.publishAsync(topic, JSON.stringify({ status: "IN_PROGRESS", clientToken }), {
        qos: 1,
      });
      const m = await answer;
      expect(m.payload.code).toBe("InvalidRequest");
      expect(String(m.payload.message)).toMatch(/clientToken/);
    }
    // Nothing changed: the execution is still QUEUED (its first accepted update makes version 2).
    const ok = await device.request("lim-mqtt/update", {
      status: "IN_PROGRESS",
      includeJobExecutionState: true,
    });
    expect(ok.payload.executionState).toMatchObject({ status: "IN_PROGRESS", versionNumber: 2 });
  });

  it("stepTimeoutInMinutes: 0 is refused, -1 only on update", async () => {
    const start = await device.request("start-next", { stepTimeoutInMinutes: -1 });
    expect(start.topic.endsWith("/rejected")).toBe(true);
    expect(String(start.payload.message)).toMatch(/stepTimeoutInMinutes: -1 is below 1/);
    const zero = await device.request("lim-mqtt/update", { status: "IN_PROGRESS", stepTimeoutInMinutes: 0 });
    expect(zero.payload.code).toBe("InvalidRequest");
    const cancel = await device.request("lim-mqtt/update", {
      status: "IN_PROGRESS",
      stepTimeoutInMinutes: -1,
    });
    expect(cancel.topic.endsWith("/accepted")).toBe(true);
  });
});
