/** Runs the real `keel` CLI (bin/keel.mjs) in a temp directory, as an operator would. */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll } from "vitest";
import { type KeyPair, keyPairFromSeed, publicKeyFileText, secretKeyFileText } from "../../core/keys.ts";
import type { RolloutView } from "../../functions/rollout-api/contract.ts";

const KEEL = resolve(import.meta.dirname, "../../bin/keel.mjs");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function keel(cwd: string, ...args: string[]): Promise<RunResult> {
  return new Promise((res) => {
    execFile(process.execPath, [KEEL, ...args], { cwd, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

/** A fresh temp dir removed after the file's tests. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `keel-${prefix}-`));
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes NAME.key / NAME.pub for a deterministic key (seed byte n) into dir; returns the key pair. */
export async function writeKey(dir: string, name: string, n: number): Promise<KeyPair> {
  const k = keyPairFromSeed(new Uint8Array(32).fill(n));
  await writeFile(join(dir, `${name}.key`), secretKeyFileText(k), { mode: 0o600 });
  await writeFile(join(dir, `${name}.pub`), publicKeyFileText(k));
  return k;
}

export type Flags = Record<string, string | readonly string[] | true>;

/**
 * Command-line flags from an object, in the object's order: a camelCase name becomes `--kebab-case`, an
 * array repeats the flag, `true` is a bare flag. `{ releaseKeys: ["a", "b"], force: true }` →
 * `--release-keys a --release-keys b --force`.
 */
export function flags(f: Flags): string[] {
  return Object.entries(f).flatMap(([name, value]) => {
    const flag = `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    if (value === true) return [flag];
    return (typeof value === "string" ? [value] : value).flatMap((v) => [flag, v]);
  });
}

/** `keel root init` in dir with the given flags (see `flags`). */
export function rootInit(dir: string, f: Flags): Promise<RunResult> {
  return keel(dir, "root", "init", ...flags(f));
}

/** `keel root rotate --from FROM` in dir with the given flags (see `flags`). */
export function rootRotate(dir: string, from: string, f: Flags): Promise<RunResult> {
  return keel(dir, "root", "rotate", "--from", from, ...flags(f));
}

/** A RUNNING rollout of 1.2.0 to fleet edge: a finished canary, then wave 2 at 100 % under way. */
export function rolloutViewFixture(): RolloutView {
  const counts = {
    queued: 1,
    inProgress: 1,
    succeeded: 6,
    failed: 2,
    rejected: 0,
    canceled: 0,
    timedOut: 0,
    removed: 0,
  };
  const view: RolloutView = {
    id: "r1",
    release: "1.2.0",
    releaseCounter: 3,
    manifestKey: "m",
    imageKey: "i",
    fleets: ["edge"],
    thingGroups: [],
    waves: [
      {
        kind: "canary",
        things: ["t1"],
        bakeSeconds: 0,
        failureThresholdPercent: 10,
        successThresholdPercent: 90,
        jobId: "keel-r1-w1",
        jobCreatedAt: "x",
        completedAt: "y",
        counts: { ...counts, queued: 0, inProgress: 0, succeeded: 1, failed: 0 },
      },
      {
        kind: "percent",
        percent: 100,
        groups: [],
        bakeSeconds: 0,
        failureThresholdPercent: 30,
        successThresholdPercent: 90,
        jobId: "keel-r1-w2",
        jobCreatedAt: "x",
        counts,
      },
    ],
    current: 1,
    status: "RUNNING",
    maximumPerMinute: 1000,
    inProgressTimeoutMinutes: 60,
    healthDeadlineSeconds: 300,
    forced: false,
    createdAt: "2026-01-01T00:00:00.000Z",
    createdBy: "op",
    updatedAt: "2026-01-01T00:00:00.000Z",
    timeline: [{ at: "2026-01-01T00:00:00.000Z", event: "created" }],
    version: 3,
    devices: [{ thingName: "t1", wave: 1, status: "SUCCEEDED", statusDetails: { version: "1.2.0" }, at: 1 }],
  };
  return view;
}
