/**
 * The agent's persisted record under stateDir (docs/architecture.md#persisted-state-machine): the state, the job
 * being carried, what each slot holds, the (jobId, executionNumber) keys already taken, and the last
 * result. Written atomically (temp, fsync, rename, fsync dir) BEFORE the step it names starts, so a
 * restart at any instant resumes from a state whose work has not been skipped. Read back through zod:
 * the file is outside input like any other.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { describeError } from "../core/errors.ts";
import { JobDocumentSchema } from "../core/job-document.ts";
import { parseJsonWith } from "../core/parse.ts";
import { ReleaseSignedSchema } from "../core/schemas.ts";
import { StateStoreError } from "./errors.ts";
import { writeFileAtomic } from "./fs-atomic.ts";
import { STATES } from "./state-machine.ts";

const SlotSchema = z.enum(["A", "B"]);
const InstalledSchema = z.strictObject({ version: z.string(), releaseCounter: z.number().int().min(0) });
export type Installed = z.infer<typeof InstalledSchema>;

export const JobKeySchema = z.strictObject({ jobId: z.string(), executionNumber: z.number().int() });
export type JobKey = z.infer<typeof JobKeySchema>;

const TransferSchema = z.strictObject({
  method: z.enum(["delta", "full"]),
  fetched: z.number().int().min(0),
  seeded: z.number().int().min(0),
  size: z.number().int().min(0),
});
export type Transfer = z.infer<typeof TransferSchema>;

/** The job being carried. `key` is null for a standalone install (`keel-agent install`): nobody to report to. */
export const CurrentJobSchema = z.strictObject({
  key: JobKeySchema.nullable(),
  /** Raw document as received (validated in Validating; REJECTED documents are kept for the report). */
  document: z.unknown(),
  /** Filled in Validating once the document parsed. */
  parsed: JobDocumentSchema.nullable(),
  /** Standalone install: manifest text and image source given on the command line. */
  standalone: z.strictObject({ manifestPath: z.string(), image: z.string() }).nullable(),
  /** The verified manifest's signed part, once verified. */
  release: ReleaseSignedSchema.nullable(),
  from: SlotSchema,
  target: SlotSchema,
  fromVersion: z.string().nullable(),
  /** Bytes of the image written and fsynced into the target slot (resume point for a cut download). */
  offset: z.number().int().min(0),
  /** How the image came (docs/delta.md): bytes fetched over the network vs copied from the node's slots. */
  transfer: TransferSchema.optional(),
  /** Why a job ended in Rejected, Failed, RollingBack or RolledBack. */
  reason: z.string().nullable(),
  /**
   * Saved just before the trial boot is written: a restart in Activating that finds it set knows the
   * slot may already have had its one try, and must not arm it again. Defaults to false for old records.
   */
  armed: z.boolean().default(false),
});
export type CurrentJob = z.infer<typeof CurrentJobSchema>;

export const LastResultSchema = z.strictObject({
  state: z.enum(STATES),
  jobId: z.string().nullable(),
  version: z.string().nullable(),
  reason: z.string().nullable(),
  at: z.string(),
});

export const PersistedStateSchema = z.strictObject({
  schemaVersion: z.literal(1),
  state: z.enum(STATES),
  /** How many times the agent started and found itself in `state` (crash/boot-loop detection). */
  entries: z.number().int().min(0),
  job: CurrentJobSchema.nullable(),
  slots: z.strictObject({ A: InstalledSchema.nullable(), B: InstalledSchema.nullable() }),
  /** Job executions already taken, newest last (docs/iot-jobs.md §6.1: dedupe across restarts). */
  handled: z.array(JobKeySchema).max(256),
  lastResult: LastResultSchema.nullable(),
  /**
   * Versions that failed on this node and were rolled back (health, firmware fallback, boot loop). A
   * later job offering one again (a canary targeted by a percent wave) is REJECTED without touching a
   * slot. Defaults to empty so records saved before this field existed still load.
   */
  rolledBack: z.array(z.string()).max(256).default([]),
});
export type PersistedState = z.infer<typeof PersistedStateSchema>;

export const MAX_HANDLED = 64;
export const MAX_ROLLED_BACK = 64;

export function initialState(): PersistedState {
  return {
    schemaVersion: 1,
    state: "Idle",
    entries: 0,
    job: null,
    slots: { A: null, B: null },
    handled: [],
    lastResult: null,
    rolledBack: [],
  };
}

export class StateStore {
  readonly path: string;
  constructor(readonly stateDir: string) {
    this.path = join(stateDir, "state.json");
  }

  /** The saved record, or a fresh Idle one on a node that never saved any. */
  async load(): Promise<PersistedState> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return initialState();
      throw new StateStoreError(this.path, `cannot read (${describeError(err)})`, { cause: err });
    }
    try {
      return parseJsonWith(PersistedStateSchema, text, `agent state ${this.path}`);
    } catch (err) {
      throw new StateStoreError(this.path, describeError(err), { cause: err });
    }
  }

  async save(state: PersistedState): Promise<void> {
    try {
      await writeFileAtomic(this.path, `${JSON.stringify(state, null, 2)}\n`);
    } catch (err) {
      throw new StateStoreError(this.path, `cannot write (${describeError(err)})`, { cause: err });
    }
  }
}
