/**
 * Fleet target and convergence end to end at the function level (docs/fleets.md): the rollout API and
 * advance-rollout on the local cloud, devices as MQTT clients. A rollout that succeeds sets the target and
 * starts ONE CONTINUOUS job on the fleet's 100 bucket groups; nodes registered later get its execution
 * with no further control-plane call; `set-target` is checked, audited and replaces the job; a rollout
 * cancels the fleet's convergence job and convergence resumes when it ends.
 */
import { DescribeJobCommand, GetJobDocumentCommand } from "@aws-sdk/client-iot";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ApiError } from "../../cli/api-client.ts";
import type { FleetStatus, FleetTarget, Rollout } from "../../functions/rollout-api/contract.ts";
import { jobSideCalls } from "../../local/iot/call-counts.ts";
import type { SimDevice } from "./devices.ts";
import { type RolloutHarness, startRolloutHarness } from "./rollout-harness.ts";

let h: RolloutHarness;
const FLEET = "conv";

beforeAll(async () => {
  h = await startRolloutHarness();
});

afterAll(async () => {
  await h?.stop();
});

const fleetStatus = async () => (await h.api.get(`/fleets/${FLEET}`)) as FleetStatus;

/** Waits until the fleet's convergence job for `release` is created (phase running). */
async function convergingTo(release: string): Promise<FleetTarget> {
  let t: FleetTarget | undefined;
  await vi.waitFor(
    async () => {
      t = (await fleetStatus()).target;
      const c = t?.convergence;
      if (t?.release !== release || c?.release !== release || c.phase !== "running")
        throw new Error(`waiting for convergence to ${release}: ${JSON.stringify(t?.convergence)}`);
    },
    { timeout: 15_000, interval: 50 },
  );
  return t as FleetTarget;
}

async function describeJob(jobId: string) {
  const r = await h.cloud.iotClient.send(new DescribeJobCommand({ jobId }));
  if (!r.job) throw new Error(`no job ${jobId}`);
  const d = await h.cloud.iotClient.send(new GetJobDocumentCommand({ jobId }));
  return { job: r.job, document: JSON.parse(d.document ?? "{}") as Record<string, unknown> };
}

/** Registers `n` devices now and waits until each has answered the convergence job `jobId`. */
async function addDevices(prefix: string, n: number, jobId: string): Promise<SimDevice[]> {
  const added: SimDevice[] = [];
  for (let i = 0; i < n; i++) added.push(await h.registerDevice(FLEET, `${prefix}-${i}`, "SUCCEEDED"));
  await h.wiring.tick();
  await vi.waitFor(
    () => {
      const waiting = added.filter((d) => !d.handled.includes(`${jobId}#1`));
      if (waiting.length > 0)
        throw new Error(`${waiting.length} device(s) have no convergence execution yet`);
    },
    { timeout: 15_000, interval: 50 },
  );
  await h.wiring.tick();
  return added;
}

