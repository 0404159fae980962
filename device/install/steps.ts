/**
 * The install pipeline's handlers (docs/agent.md), each the work of one state, registered with the others
 * in device/states/registry.ts:
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
  describeError,
  ExpiredError,
  ImageMismatchError,
  RootRotationError,
  SchemaError,
  ThresholdError,
} from "../../core/errors.ts";
import { JOB_OPERATION, JobDocumentSchema } from "../../core/job-document.ts";
import { MAX_JSON_BYTES, parseJsonText, parseWith } from "../../core/parse.ts";
import { verifyRelease } from "../../core/verify.ts";
import type { Slot } from "../boot/types.ts";
import type { AgentConfig } from "../config.ts";
import {
  AbortedError,
  DownloadError,
  ExpiredUrlError,
  RefusedError,
  SlotError,
  SlotTooSmallError,
} from "../errors.ts";
import { assertWritable } from "../slot-identity.ts";
import type { CurrentJob, Installed, PersistedState } from "../state-store.ts";
import type { StateContext, StateHandler } from "../states/context.ts";
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

/** Whether the booted slot is committed (good) and holds `version`: nothing to install. */
async function alreadyCommitted(ctx: StateContext, version: string): Promise<boolean> {
  if (installedOn(ctx.record, ctx.config, ctx.booted)?.version !== version) return false;
  const boot = await ctx.boot.readState();
  return boot.slots[ctx.booted].good;
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

/**
 * Runs a fetch; when its presigned URL has expired (HTTP 403) and the job came from the cloud, asks IoT
 * Jobs for the job again (fresh URLs) and retries, once per fetch: a second 403 on a fresh URL is final.
 */
async function withFreshUrls<T>(ctx: StateContext, fetch: () => Promise<T>): Promise<T> {
  try {
    return await fetch();
  } catch (err) {
    if (!(err instanceof ExpiredUrlError) || !ctx.refreshDocument || ctx.job.key === null) throw err;
    await ctx.refreshDocument();
    return fetch();
  }
}

/**
 * A job that is not Keel's is REJECTED, not left alone: keel-agent takes its jobs with start-next, which
 * claims the head of the thing's queue, and IoT Jobs runs a thing's jobs in order, so a job left
 * IN_PROGRESS for "another handler" would hold back every Keel job queued behind it. A KeelOS thing has
 * one Jobs handler, this agent; other work goes through Keel releases or a thing of its own.
 */
function refuseForeignJob(document: unknown): void {
  const op =
    typeof document === "object" && document !== null && !Array.isArray(document)
      ? (document as Record<string, unknown>).operation
      : undefined;
  if (op === JOB_OPERATION) return;
  throw new RefusedError(
    `not a Keel job (operation ${op === undefined ? "missing" : JSON.stringify(op).slice(0, 64)}, expected "${JOB_OPERATION}"): keel-agent handles every job of this thing and rejects what it cannot run, so later jobs are not held back`,
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

export const validate: StateHandler = {
  name: "validate",
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
        refuseForeignJob(job.document);
        const doc = parseWith(JobDocumentSchema, job.document, "job document");
        job.parsed = doc;
        jobVersion = doc.version;
        if (await alreadyCommitted(ctx, doc.version)) {
          // The booted, committed slot runs this release (a node already on its fleet's target, a lost
          // SUCCEEDED): report the truth without fetching anything, not even the manifest.
          job.target = ctx.booted;
          return { event: "already" };
        }
        if (ctx.record.rolledBack.includes(doc.version) && doc.includeRolledBack !== true) {
          // A release that already failed health here and was rolled back is not tried again by a later
          // job (a canary targeted again by a percent wave, a fleet's convergence job); only an operator's
          // retry that names rolled-back nodes may. Checked before anything is fetched.
          throw new RefusedError(
            `release ${doc.version} rolled back on this node${doc.convergence ? "; convergence never moves a node to it" : ""}`,
          );
        }
        // Presigned URLs expire (an hour at most): a job that waited longer is fetched with a fresh document.
        const fresh = (pick: (d: typeof doc) => string) =>
          withFreshUrls(ctx, () =>
            fetchDocument(pick(parseWith(JobDocumentSchema, job.document, "job document"))),
          );
        for (let i = 0; i < doc.rootUrls.length; i++) {
          roots.push(parseJsonText(await fresh((d) => d.rootUrls[i] ?? ""), "trust root"));
        }
        manifestBytes = await fresh((d) => d.manifestUrl);
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
      if (isRefusal(err)) return { event: "refused", reason: describeError(err) };
      return { event: "fail", reason: describeError(err) };
    }
  },
};

export const download: StateHandler = {
  name: "download",
  async run(ctx) {
    const { job, config } = ctx;
    const release = requireRelease(job);
    const path = config.slots[job.target];
    const size = release.image.size;
    await assertWritable(config.slots, job.target, ctx.booted);
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
      // Bytes handed to the pipeline so far: where a fetch after a refreshed URL resumes.
      let next = job.offset;
      let refreshedAt = -1;
      let r: Awaited<ReturnType<typeof fetchImage>>;
      for (;;) {
        try {
          // Delta when the release carries a chunk index, else (or on any delta problem, logged) the full
          // image (docs/delta.md).
          r = await fetchImage({
            image: release.image,
            seeds,
            source: () => imageSource(job),
            start: next,
            size,
            retry: retryPolicy(config),
            clock: ctx.clock,
            signal: ctx.signal,
            logger: ctx.logger,
            onChunk: async (chunk, position) => {
              hash.update(chunk);
              await pipeline.push(chunk, position);
              next = position + chunk.length;
              sinceCollect += chunk.length;
              if (sinceCollect >= COLLECT_EVERY) {
                sinceCollect = 0;
                releaseDeadBuffers();
              }
              ctx.onBytes?.(next, size);
            },
          });
          break;
        } catch (err) {
          // An expired URL, however long the download has run: a fresh document for each resume point,
          // but never twice at the same byte (a fresh URL refused again is final).
          if (!(err instanceof ExpiredUrlError) || !ctx.refreshDocument || !job.key || next === refreshedAt)
            throw err;
          refreshedAt = next;
          ctx.logger.warn("image URL expired; resuming with a fresh job document", { position: next });
          await ctx.refreshDocument();
        }
      }
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
      return { event: "fail", reason: describeError(err) };
    } finally {
      await pipeline.drain();
      await writer.close();
    }
  },
};

export const verify: StateHandler = {
  name: "verify",
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
      return { event: "fail", reason: describeError(err) };
    }
  },
};

export const activate: StateHandler = {
  name: "activate",
  async run(ctx) {
    const { job } = ctx;
    const release = requireRelease(job);
    // A cut after the trial was written, and the firmware booted the new slot: the trial is under way.
    if (ctx.booted === job.target) return { event: "activated" };
    if (job.armed) {
      const boot = await ctx.boot.readState();
      // Written and not tried yet (a kill without a power cut): nothing to write again.
      if (boot.next === job.target) return { event: "activated" };
      // Written, tried, fell back: the slot had its one try. Arming it again would try it twice.
      if (boot.slots[job.target].bootable || boot.trial === job.target) {
        return { event: "booted-old", reason: "new slot never came up" };
      }
      // Otherwise the write never landed (the target is still invalidated): arming it now is its first try.
    }
    // What the slot holds, and that the trial is about to be written, are recorded before the loader may pick it.
    ctx.record.slots[job.target] = { version: release.version, releaseCounter: release.releaseCounter };
    job.armed = true;
    await ctx.save();
    await ctx.boot.setTrialBoot(job.target);
    return { event: "activated" };
  },
};
