/**
 * The device's trust state (docs/architecture.md#releases-and-trust): root 1 shipped in the image (config
 * `trustRoot`), newer roots persisted under stateDir/trust/root.<n>.json once verified, and the latest
 * time seen in verified metadata (trust/time.json), so a clock stepping backwards cannot revive an
 * expired manifest.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { parseJsonText, parseJsonWith } from "../core/parse.ts";
import type { RootSigned } from "../core/schemas.ts";
import { parseRootEnvelope, type TrustedTime, verifyRole, walkRootChain } from "../core/verify.ts";
import type { AgentClock } from "./clock.ts";
import { StateStoreError } from "./errors.ts";
import { writeFileAtomic } from "./fs-atomic.ts";

const TimeFileSchema = z.strictObject({ latestKnown: z.iso.datetime({ offset: false }) });

export class TrustStore {
  readonly dir: string;
  constructor(
    readonly shippedRootPath: string,
    stateDir: string,
    private readonly clock: AgentClock,
  ) {
    this.dir = join(stateDir, "trust");
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

  async recordTime(seen: Date): Promise<void> {
    const t = await this.trustedTime();
    if (t.latestKnown && t.latestKnown >= seen) return;
    await writeFileAtomic(
      join(this.dir, "time.json"),
      `${JSON.stringify({ latestKnown: seen.toISOString() })}\n`,
    );
  }

  /** Root 1 checks only its own signatures here: expiry applies to the root a walk ends on. */
  private async shippedRoot(): Promise<RootSigned> {
    let text: string;
    try {
      text = await readFile(this.shippedRootPath, "utf8");
    } catch (err) {
      throw new StateStoreError(
        this.shippedRootPath,
        `cannot read the shipped trust root (${(err as Error).message})`,
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