describe("target release and convergence", () => {
  let firstJob: string;

  it("a rollout that succeeds sets the target and starts one CONTINUOUS job on the 100 bucket groups", async () => {
    for (const n of ["conv-a", "conv-b"]) await h.registerDevice(FLEET, n, "SUCCEEDED");
    expect((await fleetStatus()).target).toBeUndefined();
    const created = (await h.api.post("/rollouts", {
      release: "1.1.0",
      fleets: [FLEET],
      waves: [{ percent: 100 }],
    })) as Rollout;
    await h.until(created.id, (r) => r.status === "SUCCEEDED" && r.locksReleased === true, "success");
    const t = await convergingTo("1.1.0");
    expect(t).toMatchObject({ setBy: `rollout ${created.id}`, rolloutId: created.id, releaseCounter: 2 });
    firstJob = t.convergence.jobId ?? "";
    expect(firstJob).toBe(`keel-conv-${FLEET}-1_1_0-g1`);
    const { job, document } = await describeJob(firstJob);
    expect(job.targetSelection).toBe("CONTINUOUS");
    expect(job.targets).toHaveLength(100);
    expect(document).toMatchObject({ version: "1.1.0", convergence: true });
    expect(document.includeRolledBack).toBeUndefined();
    // A repeated tick changes nothing: the same job, no second one.
    await h.wiring.tick();
    expect((await fleetStatus()).target?.convergence).toEqual(t.convergence);
  });

  it("nodes added later get the convergence job's execution; job-side IoT calls do not grow with them", async () => {
    const calls: number[] = [];
    for (const [prefix, n] of [
      ["late2", 2],
      ["late6", 6],
    ] as const) {
      const before = h.cloud.iot.stats().apiCalls;
      const added = await addDevices(prefix, n, firstJob);
      calls.push(
        Object.values(jobSideCalls(before, h.cloud.iot.stats().apiCalls)).reduce((a, b) => a + b, 0),
      );
      for (const d of added)
        expect(d.documents.at(-1)).toMatchObject({ version: "1.1.0", convergence: true });
    }
    expect(calls[0]).toBe(calls[1]);
    expect(calls[0]).toBe(0);
    // The convergence job's events record each converged node's version for `fleet status`.
    await vi.waitFor(
      async () => {
        const late = (await fleetStatus()).things.filter((t) => t.thingName.startsWith("late"));
        expect(late).toHaveLength(8);
        for (const t of late) expect(t).toMatchObject({ version: "1.1.0", lastStatus: "SUCCEEDED" });
      },
      { timeout: 10_000, interval: 50 },
    );
  });

  it("set-target refuses an unknown release, a downgrade and a bad body, each changing nothing", async () => {
    const before = (await fleetStatus()).target;
    const put = (body: unknown) => h.api.put(`/fleets/${FLEET}/target`, body);
    await expect(put({ release: "9.9.9", reason: "typo" })).rejects.toMatchObject({ status: 404 });
    await expect(put({ release: "1.0.0", reason: "go back" })).rejects.toThrow(/downgrade for fleet conv/);
    await expect(put({ release: "1.1.0" })).rejects.toMatchObject({ status: 400 });
    await expect(put({ release: "1.1.0", reason: "x", extra: 1 })).rejects.toBeInstanceOf(ApiError);
    await expect(
      h.api.put("/fleets/Bad!Name/target", { release: "1.1.0", reason: "x" }),
    ).rejects.toMatchObject({ status: 400 });
    expect((await fleetStatus()).target).toEqual(before);
  });

  it("a forced set-target is audited and replaces the convergence job (the old one canceled)", async () => {
    const t = (await h.api.put(`/fleets/${FLEET}/target`, {
      release: "1.0.0",
      reason: "1.1.0 breaks the NIC",
      force: true,
    })) as FleetTarget;
    expect(t).toMatchObject({ release: "1.0.0", forced: true, reason: "1.1.0 breaks the NIC" });
    expect(t.convergence).toMatchObject({ release: "1.0.0", phase: "running", generation: 2 });
    const old = await describeJob(firstJob);
    expect(old.job).toMatchObject({ status: "CANCELED", reasonCode: "KEEL_CONVERGENCE_REPLACED" });
    const audit = (await h.api.get(`/audit?fleet=${FLEET}`)) as { entries: Array<Record<string, unknown>> };
    expect(audit.entries.find((e) => e.action === "fleet.set-target")).toMatchObject({
      action: "fleet.set-target",
      target: FLEET,
      detail: { release: "1.0.0", forced: true, previous: "1.1.0", reason: "1.1.0 breaks the NIC" },
    });
    // Back to 1.1.0 without force: not a downgrade (the fleet reached 1.1.0).
    const back = (await h.api.put(`/fleets/${FLEET}/target`, {
      release: "1.1.0",
      reason: "fixed",
    })) as FleetTarget;
    expect(back.convergence).toMatchObject({ release: "1.1.0", phase: "running", generation: 3 });
  });

  it("a rollout cancels the fleet's convergence job; convergence resumes with a new job when it ends", async () => {
    const running = (await fleetStatus()).target?.convergence.jobId ?? "";
    const created = (await h.api.post("/rollouts", {
      release: "1.1.0",
      fleets: [FLEET],
      waves: [{ percent: 100 }],
    })) as Rollout;
    // Canceled before the rollout's first job was created (the API does it before kicking the engine).
    const paused = await describeJob(running);
    expect(paused.job.status).toBe("CANCELED");
    const wave = await describeJob(`keel-${created.id}-w1`);
    expect((paused.job.lastUpdatedAt?.getTime() ?? 0) <= (wave.job.createdAt?.getTime() ?? 0)).toBe(true);
    await h.until(created.id, (r) => r.status === "SUCCEEDED" && r.locksReleased === true, "success");
    const t = await convergingTo("1.1.0");
    expect(t.convergence.generation).toBe(4);
    expect(t.rolloutId).toBe(created.id);
    expect((await describeJob(t.convergence.jobId ?? "")).job.status).toBe("IN_PROGRESS");
  });
});
