/**
 * The IoT Jobs conformance suite: drives the stand-in the way AWS would be driven (the real
 * @aws-sdk/client-iot for the control plane, MQTT.js devices for the data plane), one test per rule of
 * docs/iot-jobs.md, each naming its section there. Reusable over any broker: pass a factory
 * of ConformanceEnv (see helpers.ts).
 */
import {
  AddThingToThingGroupCommand,
  AssociateTargetsWithJobCommand,
  AttachThingPrincipalCommand,
  CancelJobCommand,
  CancelJobExecutionCommand,
  CreateJobCommand,
  type CreateJobCommandInput,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DeleteJobCommand,
  DeleteJobExecutionCommand,
  DeleteThingCommand,
  DescribeEndpointCommand,
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  DescribeThingCommand,
  DetachThingPrincipalCommand,
  GetJobDocumentCommand,
  ListJobExecutionsForJobCommand,
  ListJobExecutionsForThingCommand,
  ListJobsCommand,
  ListThingGroupsForThingCommand,
  ListThingsCommand,
  ListThingsInThingGroupCommand,
  RemoveThingFromThingGroupCommand,
  UpdateCertificateCommand,
  UpdateEventConfigurationsCommand,
  UpdateJobCommand,
} from "@aws-sdk/client-iot";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { IotEvent } from "../../../local/contracts.ts";
import type { ConformanceEnv, Device } from "./helpers.ts";

const MINUTE = 60_000;

