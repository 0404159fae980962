/**
 * Where the stand-in keeps job executions, indexed both ways so that every operation costs O(jobs of that
 * thing) or O(things of that job), never O(all executions): thing → job → executions by executionNumber
 * (last = latest), and job → things in creation order.
 */
import { type Execution, getOrCreate, isPending } from "./model.ts";

export class ExecutionIndex {
  private readonly byThing = new Map<string, Map<string, Execution[]>>();
  private readonly byJob = new Map<string, Set<string>>();

  constructor(executions: readonly Execution[] = []) {
    for (const e of executions) {
      this.list(e.thingName, e.jobId).push(e);
      this.thingsOf(e.jobId).add(e.thingName);
    }
    for (const list of this.lists()) list.sort((a, b) => a.executionNumber - b.executionNumber);
  }

  /** Every execution of `jobId` on `thing`, oldest first (created on first use). */
  list(thing: string, jobId: string): Execution[] {
    return getOrCreate(
      getOrCreate(this.byThing, thing, () => new Map<string, Execution[]>()),
      jobId,
      () => [],
    );
  }

  /** Things that have an execution of the job, in creation order (created on first use). */
  thingsOf(jobId: string): Set<string> {
    return getOrCreate(this.byJob, jobId, () => new Set<string>());
  }

  latest(thing: string, jobId: string): Execution | undefined {
    const list = this.byThing.get(thing)?.get(jobId);
    return list?.[list.length - 1];
  }

  /** executionNumber, or the latest when it is omitted. */
  execution(thing: string, jobId: string, executionNumber?: number): Execution | undefined {
    const list = this.byThing.get(thing)?.get(jobId);
    if (!list) return undefined;
    if (executionNumber === undefined) return list[list.length - 1];
    return list.find((e) => e.executionNumber === executionNumber);
  }

  /** Latest execution of each thing of the job, in creation order. */
  *ofJob(jobId: string): Generator<Execution> {
    for (const thing of this.thingsOf(jobId)) {
      const e = this.latest(thing, jobId);
      if (e) yield e;
    }
  }

  /** Latest execution of each job on the thing. */
  ofThing(thing: string): Execution[] {
    const out: Execution[] = [];
    for (const list of this.byThing.get(thing)?.values() ?? []) {
      const e = list[list.length - 1];
      if (e) out.push(e);
    }
    return out;
  }

  /** Pending executions of a thing: IN_PROGRESS first, then QUEUED, each in creation order. */
  pendingOf(thing: string): Execution[] {
    const pending = this.ofThing(thing).filter((e) => isPending(e.status));
    const rank = (e: Execution): number => (e.status === "IN_PROGRESS" ? 0 : 1);
    return pending.sort((a, b) => rank(a) - rank(b) || a.queuedAt - b.queuedAt);
  }

  /** Forgets the thing's executions of the job (the last one deleted). */
  dropThingJob(thing: string, jobId: string): void {
    this.byThing.get(thing)?.delete(jobId);
    this.byJob.get(jobId)?.delete(thing);
  }

  /** Forgets every execution of the job. */
  dropJob(jobId: string): void {
    for (const thing of this.thingsOf(jobId)) this.byThing.get(thing)?.delete(jobId);
    this.byJob.delete(jobId);
  }

  *lists(): Generator<Execution[]> {
    for (const byJob of this.byThing.values()) yield* byJob.values();
  }

  all(): Execution[] {
    const out: Execution[] = [];
    for (const list of this.lists()) out.push(...list);
    return out;
  }
}
