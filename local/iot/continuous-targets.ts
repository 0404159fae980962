/**
 * The registry's hooks into the jobs (docs/iot-jobs.md): a thing that joins a CONTINUOUS job's target
 * group gets its execution at once (outside the rollout pacing); one that leaves has its pending execution
 * REMOVED; a deleted thing's pending executions are REMOVED and it leaves every rollout still to release.
 */
import { type ArnContext, parseTargetArn } from "./arns.ts";
import type { EngineCore } from "./engine-core.ts";
import { executionTransition } from "./execution-machine.ts";
import type { Job } from "./model.ts";
import type { Registry } from "./registry.ts";

export class ContinuousTargets {
  /** CONTINUOUS jobs that may still be IN_PROGRESS: membership changes look only at these. */
  private readonly continuous = new Set<string>();

  constructor(
    private readonly core: EngineCore,
    private readonly ctx: ArnContext,
    private readonly registry: Registry,
  ) {
    for (const j of core.jobs.values()) this.track(j);
    registry.hooks.membershipChanged = (t) => this.onMembershipChanged(t);
    registry.hooks.thingDeleted = (t) => this.onThingDeleted(t);
  }

  /** Follows a job's targets if it is an IN_PROGRESS CONTINUOUS job. */
  track(job: Job): void {
    if (job.targetSelection === "CONTINUOUS" && job.status === "IN_PROGRESS") this.continuous.add(job.jobId);
  }

  private isTargeted(job: Job, thing: string): boolean {
    const groups = this.registry.effectiveGroups(thing);
    return job.targets.some((arn) => {
      const t = parseTargetArn(this.ctx, arn);
      return t !== undefined && (t.kind === "thing" ? t.name === thing : groups.has(t.name));
    });
  }

  private onMembershipChanged(thing: string): void {
    const { core } = this;
    for (const jobId of this.continuous) {
      const job = core.jobs.get(jobId);
      if (job?.status !== "IN_PROGRESS") {
        this.continuous.delete(jobId);
        continue;
      }
      const targeted = this.isTargeted(job, thing);
      const e = core.index.latest(thing, job.jobId);
      core.mutateThing(thing, () => {
        if (targeted && (!e || e.status === "REMOVED")) {
          // Joiners get their execution at once, outside the rollout pacing; the retry count restarts.
          job.pendingRollout = job.pendingRollout.filter((t) => t !== thing);
          core.createExecution(job, thing);
        } else if (!targeted && e && executionTransition(e.status, "remove") !== undefined) {
          core.finish(job, e, "remove");
        } else if (!targeted) {
          job.pendingRollout = job.pendingRollout.filter((t) => t !== thing);
        }
      });
    }
  }

  private onThingDeleted(thing: string): void {
    const { core } = this;
    for (const e of core.index.ofThing(thing)) {
      const job = core.jobs.get(e.jobId);
      if (job && executionTransition(e.status, "remove") !== undefined)
        core.mutateThing(thing, () => core.finish(job, e, "remove"));
    }
    for (const job of core.jobs.values()) {
      if (job.pendingRollout.includes(thing))
        job.pendingRollout = job.pendingRollout.filter((t) => t !== thing);
      core.defer(() => core.checkCompletion(job));
    }
  }
}
