/**
 * The install pipeline as an ordered list of named steps (docs/style.md#shapes-we-follow, item 5), each the work of one state:
 *   validate  (Validating)  document → trust roots → signed manifest → acceptance → slot size
 *   download  (Downloading) invalidate target if bootable → GET (Range resume) → SHA-256 → write at offset
 *                           → fsync → size and hash must match the manifest
 *   verify    (Verifying)   optional read-back hash of the slot
 *   activate  (Activating)  bootloader: try the new slot once
 * The bootloader is touched only by `download` (invalidate, when the target could be booted) and
 * `activate`, and the latter runs only after size and hash matched. Every step is idempotent: after a
 * crash the agent re-runs the step of the state it finds.
 */
import { createHash } from "node:crypto";
import { checkAcceptance, checkImageDigest } from "../../core/acceptance.ts";
import {
  AcceptanceError,
  ExpiredError,
  ImageMismatchError,
  RootRotationError,
  SchemaError,
  ThresholdError,
} from "../../core/errors.ts";
import { JobDocumentSchema } from "../../core/job-document.ts";
import { MAX_JSON_BYTES, parseJsonText, parseWith } from "../../core/parse.ts";
import { verifyRelease } from "../../core/verify.ts";
import type { BootControl, Slot } from "../boot/types.ts";
import type { AgentClock } from "../clock.ts";
import type { AgentConfig } from "../config.ts";
import { AbortedError, DownloadError, RefusedError, SlotError, SlotTooSmallError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { AgentEvent, State } from "../state-machine.ts";
import type { CurrentJob, Installed, PersistedState } from "../state-store.ts";
import type { TrustStore } from "../trust.ts";
import { fetchImage } from "./delta.ts";
import { fetchSmall, type RetryPolicy } from "./download.ts";
import { releaseDeadBuffers } from "./memory.ts";
import { seedSlots } from "./seed.ts";
import { BlockPipeline, hashSlotRange, SlotWriter, slotSize } from "./slot.ts";

/**
 * Streamed bytes between two releaseDeadBuffers() calls: one block's worth, so at most ~1 MiB of dead
 * socket buffers waits for collection (8 MiB left 25+ MB of backlog in the RSS; bench/install.bench.ts).
 */
const COLLECT_EVERY = 1024 * 1024;

export interface StepContext {
  config: AgentConfig;
  boot: BootControl;
  trust: TrustStore;
  clock: AgentClock;
  logger: Logger;
  /** Aborts on cancel and on agent stop. */
  signal: AbortSignal;
  record: PersistedState;
  job: CurrentJob;
  booted: Slot;
  /** Persists `record` (atomic). */
  save(): Promise<void>;
  /** Best-effort IN_PROGRESS details while a step runs (download progress). */
  progress(details: Record<string, string>): void;
  /** Bytes in the slot so far, after every chunk (a progress bar in `keel-agent install`). */
  onBytes?: (done: number, total: number) => void;
  /** A 403 on a presigned URL: ask the cloud for the job again (fresh URLs) before retrying once. */
  refreshDocument?: () => Promise<void>;
}

export interface StepResult {
  event: AgentEvent;
  reason?: string;
}

export interface InstallStep {
  name: string;
  state: State;
  run(ctx: StepContext): Promise<StepResult>;
}

export function retryPolicy(config: AgentConfig): RetryPolicy {
  return {
    retries: config.download.retries,
    initialBackoffMs: config.download.initialBackoffMs,
    maxBackoffMs: config.download.maxBackoffMs,
    idleTimeoutMs: config.download.idleTimeoutMs,
    headersTimeoutMs: config.download.headersTimeoutMs,
    documentTimeoutMs: config.download.documentTimeoutMs,
    imageTimeoutMs: config.download.imageTimeoutMs,
  };
}

/** What the booted slot runs: its recorded release, else the factory baseline, else unknown. */
export function installedOn(record: PersistedState, config: AgentConfig, slot: Slot): Installed | null {
  return record.slots[slot] ?? config.factory ?? null;
}

/** Errors that mean "this job can never be accepted" (REJECTED, never retried) as opposed to FAILED. */
function isRefusal(err: unknown): boolean {
  return (
    err instanceof SchemaError ||
    err instanceof ThresholdError ||
    err instanceof ExpiredError ||
    err instanceof RootRotationError ||
    err instanceof AcceptanceError ||
    err instanceof SlotTooSmallError ||
    err instanceof RefusedError
  );
}

function requireRelease(job: CurrentJob) {
  if (!job.release) throw new RefusedError("no verified manifest recorded for this job");
  return job.release;
}

function imageSource(job: CurrentJob): string {
  if (job.standalone) return job.standalone.image;
  const doc = parseWith(JobDocumentSchema, job.document, "job document");
  return doc.imageUrl;
}

const validate: InstallStep = {
  name: "validate",
  state: "Validating",
  async run(ctx) {
    const { job, config } = ctx;
    const retry = retryPolicy(config);
    const fetchDocument = (source: string) =>
      fetchSmall(source, MAX_JSON_BYTES, retry, ctx.clock, ctx.signal);
    try {
      let manifestBytes: Uint8Array;
      let jobVersion: string | undefined;
      let roots: unknown[] = [];
      if (job.standalone) {
        manifestBytes = await fetchDocument(job.standalone.manifestPath);
      } else {
        const doc = parseWith(JobDocumentSchema, job.document, "job document");
        job.parsed = doc;
        jobVersion = doc.version;
        if (ctx.record.rolledBack.includes(doc.version)) {
          // A release that already failed health here and was rolled back is not tried again by a later
          // job (a canary targeted again by a percent wave); checked before anything is fetched.
          throw new RefusedError(`release ${doc.version} rolled back on this node`);
        }
        for (const url of doc.rootUrls) {
          roots.push(parseJsonText(await fetchDocument(url), "trust root"));
        }
        manifestBytes = await fetchDocument(doc.manifestUrl);
      }
      const root = await ctx.trust.currentRoot(roots);
      roots = [];
      const verified = verifyRelease(
        parseJsonText(manifestBytes, "release manifest"),
        root,
        await ctx.trust.trustedTime(),
      );
      const release = verified.release;
      const acceptance = checkAcceptance({
        release,
        installed: installedOn(ctx.record, config, ctx.booted),
        hardware: config.hardware,
        jobVersion,
      });
      job.release = release;
      if (acceptance.kind === "same-release") {
        // The release already runs here (a lost SUCCEEDED, or the job re-sent): nothing to write.
        await ctx.trust.advanceTime(acceptance);
        job.target = ctx.booted;
        return { event: "already" };
      }
      const path = config.slots[job.target];
      const capacity = await slotSize(path);
      if (release.image.size > capacity) {
        throw new SlotTooSmallError(
          path,
          `image is ${release.image.size} bytes but slot ${job.target} holds only ${capacity} bytes`,
        );
      }
      // Only now, with every check passed, may the release's createdAt move trusted time (issue 11).
      await ctx.trust.advanceTime(acceptance);
      return { event: "accepted" };
    } catch (err) {
      if (ctx.signal.aborted) throw new AbortedError("validation abandoned", { cause: err });
      if (isRefusal(err)) return { event: "refused", reason: (err as Error).message };
      return { event: "fail", reason: (err as Error).message };
    }
  },
};

const download: InstallStep = {
  name: "download",
  state: "Downloading",
  async run(ctx) {
    const { job, config } = ctx;
    const release = requireRelease(job);
    const path = config.slots[job.target];
    const size = release.image.size;
    // The loader must never pick a half-written slot; a slot it would not boot anyway is left alone, so
    // a refused image on a fresh node leaves the boot environment byte for byte as it was.
    const state = await ctx.boot.readState();
    if (state.slots[job.target].bootable || state.next === job.target) await ctx.boot.invalidate(job.target);
    // Delta updates: the target's old content seeds the new image only if it was a known, verified release.
    const seeds = seedSlots(config.slots, ctx.booted, job.target, ctx.record.slots[job.target] !== null);
    if (ctx.record.slots[job.target] !== null) {
      ctx.record.slots[job.target] = null;
      await ctx.save();
    }
    // A restart mid-download: rebuild the running hash from the bytes already fsynced into the slot.
    const hash = createHash("sha256");
    if (job.offset > 0) {
      ctx.logger.info("resuming download", { offset: job.offset, size });
      await hashSlotRange(path, 0, job.offset, hash, ctx.signal);
    }
    const writer = await SlotWriter.open(path);
    let lastReported = -1;
    let sinceCollect = 0;
    const pipeline = new BlockPipeline(
      writer,
      job.offset,
      config.download.checkpointBytes,
      async (durable) => {
        // Everything below `durable` is fsynced: a restart resumes from here.
        job.offset = durable;
        await ctx.save();
        const pct = Math.floor((durable * 100) / size / 10) * 10;
        if (pct !== lastReported) {
          lastReported = pct;
          ctx.progress({ progress: `${pct}%` });
        }
      },
      Math.min(1024 * 1024, config.download.checkpointBytes),
    );
    try {
      // Delta when the release carries a chunk index, else (or on any delta problem, logged) the full image.
      const r = await fetchImage({
        image: release.image,
        seeds,
        source: () => imageSource(job),
        start: job.offset,
        size,
        retry: retryPolicy(config),
        clock: ctx.clock,
        signal: ctx.signal,
        logger: ctx.logger,
        refresh: ctx.refreshDocument,
        onChunk: async (chunk, position) => {
          hash.update(chunk);
          await pipeline.push(chunk, position);
          sinceCollect += chunk.length;
          if (sinceCollect >= COLLECT_EVERY) {
            sinceCollect = 0;
            releaseDeadBuffers();
          }
          ctx.onBytes?.(position + chunk.length, size);
        },
      });
      await pipeline.finish();
      if (r.overflow) throw new ImageMismatchError("size", size, `more than ${size}`);
      job.transfer = { method: r.method, fetched: r.fetched, seeded: r.seeded, size };
      checkImageDigest({ size, sha256: release.image.sha256 }, { size, sha256: hash.digest("hex") });
      job.offset = size;
      return { event: "downloaded" };
    } catch (err) {
      if (ctx.signal.aborted) throw new AbortedError("download abandoned", { cause: err });
      if (err instanceof ImageMismatchError || err instanceof DownloadError || err instanceof SlotError) {
        // Start over next time: the bytes in the slot are not the release.
        job.offset = 0;
        return { event: "fail", reason: err.message };
      }
      return { event: "fail", reason: (err as Error).message };
    } finally {
      await pipeline.drain();
      await writer.close();
    }
  },
};

const verify: InstallStep = {
  name: "verify",
  state: "Verifying",
  async run(ctx) {
    const { job, config } = ctx;
    const release = requireRelease(job);
    if (job.parsed?.policy.readBack === false) return { event: "verified" };
    try {
      const h = await hashSlotRange(
        config.slots[job.target],
        0,
        release.image.size,
        createHash("sha256"),
        ctx.signal,
      );
      const actual = h.digest("hex");
      if (actual !== release.image.sha256) {
        return {
          event: "fail",
          reason: `read-back of slot ${job.target} does not match: expected sha256 ${release.image.sha256}, read ${actual}`,
        };
      }
      return { event: "verified" };
    } catch (err) {
      if (ctx.signal.aborted) throw new AbortedError("verification abandoned", { cause: err });
      return { event: "fail", reason: (err as Error).message };
    }
  },
};

const activate: InstallStep = {
  name: "activate",
  state: "Activating",
  async run(ctx) {
    const release = requireRelease(ctx.job);
    // What the slot holds is recorded before the bootloader may pick it.
    ctx.record.slots[ctx.job.target] = { version: release.version, releaseCounter: release.releaseCounter };
    await ctx.save();
    await ctx.boot.setTrialBoot(ctx.job.target);
    return { event: "activated" };
  },
};

export const INSTALL_STEPS: ReadonlyArray<InstallStep> = [validate, download, verify, activate];

export function stepFor(state: State): InstallStep | undefined {
  return INSTALL_STEPS.find((s) => s.state === state);
}