export function defineConformanceSuite(name: string, makeEnv: () => Promise<ConformanceEnv>): void {
  describe(`IoT Jobs conformance (${name})`, () => {
    let env: ConformanceEnv;
    const devices: Device[] = [];
    beforeEach(async () => {
      env = await makeEnv();
    });
    afterEach(async () => {
      await Promise.allSettled(devices.splice(0).map((d) => d.close()));
      await env.close();
    });

    const thingArn = (t: string): string => `arn:aws:iot:${env.region}:${env.account}:thing/${t}`;
    const groupArn = (g: string): string => `arn:aws:iot:${env.region}:${env.account}:thinggroup/${g}`;
    const things = async (...names: string[]): Promise<void> => {
      for (const thingName of names) await env.iot.send(new CreateThingCommand({ thingName }));
    };
    const device = async (thing: string): Promise<Device> => {
      await things(thing);
      const d = await env.connectDevice(thing);
      devices.push(d);
      return d;
    };
    const job = (jobId: string, targets: string[], extra: Partial<CreateJobCommandInput> = {}) =>
      env.iot.send(
        new CreateJobCommand({
          jobId,
          targets,
          document: JSON.stringify({ op: "install", v: jobId }),
          ...extra,
        }),
      );
    const describeJob = async (jobId: string) => {
      const r = await env.iot.send(new DescribeJobCommand({ jobId }));
      if (!r.job) throw new Error("DescribeJob returned no job");
      return r.job;
    };
    const execution = async (thingName: string, jobId: string, executionNumber?: number) => {
      const r = await env.iot.send(new DescribeJobExecutionCommand({ thingName, jobId, executionNumber }));
      if (!r.execution) throw new Error("DescribeJobExecution returned no execution");
      return r.execution;
    };
    const update = (d: Device, jobId: string, body: Record<string, unknown>) =>
      d.request(`${jobId}/update`, body);
    const expectRejected = (m: { topic: string; payload: Record<string, unknown> }, code: string) => {
      expect(m.topic.endsWith("/rejected")).toBe(true);
      expect(m.payload.code).toBe(code);
      expect(typeof m.payload.message).toBe("string");
      expect(typeof m.payload.timestamp).toBe("number");
    };
    const sdkError = async (
      p: Promise<unknown>,
    ): Promise<{ name: string; status?: number; message: string }> => {
      try {
        await p;
      } catch (err) {
        const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
        return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
      }
      throw new Error("expected the call to fail");
    };

    // ---------------- §1 MQTT data plane ----------------

    test("§1.2 GetPending: both arrays present when empty, clientToken echoed, epoch-second timestamp", async () => {
      const d = await device("gp-1");
      const r = await d.request("get");
      expect(r.topic).toBe(`${d.base}/get/accepted`);
      expect(r.payload).toMatchObject({ inProgressJobs: [], queuedJobs: [], clientToken: "gp-1-1" });
      expect(String(r.payload.timestamp)).toMatch(/^\d{10}$/);
    });

    test("§1.2 GetPending lists summaries without status or document, IN_PROGRESS and QUEUED apart", async () => {
      const d = await device("gp-2");
      await job("gp-2-a", [thingArn("gp-2")]);
      await job("gp-2-b", [thingArn("gp-2")]);
      await d.request("start-next");
      const r = await d.request("get");
      const inProgress = r.payload.inProgressJobs as Array<Record<string, unknown>>;
      const queued = r.payload.queuedJobs as Array<Record<string, unknown>>;
      expect(inProgress.map((j) => j.jobId)).toEqual(["gp-2-a"]);
      expect(queued.map((j) => j.jobId)).toEqual(["gp-2-b"]);
      expect(Object.keys(queued[0] ?? {}).sort()).toEqual(
        ["executionNumber", "jobId", "lastUpdatedAt", "queuedAt", "versionNumber"].sort(),
      );
      expect(inProgress[0]).toHaveProperty("startedAt");
    });

    test("§1.2 StartNext with nothing pending is accepted without an execution", async () => {
      const d = await device("sn-1");
      const r = await d.request("start-next");
      expect(r.topic).toBe(`${d.base}/start-next/accepted`);
      expect(r.payload).not.toHaveProperty("execution");
      expect(r.payload.clientToken).toBe("sn-1-1");
    });

    test("§1.2 StartNext starts the QUEUED head: IN_PROGRESS, startedAt, statusDetails, version 2, document object", async () => {
      const d = await device("sn-2");
      await job("sn-2-j", [thingArn("sn-2")]);
      const r = await d.request("start-next", { statusDetails: { phase: "download" } });
      const e = r.payload.execution as Record<string, unknown>;
      expect(e).toMatchObject({
        jobId: "sn-2-j",
        thingName: "sn-2",
        status: "IN_PROGRESS",
        statusDetails: { phase: "download" },
        versionNumber: 2,
        executionNumber: 1,
        jobDocument: { op: "install", v: "sn-2-j" },
      });
      expect(typeof e.startedAt).toBe("number");
      expect(String(e.queuedAt)).toMatch(/^\d{10}$/);
    });

    test("§1.2 StartNext on an IN_PROGRESS head changes nothing", async () => {
      const d = await device("sn-3");
      await job("sn-3-j", [thingArn("sn-3")]);
      await d.request("start-next", { statusDetails: { a: "1" } });
      const r = await d.request("start-next", { statusDetails: { a: "2" } });
      expect(r.payload.execution).toMatchObject({
        status: "IN_PROGRESS",
        versionNumber: 2,
        statusDetails: { a: "1" },
      });
    });

    test("§1.2 Describe includes the document by default and omits it when includeJobDocument is false", async () => {
      const d = await device("ds-1");
      await job("ds-1-j", [thingArn("ds-1")]);
      const withDoc = await d.request("ds-1-j/get");
      expect(withDoc.topic).toBe(`${d.base}/ds-1-j/get/accepted`);
      expect(withDoc.payload.execution).toMatchObject({
        status: "QUEUED",
        versionNumber: 1,
        jobDocument: { op: "install" },
      });
      const without = await d.request("ds-1-j/get", { includeJobDocument: false });
      expect(without.payload.execution).not.toHaveProperty("jobDocument");
    });

    test("§1.2 Describe $next: the next pending execution, or accepted without execution when none", async () => {
      const d = await device("ds-2");
      const none = await d.request("$next/get");
      expect(none.topic).toBe(`${d.base}/$next/get/accepted`);
      expect(none.payload).not.toHaveProperty("execution");
      await job("ds-2-j", [thingArn("ds-2")]);
      const some = await d.request("$next/get");
      expect(some.payload.execution).toMatchObject({ jobId: "ds-2-j", status: "QUEUED" });
    });

    test("§1.2 next order: IN_PROGRESS first, then QUEUED in creation order", async () => {
      const d = await device("ord-1");
      await job("ord-1-a", [thingArn("ord-1")]);
      env.clock.advance(1000);
      await job("ord-1-b", [thingArn("ord-1")]);
      env.clock.advance(1000);
      await job("ord-1-c", [thingArn("ord-1")]);
      await update(d, "ord-1-c", { status: "IN_PROGRESS" });
      const first = await d.request("$next/get");
      expect((first.payload.execution as Record<string, unknown>).jobId).toBe("ord-1-c");
      await update(d, "ord-1-c", { status: "SUCCEEDED" });
      const second = await d.request("$next/get");
      expect((second.payload.execution as Record<string, unknown>).jobId).toBe("ord-1-a");
    });

    test("§1.2 Update returns executionState and jobDocument only when asked", async () => {
      const d = await device("up-1");
      await job("up-1-j", [thingArn("up-1")]);
      const plain = await update(d, "up-1-j", { status: "IN_PROGRESS" });
      expect(plain.topic).toBe(`${d.base}/up-1-j/update/accepted`);
      expect(plain.payload).not.toHaveProperty("executionState");
      expect(plain.payload).not.toHaveProperty("jobDocument");
      const full = await update(d, "up-1-j", {
        status: "IN_PROGRESS",
        statusDetails: { pct: "50" },
        includeJobExecutionState: true,
        includeJobDocument: true,
      });
      expect(full.payload.executionState).toEqual({
        status: "IN_PROGRESS",
        statusDetails: { pct: "50" },
        versionNumber: 3,
      });
      expect(full.payload.jobDocument).toEqual({ op: "install", v: "up-1-j" });
    });

    test("§1.3 a queued execution sends notify (QUEUED list) and notify-next (execution with document)", async () => {
      const d = await device("nt-1");
      await job("nt-1-j", [thingArn("nt-1")]);
      const notify = await d.waitFor((m) => m.topic === `${d.base}/notify`, "notify");
      expect(notify.payload.jobs).toMatchObject({
        QUEUED: [{ jobId: "nt-1-j", executionNumber: 1, versionNumber: 1 }],
      });
      expect(notify.payload.jobs).not.toHaveProperty("IN_PROGRESS");
      const next = await d.waitFor((m) => m.topic === `${d.base}/notify-next`, "notify-next");
      expect(next.payload.execution).toMatchObject({
        jobId: "nt-1-j",
        status: "QUEUED",
        jobDocument: { v: "nt-1-j" },
      });
    });

    test("§1.3 QUEUED→IN_PROGRESS of the head sends no notify and no notify-next; detail updates send none", async () => {
      const d = await device("nt-2");
      await job("nt-2-j", [thingArn("nt-2")]);
      await d.waitFor((m) => m.topic === `${d.base}/notify-next`, "notify-next");
      const from = d.messages.length;
      await d.request("start-next");
      await update(d, "nt-2-j", { status: "IN_PROGRESS", statusDetails: { pct: "10" } });
      await d.barrier();
      expect(d.heard("notify", from)).toEqual([]);
      expect(d.heard("notify-next", from)).toEqual([]);
    });

    test("§1.3 when another execution goes IN_PROGRESS and becomes head, notify-next names it", async () => {
      const d = await device("nt-3");
      await job("nt-3-a", [thingArn("nt-3")]);
      await job("nt-3-b", [thingArn("nt-3")]);
      await d.barrier();
      const from = d.messages.length;
      await update(d, "nt-3-b", { status: "IN_PROGRESS" });
      const next = await d.waitFor((m) => m.topic === `${d.base}/notify-next`, "notify-next", from);
      expect((next.payload.execution as Record<string, unknown>).jobId).toBe("nt-3-b");
      expect(d.heard("notify", from)).toEqual([]);
    });

    test("§1.3 the head reaching a terminal state with nothing left sends jobs:{} and a bare notify-next", async () => {
      const d = await device("nt-4");
      await job("nt-4-j", [thingArn("nt-4")]);
      await d.barrier();
      const from = d.messages.length;
      const accepted = await update(d, "nt-4-j", { status: "SUCCEEDED" });
      const notify = await d.waitFor((m) => m.topic === `${d.base}/notify`, "notify", from);
      const next = await d.waitFor((m) => m.topic === `${d.base}/notify-next`, "notify-next", from);
      expect(notify.payload.jobs).toEqual({});
      expect(Object.keys(next.payload)).toEqual(["timestamp"]);
      // The response comes before the notifications it caused.
      expect(d.messages.indexOf(accepted)).toBeLessThan(d.messages.indexOf(notify));
    });

    test("§1.4 InvalidTopic for a jobs topic that maps to no operation", async () => {
      const d = await device("rj-1");
      const r = await d.request("nonsense/extra/parts");
      expectRejected(r, "InvalidTopic");
    });

    test("§1.4 InvalidJson for a payload that is not UTF-8 JSON", async () => {
      const d = await device("rj-2");
      const r = await d.request("get", "{not json");
      expectRejected(r, "InvalidJson");
    });

    test("§1.4 InvalidRequest when status is missing, unknown or has a wrong type", async () => {
      const d = await device("rj-3");
      await job("rj-3-j", [thingArn("rj-3")]);
      expectRejected(await update(d, "rj-3-j", {}), "InvalidRequest");
      expectRejected(await update(d, "rj-3-j", { status: "DONE" }), "InvalidRequest");
      expectRejected(
        await update(d, "rj-3-j", { status: "IN_PROGRESS", expectedVersion: "1" }),
        "InvalidRequest",
      );
      expect((await execution("rj-3", "rj-3-j")).status).toBe("QUEUED");
    });

    test("§2 a device-sent service-only status (QUEUED, TIMED_OUT, REMOVED, CANCELED) is InvalidRequest", async () => {
      const d = await device("rj-4");
      await job("rj-4-j", [thingArn("rj-4")]);
      for (const status of ["QUEUED", "TIMED_OUT", "REMOVED", "CANCELED"]) {
        expectRejected(await update(d, "rj-4-j", { status }), "InvalidRequest");
      }
    });

    test("§1.4 ResourceNotFound for an unknown job or executionNumber", async () => {
      const d = await device("rj-5");
      await job("rj-5-j", [thingArn("rj-5")]);
      expectRejected(await update(d, "no-such-job", { status: "IN_PROGRESS" }), "ResourceNotFound");
      expectRejected(await d.request("rj-5-j/get", { executionNumber: 7 }), "ResourceNotFound");
    });

    test("§1.4 VersionMismatch includes executionState and changes nothing", async () => {
      const d = await device("rj-6");
      await job("rj-6-j", [thingArn("rj-6")]);
      const r = await update(d, "rj-6-j", { status: "IN_PROGRESS", expectedVersion: 5 });
      expectRejected(r, "VersionMismatch");
      expect(r.payload.executionState).toEqual({ status: "QUEUED", statusDetails: {}, versionNumber: 1 });
      const ok = await update(d, "rj-6-j", {
        status: "IN_PROGRESS",
        expectedVersion: 1,
        includeJobExecutionState: true,
      });
      expect(ok.payload.executionState).toMatchObject({ versionNumber: 2 });
    });

    test("§1.4 InvalidStateTransition after a terminal state includes executionState", async () => {
      const d = await device("rj-7");
      await job("rj-7-j", [thingArn("rj-7")]);
      await update(d, "rj-7-j", { status: "SUCCEEDED" });
      const r = await update(d, "rj-7-j", { status: "IN_PROGRESS" });
      expectRejected(r, "InvalidStateTransition");
      expect(r.payload.executionState).toMatchObject({ status: "SUCCEEDED" });
    });

    test("§1.4 rejections of other kinds carry no executionState and echo clientToken", async () => {
      const d = await device("rj-8");
      const r = await update(d, "nope", { status: "IN_PROGRESS" });
      expect(r.payload).not.toHaveProperty("executionState");
      expect(r.payload.clientToken).toBe("rj-8-1");
    });

    const injectFaults: NonNullable<typeof env.standIn.injectFaults> = (rule) => {
      if (!env.standIn.injectFaults) throw new Error("this stand-in has no fault injection");
      env.standIn.injectFaults(rule);
    };

    for (const code of ["InternalError", "RequestThrottled"] as const) {
      test(`§1.4 an injected ${code} on an update changes nothing; the same update sent again is accepted`, async () => {
        const d = await device(`fi-${code}`);
        await job(`fi-${code}-j`, [thingArn(`fi-${code}`)]);
        await update(d, `fi-${code}-j`, { status: "IN_PROGRESS", statusDetails: { phase: "download" } });
        const before = await execution(`fi-${code}`, `fi-${code}-j`);
        injectFaults({ thing: `fi-${code}`, operation: "update", code, count: 1 });
        const body = { status: "SUCCEEDED", statusDetails: { phase: "done" }, expectedVersion: 2 };
        const r = await update(d, `fi-${code}-j`, body);
        expectRejected(r, code);
        expect(r.payload).not.toHaveProperty("executionState");
        expect(r.payload.clientToken).toBe(`fi-${code}-2`);
        const after = await execution(`fi-${code}`, `fi-${code}-j`);
        expect(after).toMatchObject({ status: "IN_PROGRESS", versionNumber: 2 });
        expect(after.statusDetails?.detailsMap).toEqual({ phase: "download" });
        expect(after.lastUpdatedAt).toEqual(before.lastUpdatedAt);
        // expectedVersion still matches: the fault did not bump the version.
        const ok = await update(d, `fi-${code}-j`, body);
        expect(ok.topic).toBe(`${d.base}/fi-${code}-j/update/accepted`);
        expect(await execution(`fi-${code}`, `fi-${code}-j`)).toMatchObject({
          status: "SUCCEEDED",
          versionNumber: 3,
        });
      });
    }

    test("§1.4 an injected fault is consumed after count and matches only its thing, operation and status", async () => {
      const d = await device("fi-n");
      const other = await device("fi-o");
      await job("fi-n-j", [thingArn("fi-n"), thingArn("fi-o")]);
      injectFaults({
        thing: "fi-n",
        operation: "update",
        status: "SUCCEEDED",
        code: "InternalError",
        count: 2,
      });
      // Other things, operations and statuses pass untouched.
      expect((await update(other, "fi-n-j", { status: "SUCCEEDED" })).topic).toMatch(/\/update\/accepted$/);
      expect((await d.request("get")).topic).toBe(`${d.base}/get/accepted`);
      expect((await update(d, "fi-n-j", { status: "IN_PROGRESS" })).topic).toMatch(/\/update\/accepted$/);
      expectRejected(await update(d, "fi-n-j", { status: "SUCCEEDED" }), "InternalError");
      expectRejected(await update(d, "fi-n-j", { status: "SUCCEEDED" }), "InternalError");
      expect((await update(d, "fi-n-j", { status: "SUCCEEDED" })).topic).toMatch(/\/update\/accepted$/);
      expect((await execution("fi-n", "fi-n-j")).status).toBe("SUCCEEDED");
    });

    test("§1.4 injected faults apply to start-next and describe, and a bad count is refused", async () => {
      const d = await device("fi-s");
      await job("fi-s-j", [thingArn("fi-s")]);
      injectFaults({ operation: "start-next", code: "RequestThrottled", count: 1 });
      injectFaults({ thing: "fi-s", operation: "describe", code: "InternalError", count: 1 });
      expectRejected(await d.request("start-next"), "RequestThrottled");
      expect((await execution("fi-s", "fi-s-j")).status).toBe("QUEUED");
      expectRejected(await d.request("fi-s-j/get"), "InternalError");
      expect((await d.request("start-next")).payload).toMatchObject({ execution: { jobId: "fi-s-j" } });
      expect((await d.request("fi-s-j/get")).topic).toBe(`${d.base}/fi-s-j/get/accepted`);
      expect(() => injectFaults({ code: "InternalError", count: 0 })).toThrow(/positive integer/);
    });

    // ---------------- §2 state machine ----------------

    test("§2 versionNumber starts at 1 and each accepted device update adds 1", async () => {
      const d = await device("sm-1");
      await job("sm-1-j", [thingArn("sm-1")]);
      const states: number[] = [];
      for (const status of ["IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]) {
        const r = await update(d, "sm-1-j", { status, includeJobExecutionState: true });
        states.push((r.payload.executionState as { versionNumber: number }).versionNumber);
      }
      expect(states).toEqual([2, 3, 4]);
    });

    test("§2 REJECTED may be sent straight from QUEUED and is terminal", async () => {
      const d = await device("sm-2");
      await job("sm-2-j", [thingArn("sm-2")]);
      const r = await update(d, "sm-2-j", { status: "REJECTED", statusDetails: { reason: "incompatible" } });
      expect(r.topic.endsWith("/accepted")).toBe(true);
      expect(await execution("sm-2", "sm-2-j")).toMatchObject({
        status: "REJECTED",
        statusDetails: { detailsMap: { reason: "incompatible" } },
      });
    });

    test("§2 statusDetails limits: ≤10 pairs, key charset and length, value length, no control characters", async () => {
      const d = await device("sd-1");
      await job("sd-1-j", [thingArn("sd-1")]);
      const eleven = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, "v"]));
      for (const statusDetails of [
        eleven,
        { "bad key": "v" },
        { ["k".repeat(129)]: "v" },
        { k: "x".repeat(1025) },
        { k: "line\nbreak" },
        { k: "" },
      ]) {
        expectRejected(await update(d, "sd-1-j", { status: "IN_PROGRESS", statusDetails }), "InvalidRequest");
      }
      const ten = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k:${i}_-`, "x".repeat(1024)]));
      const ok = await update(d, "sd-1-j", { status: "IN_PROGRESS", statusDetails: ten });
      expect(ok.topic.endsWith("/accepted")).toBe(true);
    });

    test("§2 a new statusDetails map replaces the stored one; an omitted one leaves it", async () => {
      const d = await device("sd-2");
      await job("sd-2-j", [thingArn("sd-2")]);
      await update(d, "sd-2-j", { status: "IN_PROGRESS", statusDetails: { a: "1", b: "2" } });
      await update(d, "sd-2-j", { status: "IN_PROGRESS", statusDetails: { c: "3" } });
      const r = await update(d, "sd-2-j", { status: "IN_PROGRESS", includeJobExecutionState: true });
      expect((r.payload.executionState as Record<string, unknown>).statusDetails).toEqual({ c: "3" });
    });

    test("§2 CancelJobExecution: IN_PROGRESS needs force; force-canceled executions reject later updates", async () => {
      const d = await device("fc-1");
      await job("fc-1-j", [thingArn("fc-1")]);
      await d.request("start-next");
      const refused = await sdkError(
        env.iot.send(new CancelJobExecutionCommand({ jobId: "fc-1-j", thingName: "fc-1" })),
      );
      expect(refused).toMatchObject({ name: "InvalidStateTransitionException", status: 409 });
      await env.iot.send(new CancelJobExecutionCommand({ jobId: "fc-1-j", thingName: "fc-1", force: true }));
      expect(await execution("fc-1", "fc-1-j")).toMatchObject({ status: "CANCELED", forceCanceled: true });
      const r = await update(d, "fc-1-j", { status: "SUCCEEDED" });
      expectRejected(r, "InvalidStateTransition");
    });

    test("§4.2 CancelJobExecution with a stale expectedVersion is VersionConflictException", async () => {
      await things("fc-2");
      await job("fc-2-j", [thingArn("fc-2")]);
      const e = await sdkError(
        env.iot.send(
          new CancelJobExecutionCommand({ jobId: "fc-2-j", thingName: "fc-2", expectedVersion: 9 }),
        ),
      );
      expect(e).toMatchObject({ name: "VersionConflictException", status: 409 });
    });

    test("§2 the in-progress timeout moves the execution to TIMED_OUT", async () => {
      const d = await device("to-1");
      await job("to-1-j", [thingArn("to-1")], { timeoutConfig: { inProgressTimeoutInMinutes: 5 } });
      await d.request("start-next");
      env.clock.advance(2 * MINUTE);
      expect((await execution("to-1", "to-1-j")).approximateSecondsBeforeTimedOut).toBe(180);
      env.clock.advance(3 * MINUTE);
      expect((await execution("to-1", "to-1-j")).status).toBe("TIMED_OUT");
      expectRejected(await update(d, "to-1-j", { status: "SUCCEEDED" }), "InvalidStateTransition");
    });

    test("§2 a step timeout cannot outlast the in-progress deadline; -1 cancels it", async () => {
      const d = await device("to-2");
      await job("to-2-a", [thingArn("to-2")], { timeoutConfig: { inProgressTimeoutInMinutes: 10 } });
      await d.request("start-next", { stepTimeoutInMinutes: 2 });
      env.clock.advance(2 * MINUTE);
      expect((await execution("to-2", "to-2-a")).status).toBe("TIMED_OUT");

      await job("to-2-b", [thingArn("to-2")], { timeoutConfig: { inProgressTimeoutInMinutes: 10 } });
      await update(d, "to-2-b", { status: "IN_PROGRESS", stepTimeoutInMinutes: 60 });
      expect((await execution("to-2", "to-2-b")).approximateSecondsBeforeTimedOut).toBe(600);
      await update(d, "to-2-b", { status: "IN_PROGRESS", stepTimeoutInMinutes: 1 });
      await update(d, "to-2-b", { status: "IN_PROGRESS", stepTimeoutInMinutes: -1 });
      env.clock.advance(5 * MINUTE);
      expect((await execution("to-2", "to-2-b")).status).toBe("IN_PROGRESS");
    });

    test("§2 retry: a FAILED execution is re-queued as executionNumber+1 with retryAttempt+1 until retries run out", async () => {
      const d = await device("rt-1");
      await job("rt-1-j", [thingArn("rt-1")], {
        jobExecutionsRetryConfig: { criteriaList: [{ failureType: "FAILED", numberOfRetries: 1 }] },
      });
      await update(d, "rt-1-j", { status: "FAILED" });
      const next = await d.request("start-next");
      expect(next.payload.execution).toMatchObject({ jobId: "rt-1-j", executionNumber: 2, versionNumber: 2 });
      const list = await env.iot.send(new ListJobExecutionsForJobCommand({ jobId: "rt-1-j" }));
      expect(list.executionSummaries?.[0]?.jobExecutionSummary).toMatchObject({
        executionNumber: 2,
        retryAttempt: 1,
      });
      expect((await execution("rt-1", "rt-1-j", 1)).status).toBe("FAILED");
      await update(d, "rt-1-j", { status: "FAILED" });
      const none = await d.request("start-next");
      expect(none.payload).not.toHaveProperty("execution");
      expect((await describeJob("rt-1-j")).status).toBe("COMPLETED");
    });

    test("§2 retry: TIMED_OUT executions are retried under a TIMED_OUT criterion; REJECTED never is", async () => {
      const d = await device("rt-2");
      await job("rt-2-j", [thingArn("rt-2")], {
        timeoutConfig: { inProgressTimeoutInMinutes: 1 },
        jobExecutionsRetryConfig: { criteriaList: [{ failureType: "ALL", numberOfRetries: 3 }] },
      });
      await d.request("start-next");
      env.clock.advance(MINUTE);
      expect(await execution("rt-2", "rt-2-j")).toMatchObject({ status: "QUEUED", executionNumber: 2 });
      await update(d, "rt-2-j", { status: "REJECTED" });
      expect(await execution("rt-2", "rt-2-j")).toMatchObject({ status: "REJECTED", executionNumber: 2 });
    });

    // ---------------- §3 job level ----------------

    test("§3 jobProcessDetails counts things by status and a SNAPSHOT job completes when all are terminal", async () => {
      const [a, b, c] = [await device("pd-a"), await device("pd-b"), await device("pd-c")];
      await job("pd-j", [thingArn("pd-a"), thingArn("pd-b"), thingArn("pd-c")]);
      await update(a, "pd-j", { status: "SUCCEEDED" });
      await update(b, "pd-j", { status: "IN_PROGRESS" });
      let j = await describeJob("pd-j");
      expect(j.status).toBe("IN_PROGRESS");
      expect(j.jobProcessDetails).toMatchObject({
        numberOfSucceededThings: 1,
        numberOfInProgressThings: 1,
        numberOfQueuedThings: 1,
      });
      await update(b, "pd-j", { status: "FAILED" });
      await update(c, "pd-j", { status: "REJECTED" });
      j = await describeJob("pd-j");
      expect(j.status).toBe("COMPLETED");
      expect(j.completedAt).toBeInstanceOf(Date);
      expect(j.jobProcessDetails).toMatchObject({
        numberOfSucceededThings: 1,
        numberOfFailedThings: 1,
        numberOfRejectedThings: 1,
        numberOfQueuedThings: 0,
        numberOfInProgressThings: 0,
      });
    });

    test("§3 targets: thing groups reach nested groups; unknown targets are ResourceNotFoundException", async () => {
      await things("ng-1", "ng-2", "ng-3");
      await env.iot.send(new CreateThingGroupCommand({ thingGroupName: "ng-root" }));
      await env.iot.send(
        new CreateThingGroupCommand({ thingGroupName: "ng-child", parentGroupName: "ng-root" }),
      );
      await env.iot.send(new AddThingToThingGroupCommand({ thingGroupName: "ng-root", thingName: "ng-1" }));
      await env.iot.send(new AddThingToThingGroupCommand({ thingGroupName: "ng-child", thingName: "ng-2" }));
      await job("ng-j", [groupArn("ng-root")]);
      const list = await env.iot.send(new ListJobExecutionsForJobCommand({ jobId: "ng-j" }));
      expect(list.executionSummaries?.map((s) => s.thingArn).sort()).toEqual([
        thingArn("ng-1"),
        thingArn("ng-2"),
      ]);
      const e = await sdkError(job("ng-k", [groupArn("ng-missing")]));
      expect(e).toMatchObject({ name: "ResourceNotFoundException", status: 404 });
    });

    test("§3 at most 100 targets per job", async () => {
      const targets = Array.from({ length: 101 }, (_, i) => thingArn(`many-${i}`));
      const e = await sdkError(job("too-many", targets));
      expect(e).toMatchObject({ name: "LimitExceededException", status: 410 });
    });

    test("§3 the job document is limited to 32 KB", async () => {
      await things("dl-1");
      const pad = (n: number) => JSON.stringify({ p: "x".repeat(n - 8) });
      expect(pad(32 * 1024).length).toBe(32 * 1024);
      await env.iot.send(
        new CreateJobCommand({ jobId: "dl-ok", targets: [thingArn("dl-1")], document: pad(32 * 1024) }),
      );
      const e = await sdkError(
        env.iot.send(
          new CreateJobCommand({
            jobId: "dl-big",
            targets: [thingArn("dl-1")],
            document: pad(32 * 1024 + 1),
          }),
        ),
      );
      expect(e).toMatchObject({ name: "InvalidRequestException", status: 400 });
      expect(e.message).toMatch(/32768/);
    });

    test("§3 CONTINUOUS: a thing joining a target group gets an execution at once (notify + notify-next); leaving → REMOVED", async () => {
      await env.iot.send(new CreateThingGroupCommand({ thingGroupName: "ct-g" }));
      await job("ct-j", [groupArn("ct-g")], { targetSelection: "CONTINUOUS" });
      const d = await device("ct-1");
      await env.iot.send(new AddThingToThingGroupCommand({ thingGroupName: "ct-g", thingName: "ct-1" }));
      await d.waitFor((m) => m.topic === `${d.base}/notify`, "notify");
      const next = await d.waitFor((m) => m.topic === `${d.base}/notify-next`, "notify-next");
      expect(next.payload.execution).toMatchObject({ jobId: "ct-j", status: "QUEUED", executionNumber: 1 });
      await env.iot.send(new RemoveThingFromThingGroupCommand({ thingGroupName: "ct-g", thingName: "ct-1" }));
      expect((await execution("ct-1", "ct-j")).status).toBe("REMOVED");
      await env.iot.send(new AddThingToThingGroupCommand({ thingGroupName: "ct-g", thingName: "ct-1" }));
      expect(await execution("ct-1", "ct-j")).toMatchObject({ status: "QUEUED", executionNumber: 2 });
      expect((await describeJob("ct-j")).status).toBe("IN_PROGRESS");
    });

    test("§3 AssociateTargetsWithJob adds targets to an IN_PROGRESS CONTINUOUS job only", async () => {
      await things("at-1", "at-2");
      await job("at-c", [thingArn("at-1")], { targetSelection: "CONTINUOUS" });
      await env.iot.send(new AssociateTargetsWithJobCommand({ jobId: "at-c", targets: [thingArn("at-2")] }));
      expect((await execution("at-2", "at-c")).status).toBe("QUEUED");
      expect((await describeJob("at-c")).targets).toEqual([thingArn("at-1"), thingArn("at-2")]);
      await job("at-s", [thingArn("at-1")]);
      const e = await sdkError(
        env.iot.send(new AssociateTargetsWithJobCommand({ jobId: "at-s", targets: [thingArn("at-2")] })),
      );
      expect(e).toMatchObject({ name: "InvalidRequestException", status: 400 });
    });

    test("§3 rollout maximumPerMinute paces execution creation on the stand-in's clock", async () => {
      const names = Array.from({ length: 5 }, (_, i) => `rm-${i}`);
      await things(...names);
      await job("rm-j", names.map(thingArn), { jobExecutionsRolloutConfig: { maximumPerMinute: 2 } });
      const count = async () =>
        (await env.iot.send(new ListJobExecutionsForJobCommand({ jobId: "rm-j" }))).executionSummaries
          ?.length;
      expect(await count()).toBe(2);
      expect((await describeJob("rm-j")).isConcurrent).toBe(true);
      env.clock.advance(MINUTE - 1);
      expect(await count()).toBe(2);
      env.clock.advance(1);
      expect(await count()).toBe(4);
      env.clock.advance(MINUTE);
      expect(await count()).toBe(5);
      expect((await describeJob("rm-j")).isConcurrent).toBe(false);
    });

    test("§3 rollout exponentialRate: the rate grows by incrementFactor per numberOfNotifiedThings", async () => {
      const names = Array.from({ length: 12 }, (_, i) => `ex-${i}`);
      await things(...names);
      await job("ex-j", names.map(thingArn), {
        jobExecutionsRolloutConfig: {
          maximumPerMinute: 5,
          exponentialRate: {
            baseRatePerMinute: 2,
            incrementFactor: 2,
            rateIncreaseCriteria: { numberOfNotifiedThings: 2 },
          },
        },
      });
      const counts: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await env.iot.send(new ListJobExecutionsForJobCommand({ jobId: "ex-j" }));
        counts.push(r.executionSummaries?.length ?? 0);
        env.clock.advance(MINUTE);
      }
      // 2 (base), then 2*2^1=4, then min(5, 2*2^3)=5, then the last 1.
      expect(counts).toEqual([2, 6, 11, 12]);
    });

    test("§3 abortConfig cancels QUEUED executions once the failure share reaches the threshold; IN_PROGRESS keep running", async () => {
      const [a, b] = [await device("ab-a"), await device("ab-b")];
      await things("ab-c");
      await job("ab-j", [thingArn("ab-a"), thingArn("ab-b"), thingArn("ab-c")], {
        abortConfig: {
          criteriaList: [
            {
              failureType: "FAILED",
              action: "CANCEL",
              thresholdPercentage: 50,
              minNumberOfExecutedThings: 1,
            },
          ],
        },
      });
      await update(b, "ab-j", { status: "IN_PROGRESS" });
      await update(a, "ab-j", { status: "FAILED" });
      const j = await describeJob("ab-j");
      expect(j.status).toBe("CANCELED");
      expect(j.comment).toMatch(/abortConfig/);
      expect((await execution("ab-c", "ab-j")).status).toBe("CANCELED");
      expect((await execution("ab-b", "ab-j")).status).toBe("IN_PROGRESS");
    });

    test("§3 CancelJob without force cancels QUEUED only; with force IN_PROGRESS too (forceCanceled)", async () => {
      const [a, b] = [await device("cj-a"), await device("cj-b")];
      await job("cj-j", [thingArn("cj-a"), thingArn("cj-b")]);
      await update(a, "cj-j", { status: "IN_PROGRESS" });
      await env.iot.send(new CancelJobCommand({ jobId: "cj-j", reasonCode: "OPERATOR", comment: "stop" }));
      expect((await execution("cj-b", "cj-j")).status).toBe("CANCELED");
      expect((await execution("cj-a", "cj-j")).status).toBe("IN_PROGRESS");
      await env.iot.send(new CancelJobCommand({ jobId: "cj-j", force: true }));
      expect(await execution("cj-a", "cj-j")).toMatchObject({ status: "CANCELED", forceCanceled: true });
      expect(await describeJob("cj-j")).toMatchObject({
        status: "CANCELED",
        forceCanceled: true,
        reasonCode: "OPERATOR",
      });
      expectRejected(await update(a, "cj-j", { status: "SUCCEEDED" }), "InvalidStateTransition");
      expect(b.thing).toBe("cj-b");
    });

    test("§3 DeleteJob: IN_PROGRESS needs force; the job and its executions disappear", async () => {
      const d = await device("dj-1");
      await job("dj-j", [thingArn("dj-1")]);
      const e = await sdkError(env.iot.send(new DeleteJobCommand({ jobId: "dj-j" })));
      expect(e).toMatchObject({ name: "InvalidStateTransitionException", status: 409 });
      await env.iot.send(new DeleteJobCommand({ jobId: "dj-j", force: true }));
      expect(await sdkError(describeJob("dj-j"))).toMatchObject({ name: "ResourceNotFoundException" });
      expectRejected(await update(d, "dj-j", { status: "IN_PROGRESS" }), "ResourceNotFound");
    });

    test("§4.2 DeleteJobExecution: non-terminal needs force; the execution is gone afterwards", async () => {
      await things("de-1");
      await job("de-j", [thingArn("de-1")]);
      const e = await sdkError(
        env.iot.send(new DeleteJobExecutionCommand({ jobId: "de-j", thingName: "de-1", executionNumber: 1 })),
      );
      expect(e).toMatchObject({ name: "InvalidStateTransitionException" });
      await env.iot.send(
        new DeleteJobExecutionCommand({ jobId: "de-j", thingName: "de-1", executionNumber: 1, force: true }),
      );
      expect(await sdkError(execution("de-1", "de-j"))).toMatchObject({
        name: "ResourceNotFoundException",
        status: 404,
      });
    });

    test("§3 presigned URLs: a fresh URL on each delivery, with the configured expiry, downloadable from S3", async () => {
      const s3 = new S3Client({
        endpoint: env.s3.endpoint,
        region: env.region,
        credentials: env.s3.credentials,
        forcePathStyle: true,
      });
      await s3.send(
        new PutObjectCommand({
          Bucket: env.s3.bucket,
          Key: "releases/1.0.0/image.squashfs",
          Body: "IMAGE-BYTES",
        }),
      );
      s3.destroy();
      const d = await device("ps-1");
      const placeholder = `\${aws:iot:s3-presigned-url:https://s3.${env.region}.amazonaws.com/${env.s3.bucket}/releases/1.0.0/image.squashfs}`;
      await env.iot.send(
        new CreateJobCommand({
          jobId: "ps-j",
          targets: [thingArn("ps-1")],
          document: JSON.stringify({ imageUrl: placeholder }),
          presignedUrlConfig: { roleArn: "arn:aws:iam::000000000000:role/keel-presign", expiresInSec: 120 },
        }),
      );
      const first = (await d.request("ps-j/get")).payload.execution as { jobDocument: { imageUrl: string } };
      // SigV4 dates have one-second resolution (as on AWS), so the second delivery waits for the next second.
      const signedAt = Math.floor(Date.now() / 1000);
      while (Math.floor(Date.now() / 1000) === signedAt) await new Promise((r) => setTimeout(r, 25));
      const second = (await d.request("start-next")).payload.execution as {
        jobDocument: { imageUrl: string };
      };
      expect(first.jobDocument.imageUrl).toMatch(
        /^http:\/\/127\.0\.0\.1:\d+\/keel-test\/releases\/1\.0\.0\/image\.squashfs\?/,
      );
      expect(first.jobDocument.imageUrl).not.toBe(second.jobDocument.imageUrl);
      expect(new URL(first.jobDocument.imageUrl).searchParams.get("X-Amz-Expires")).toBe("120");
      const res = await fetch(second.jobDocument.imageUrl);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("IMAGE-BYTES");
      // Control-plane reads keep the placeholder [inferred].
      const doc = await env.iot.send(new GetJobDocumentCommand({ jobId: "ps-j" }));
      expect(doc.document).toContain(placeholder);
    });

    // ---------------- §4 control plane ----------------

    test("§4.1 SDK error types and statuses: ResourceNotFound 404, ResourceAlreadyExists 409, InvalidRequest 400", async () => {
      expect(await sdkError(env.iot.send(new DescribeThingCommand({ thingName: "ghost" })))).toMatchObject({
        name: "ResourceNotFoundException",
        status: 404,
      });
      await things("er-1");
      await job("er-j", [thingArn("er-1")]);
      expect(await sdkError(job("er-j", [thingArn("er-1")]))).toMatchObject({
        name: "ResourceAlreadyExistsException",
        status: 409,
      });
      const bad = await sdkError(job("bad id!", [thingArn("er-1")]));
      expect(bad).toMatchObject({ name: "InvalidRequestException", status: 400 });
      expect(bad.message).toMatch(/jobId/);
      expect(bad.message).not.toMatch(/at .*\.ts:\d+/);
      const badConfig = await sdkError(
        job("er-k", [thingArn("er-1")], { jobExecutionsRolloutConfig: { maximumPerMinute: 5000 } }),
      );
      expect(badConfig).toMatchObject({ name: "InvalidRequestException", status: 400 });
    });

    test("§4.1 malformed requests get the service's error shape (x-amzn-ErrorType + message), never a stack trace", async () => {
      const bad = await fetch(`${env.controlPlane}/jobs/raw-1`, {
        method: "PUT",
        body: "{not json",
        headers: { "content-type": "application/json" },
      });
      expect(bad.status).toBe(400);
      expect(bad.headers.get("x-amzn-errortype")).toBe("InvalidRequestException");
      const body = (await bad.json()) as Record<string, unknown>;
      expect(Object.keys(body)).toEqual(["message"]);
      expect(String(body.message)).not.toMatch(/\n\s+at /);
      const wrongType = await fetch(`${env.controlPlane}/jobs/raw-2`, {
        method: "PUT",
        body: JSON.stringify({ targets: "x" }),
      });
      expect(wrongType.headers.get("x-amzn-errortype")).toBe("InvalidRequestException");
      expect(((await wrongType.json()) as { message: string }).message).toMatch(/targets/);
      const unknown = await fetch(`${env.controlPlane}/no/such/operation`);
      expect(unknown.status).toBe(404);
      expect(unknown.headers.get("x-amzn-errortype")).toBe("UnknownOperationException");
    });

    test("§2 deleting a thing moves its pending executions to REMOVED", async () => {
      await things("rm-thing");
      await job("rm-thing-j", [thingArn("rm-thing")]);
      await env.iot.send(new DeleteThingCommand({ thingName: "rm-thing" }));
      expect((await execution("rm-thing", "rm-thing-j")).status).toBe("REMOVED");
      expect((await describeJob("rm-thing-j")).jobProcessDetails?.numberOfRemovedThings).toBe(1);
      expect((await describeJob("rm-thing-j")).status).toBe("COMPLETED");
    });

    test("§4.2 CreateThing: an identical repeat succeeds, a different one is ResourceAlreadyExistsException", async () => {
      const a = await env.iot.send(
        new CreateThingCommand({ thingName: "ct:01", attributePayload: { attributes: { hw: "x" } } }),
      );
      const b = await env.iot.send(
        new CreateThingCommand({ thingName: "ct:01", attributePayload: { attributes: { hw: "x" } } }),
      );
      expect(b.thingId).toBe(a.thingId);
      expect(a.thingArn).toBe(thingArn("ct:01"));
      const e = await sdkError(
        env.iot.send(
          new CreateThingCommand({ thingName: "ct:01", attributePayload: { attributes: { hw: "y" } } }),
        ),
      );
      expect(e).toMatchObject({ name: "ResourceAlreadyExistsException", status: 409 });
      const t = await env.iot.send(new DescribeThingCommand({ thingName: "ct:01" }));
      expect(t).toMatchObject({
        thingName: "ct:01",
        attributes: { hw: "x" },
        version: 1,
        defaultClientId: "ct:01",
      });
    });

    test("§4.2 ListThings and ListThingsInThingGroup paginate with maxResults/nextToken; recursive reaches nested groups", async () => {
      const names = Array.from({ length: 7 }, (_, i) => `pg-${i}`);
      await things(...names);
      const seen: string[] = [];
      let nextToken: string | undefined;
      do {
        const page = await env.iot.send(new ListThingsCommand({ maxResults: 3, nextToken }));
        expect(page.things?.length).toBeLessThanOrEqual(3);
        seen.push(...(page.things ?? []).map((t) => t.thingName ?? ""));
        nextToken = page.nextToken;
      } while (nextToken);
      expect(seen).toEqual(names);
      await env.iot.send(new CreateThingGroupCommand({ thingGroupName: "pg-root" }));
      await env.iot.send(
        new CreateThingGroupCommand({ thingGroupName: "pg-kid", parentGroupName: "pg-root" }),
      );
      await env.iot.send(new AddThingToThingGroupCommand({ thingGroupName: "pg-root", thingName: "pg-0" }));
      await env.iot.send(new AddThingToThingGroupCommand({ thingGroupName: "pg-kid", thingName: "pg-1" }));
      const flat = await env.iot.send(new ListThingsInThingGroupCommand({ thingGroupName: "pg-root" }));
      expect(flat.things).toEqual(["pg-0"]);
      const deep = await env.iot.send(
        new ListThingsInThingGroupCommand({ thingGroupName: "pg-root", recursive: true }),
      );
      expect(deep.things).toEqual(["pg-0", "pg-1"]);
      const groups = await env.iot.send(new ListThingGroupsForThingCommand({ thingName: "pg-1" }));
      expect(groups.thingGroups).toEqual([{ groupName: "pg-kid", groupArn: groupArn("pg-kid") }]);
      expect(await sdkError(env.iot.send(new ListThingsCommand({ maxResults: 251 })))).toMatchObject({
        name: "InvalidRequestException",
      });
    });

    test("§4.2 a thing can be in at most 10 groups", async () => {
      await things("mg-1");
      for (let i = 0; i < 11; i++)
        await env.iot.send(new CreateThingGroupCommand({ thingGroupName: `mg-g${i}` }));
      for (let i = 0; i < 10; i++) {
        await env.iot.send(
          new AddThingToThingGroupCommand({ thingGroupName: `mg-g${i}`, thingName: "mg-1" }),
        );
      }
      const e = await sdkError(
        env.iot.send(new AddThingToThingGroupCommand({ thingGroupName: "mg-g10", thingName: "mg-1" })),
      );
      expect(e).toMatchObject({ name: "InvalidRequestException" });
    });

    test("§4.2 certificates: CreateKeysAndCertificate, attach, status changes decide who may connect", async () => {
      await things("cert-1", "cert-2");
      const c = await env.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
      const id = c.certificateId ?? "";
      expect(c.certificateArn).toBe(`arn:aws:iot:${env.region}:${env.account}:cert/${id}`);
      expect(c.keyPair?.PrivateKey).toBeTruthy();
      const auth = env.standIn.authority;
      let changes = 0;
      const off = auth.onChange(() => changes++);
      expect(auth.checkConnect(id, "cert-1")).toMatch(/not attached/);
      await env.iot.send(
        new AttachThingPrincipalCommand({ thingName: "cert-1", principal: c.certificateArn }),
      );
      expect(auth.checkConnect(id, "cert-1")).toBeNull();
      expect(auth.checkConnect(id, "cert-2")).toMatch(/not attached/);
      expect(auth.listActiveCertificates()).toContainEqual({ certificateId: id, things: ["cert-1"] });
      await env.iot.send(new UpdateCertificateCommand({ certificateId: id, newStatus: "INACTIVE" }));
      expect(auth.checkConnect(id, "cert-1")).toMatch(/INACTIVE/);
      await env.iot.send(new UpdateCertificateCommand({ certificateId: id, newStatus: "REVOKED" }));
      const e = await sdkError(
        env.iot.send(new UpdateCertificateCommand({ certificateId: id, newStatus: "ACTIVE" })),
      );
      expect(e).toMatchObject({ name: "CertificateStateException" });
      await env.iot.send(
        new DetachThingPrincipalCommand({ thingName: "cert-1", principal: c.certificateArn }),
      );
      expect(auth.checkConnect("f".repeat(64), "cert-1")).toMatch(/not registered/);
      expect(changes).toBeGreaterThanOrEqual(4);
      off();
    });

    test("§4.2 DescribeEndpoint iot:Data-ATS gives the broker's host:port", async () => {
      const r = await env.iot.send(new DescribeEndpointCommand({ endpointType: "iot:Data-ATS" }));
      expect(r.endpointAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    });

    test("§4.2 ListJobs filters by status; ListJobExecutionsForThing lists the thing's executions; UpdateJob", async () => {
      const d = await device("lj-1");
      await job("lj-a", [thingArn("lj-1")]);
      await job("lj-b", [thingArn("lj-1")]);
      await update(d, "lj-a", { status: "SUCCEEDED" });
      const completed = await env.iot.send(new ListJobsCommand({ status: "COMPLETED" }));
      expect(completed.jobs?.map((j) => j.jobId)).toEqual(["lj-a"]);
      const forThing = await env.iot.send(
        new ListJobExecutionsForThingCommand({ thingName: "lj-1", status: "QUEUED" }),
      );
      expect(forThing.executionSummaries?.map((s) => s.jobId)).toEqual(["lj-b"]);
      await env.iot.send(new UpdateJobCommand({ jobId: "lj-b", description: "changed" }));
      expect((await describeJob("lj-b")).description).toBe("changed");
      const e = await sdkError(
        env.iot.send(
          new UpdateJobCommand({
            jobId: "lj-b",
            jobExecutionsRetryConfig: { criteriaList: [{ failureType: "FAILED", numberOfRetries: 2 }] },
          }),
        ),
      );
      expect(e).toMatchObject({ name: "InvalidRequestException" });
    });

    // ---------------- §5 events ----------------

    test("§5 job and job-execution events are published on $aws/events only once enabled", async () => {
      const observer = await env.connectObserver("$aws/events/#");
      const heard: IotEvent[] = [];
      const off = env.standIn.onEvent((e) => heard.push(e));
      const d = await device("ev-1");
      await job("ev-a", [thingArn("ev-1")]);
      await update(d, "ev-a", { status: "SUCCEEDED" });
      await env.iot.send(
        new UpdateEventConfigurationsCommand({
          eventConfigurations: { JOB: { Enabled: true }, JOB_EXECUTION: { Enabled: true } },
        }),
      );
      await job("ev-b", [thingArn("ev-1")]);
      await update(d, "ev-b", { status: "FAILED", statusDetails: { reason: "disk" } });
      await d.barrier();
      const deadline = Date.now() + 5000;
      while (observer.messages.length < 2 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const topics = observer.messages.map((m) => m.topic).sort();
      expect(topics).toEqual(["$aws/events/job/ev-b/completed", "$aws/events/jobExecution/ev-b/failed"]);
      const exec = observer.messages.find((m) => m.topic.endsWith("/failed"));
      expect(exec?.payload).toMatchObject({
        eventType: "JOB_EXECUTION",
        operation: "failed",
        jobId: "ev-b",
        thingArn: thingArn("ev-1"),
        status: "FAILED",
        statusDetails: { reason: "disk" },
      });
      const completed = observer.messages.find((m) => m.topic.endsWith("/completed"));
      expect(completed?.payload).toMatchObject({
        eventType: "JOB",
        status: "COMPLETED",
        jobProcessDetails: { numberOfFailedThings: 1 },
      });
      // In-process listeners hear every event, enabled or not.
      expect(heard.map((e) => e.topic)).toContain("$aws/events/jobExecution/ev-a/succeeded");
      off();
      await observer.close();
    });

    test("§5 cancel emits cancellation_in_progress then canceled", async () => {
      const heard: string[] = [];
      const off = env.standIn.onEvent((e) => heard.push(e.topic));
      await things("ev-2");
      await job("ev-c", [thingArn("ev-2")]);
      await env.iot.send(new CancelJobCommand({ jobId: "ev-c", comment: "stop" }));
      expect(heard).toEqual([
        "$aws/events/job/ev-c/cancellation_in_progress",
        "$aws/events/jobExecution/ev-c/canceled",
        "$aws/events/job/ev-c/canceled",
      ]);
      off();
    });

    // ---------------- persistence ----------------

    test("restart mid-job: no thing, group, certificate, job or execution is lost; timers resume; devices continue", async () => {
      const d = await device("rs-1");
      await things("rs-2", "rs-3");
      await env.iot.send(new CreateThingGroupCommand({ thingGroupName: "rs-g" }));
      await env.iot.send(new AddThingToThingGroupCommand({ thingGroupName: "rs-g", thingName: "rs-2" }));
      await env.iot.send(new AddThingToThingGroupCommand({ thingGroupName: "rs-g", thingName: "rs-3" }));
      const cert = await env.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
      await env.iot.send(
        new AttachThingPrincipalCommand({ thingName: "rs-1", principal: cert.certificateArn }),
      );
      await job("rs-j", [thingArn("rs-1"), groupArn("rs-g")], {
        timeoutConfig: { inProgressTimeoutInMinutes: 3 },
        jobExecutionsRolloutConfig: { maximumPerMinute: 2 },
      });
      await d.request("start-next", { statusDetails: { phase: "rebooted", slot: "B" } });

      await env.restart();

      expect(env.standIn.authority.checkConnect(cert.certificateId ?? "", "rs-1")).toBeNull();
      expect(
        (await env.iot.send(new ListThingsInThingGroupCommand({ thingGroupName: "rs-g" }))).things,
      ).toEqual(["rs-2", "rs-3"]);
      expect(await execution("rs-1", "rs-j")).toMatchObject({
        status: "IN_PROGRESS",
        versionNumber: 2,
        statusDetails: { detailsMap: { phase: "rebooted", slot: "B" } },
      });
      // The device carries on: start-next returns its IN_PROGRESS execution with statusDetails intact.
      const again = await d.request("start-next");
      expect(again.payload.execution).toMatchObject({
        jobId: "rs-j",
        status: "IN_PROGRESS",
        statusDetails: { slot: "B" },
      });
      // Rollout pacing resumes: the third thing gets its execution in the next minute.
      env.clock.advance(MINUTE);
      expect(
        (await env.iot.send(new ListJobExecutionsForJobCommand({ jobId: "rs-j" }))).executionSummaries,
      ).toHaveLength(3);
      // The in-progress timer resumes too.
      env.clock.advance(2 * MINUTE);
      expect((await execution("rs-1", "rs-j")).status).toBe("TIMED_OUT");
    });
  });
}
