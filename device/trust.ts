/**
 * The device's trust state (docs/architecture.md#releases-and-trust): root 1 shipped in the image (config
 * `trustRoot`), newer roots persisted under stateDir/trust/root.<n>.json once verified, and the latest
 * time seen in accepted metadata (trust/time.json), so a clock stepping backwards cannot revive an
 * expired manifest.
 *
 * Trusted time only moves forward, and only from a release that was accepted in full (signatures,
 * threshold, expiry, hardware, version and counter: an `Acceptance`, which only checkAcceptance makes),
 * and never further than `maxTimeAheadMs` past the node's own clock: a validly signed manifest with a
 * `createdAt` in 2099 can otherwise push trusted time so far that every later release and root reads as
 * expired, stranding the node for good.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { Acceptance } from "../core/acceptance.ts";
import { describeError } from "../core/errors.ts";
import { parseJsonText, parseJsonWith } from "../core/parse.ts";
import type { RootSigned } from "../core/schemas.ts";
import { parseRootEnvelope, type TrustedTime, verifyRole, walkRootChain } from "../core/verify.ts";
import type { AgentClock } from "./clock.ts";
import { StateStoreError } from "./errors.ts";
import { writeFileAtomic } from "./fs-atomic.ts";

const TimeFileSchema = z.strictObject({ latestKnown: z.iso.datetime({ offset: false }) });

/** Default bound of trusted time past the node's clock (agent.json `trustedTime.maxAheadHours`). */
export const DEFAULT_MAX_TIME_AHEAD_MS = 24 * 3600_000;

export interface TrustStoreOptions {
  /** How far past the node's own clock an accepted `createdAt` may move trusted time. */
  maxTimeAheadMs?: number;
}

export class TrustStore {
  readonly dir: string;
  private readonly maxTimeAheadMs: number;
  constructor(
    readonly shippedRootPath: string,
    stateDir: string,
    private readonly clock: AgentClock,
    options: TrustStoreOptions = {},
  ) {
    this.dir = join(stateDir, "trust");
    this.maxTimeAheadMs = options.maxTimeAheadMs ?? DEFAULT_MAX_TIME_AHEAD_MS;
  }

  /** max(clock, latest verified time) is applied by core; this supplies both. */
  async trustedTime(): Promise<TrustedTime> {
    let latestKnown: Date | undefined;
    try {
      const text = await readFile(join(this.dir, "time.json"), "utf8");
      latestKnown = new Date(parseJsonWith(TimeFileSchema, text, "trust/time.json").latestKnown);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    return { now: new Date(this.clock.now()), latestKnown };
  }

  /**
   * Moves trusted time up to the accepted release's `createdAt`, bounded by clock + maxTimeAheadMs;
   * never backwards. Returns the latest known time after the call.
   */
  async advanceTime(acceptance: Acceptance): Promise<Date | undefined> {
    const created = Date.parse(acceptance.release.createdAt);
    const seen = new Date(Math.min(created, this.clock.now() + this.maxTimeAheadMs));
    const t = await this.trustedTime();
    if (t.latestKnown && t.latestKnown >= seen) return t.latestKnown;
    await writeFileAtomic(
      join(this.dir, "time.json"),
      `${JSON.stringify({ latestKnown: seen.toISOString() })}\n`,
    );
    return seen;
  }

  /** Root 1 checks only its own signatures here: expiry applies to the root a walk ends on. */
  private async shippedRoot(): Promise<RootSigned> {
    let text: string;
    try {
      text = await readFile(this.shippedRootPath, "utf8");
    } catch (err) {
      throw new StateStoreError(
        this.shippedRootPath,
        `cannot read the shipped trust root (${describeError(err)})`,
        {
          cause: err,
        },
      );
    }
    const env = parseRootEnvelope(parseJsonText(text, `trust root ${this.shippedRootPath}`));
    verifyRole(env.signed, env.signatures, env.signed, "root");
    return env.signed;
  }

  /** Persisted newer roots, in version order. */
  private async storedRoots(): Promise<unknown[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const versions = names
      .map((n) => /^root\.(\d+)\.json$/.exec(n)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const out: unknown[] = [];
    for (const v of versions) {
      out.push(parseJsonText(await readFile(join(this.dir, `root.${v}.json`)), `trust/root.${v}.json`));
    }
    return out;
  }

  /**
   * The current root: shipped root walked forward through the stored roots, then through `offered`
   * (job rootUrls). Offered roots at or below the current version are skipped; newly verified ones are
   * persisted before they are used.
   */
  async currentRoot(offered: ReadonlyArray<unknown> = []): Promise<RootSigned> {
    const shipped = await this.shippedRoot();
    const time = await this.trustedTime();
    const stored = (await this.storedRoots()).filter((r) => rootVersion(r) > shipped.version);
    let root = walkRootChain(shipped, stored, time);
    const newer = offered
      .filter((r) => rootVersion(r) > root.version)
      .sort((a, b) => rootVersion(a) - rootVersion(b));
    if (newer.length > 0) {
      root = walkRootChain(root, newer, time);
      for (const r of newer) {
        await writeFileAtomic(join(this.dir, `root.${rootVersion(r)}.json`), `${JSON.stringify(r)}\n`);
      }
    }
    return root;
  }
}

/** The version a root document claims (before verification), or 0 when it has none. */
function rootVersion(doc: unknown): number {
  if (typeof doc === "object" && doc !== null && "signed" in doc) {
    const signed = (doc as { signed: unknown }).signed;
    if (typeof signed === "object" && signed !== null && "version" in signed) {
      const v = (signed as { version: unknown }).version;
      if (typeof v === "number") return v;
    }
  }
  return 0;
}
