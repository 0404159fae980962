/**
 * Fuzzed manifests and job documents through the real install pipeline on a simulated node with a real
 * GRUB environment block: whatever the input, the boot environment is byte-identical afterwards unless
 * the genuine release was installed in full (then it is reset for the next case). KEEL_FUZZ_RUNS scales.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activate, download, validate, verify } from "../../device/install/steps.ts";
import { initialState } from "../../device/state-store.ts";
import { AWAIT_REBOOT, type StateContext } from "../../device/states/context.ts";
import { TrustStore } from "../../device/trust.ts";
import { type FileServer, startFileServer } from "../device/helpers/http-server.ts";
import { makeNode, recordingClock, type TestNode } from "../device/helpers/node.ts";
import { makeSigners, randomImage, signRelease } from "../device/helpers/release.ts";
import { documentBytes, mutated } from "./generators.ts";
import { fuzzRuns } from "./runs.ts";

/** The event each step ends with when it succeeded; anything else stops the pipeline. */
const SUCCESS = new Set(["accepted", "downloaded", "verified", "activated"]);

describe("fuzz: the install pipeline never changes the boot environment for bad input", () => {
  let dir: string;
  let node: TestNode;
  let server: FileServer;
  let envBefore: Buffer;
  let manifest: unknown;
  let jobDocument: Record<string, unknown>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "keel-fuzz-install-"));
    const signers = makeSigners();
    node = await makeNode({
      dir,
      signers,
      config: {
        // Every request either answers at once (local server) or is a bad URL: keep failures quick.
        download: {
          retries: 0,
          initialBackoffMs: 1,
          maxBackoffMs: 4,
          checkpointBytes: 65536,
          headersTimeoutMs: 2000,
          idleTimeoutMs: 2000,
          documentTimeoutMs: 5000,
        },
      },
    });
    const image = randomImage(8192);
    await writeFile(join(dir, "image.squashfs"), image);
    manifest = signRelease(signers, { version: "1.1.0", releaseCounter: 2, image });
    await writeFile(join(dir, "release.json"), JSON.stringify(manifest));
    server = await startFileServer();
    server.add("/release.json", join(dir, "release.json"));
    server.add("/image.squashfs", join(dir, "image.squashfs"));
    jobDocument = {
      operation: "keel.update",
      schemaVersion: 1,
      rolloutId: "r-1",
      version: "1.1.0",
      manifestUrl: server.url("/release.json"),
      imageUrl: server.url("/image.squashfs"),
      rootUrls: [],
      policy: { healthDeadlineSeconds: 60, readBack: true },
    };
    envBefore = await node.envBytes();
  });
  afterAll(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** After a case: identical env unless the whole pipeline succeeded; then put the env back. */
  async function expectEnvUntouched(installed: boolean): Promise<void> {
    const after = await node.envBytes();
    if (installed) {
      await writeFile(
        node.config.bootloader.type === "grub" ? node.config.bootloader.envFile : "",
        envBefore,
      );
      return;
    }
    expect(Buffer.compare(after, envBefore)).toBe(0);
  }

  it("standalone install of a fuzzed manifest", async () => {
    await fc.assert(
      fc.asyncProperty(documentBytes(manifest), async (bytes) => {
        const path = join(dir, "fuzzed.json");
        await writeFile(path, bytes);
        const r = await node
          .agent({ clock: recordingClock() })
          .installStandalone(path, join(dir, "image.squashfs"));
        const installed = r.state === "Rebooting";
        // Only the genuine signed manifest can get this far.
        if (installed) expect(JSON.parse(Buffer.from(bytes).toString("utf8"))).toEqual(manifest);
        await expectEnvUntouched(installed);
        if (installed) await rm(node.config.stateDir, { recursive: true, force: true });
      }),
      { numRuns: fuzzRuns(20) },
    );
  });

  /** Runs the four install steps on `document`; true when every one succeeded (the slot is set to be tried). */
  async function runPipeline(document: unknown): Promise<boolean> {
    const clock = recordingClock();
    const signal = new AbortController().signal;
    const ctx: StateContext = {
      config: node.config,
      boot: node.boot,
      trust: new TrustStore(node.config.trustRoot, node.config.stateDir, clock),
      clock,
      logger: node.logger,
      signal,
      stopSignal: signal,
      record: initialState(),
      job: {
        key: { jobId: "keel-r-1", executionNumber: 1 },
        document,
        parsed: null,
        standalone: null,
        release: null,
        from: "A",
        target: "B",
        fromVersion: "1.0.0",
        offset: 0,
        reason: null,
        armed: false,
      },
      booted: "A",
      save: async () => {},
      progress: () => {},
      // The pipeline ends at activation: nothing past it may run here.
      reboot: async () => AWAIT_REBOOT,
      checkHealth: async () => ({ ok: false, reason: "not part of the install pipeline" }),
      runHook: async () => {},
      report: async () => {},
    };
    for (const step of [validate, download, verify, activate]) {
      const result = await step.run(ctx);
      if (!("event" in result) || !SUCCESS.has(result.event)) return false;
    }
    return true;
  }

  it("a fuzzed job document through validate → download → verify → activate", async () => {
    await fc.assert(
      fc.asyncProperty(mutated(jobDocument), async (document) => {
        await expectEnvUntouched(await runPipeline(document));
      }),
      { numRuns: fuzzRuns(40) },
    );
  });

  it("the genuine job document does install (the properties above are not vacuous)", async () => {
    expect(await runPipeline(jobDocument)).toBe(true);
    expect(Buffer.compare(await node.envBytes(), envBefore)).not.toBe(0);
    await expectEnvUntouched(true);
    expect(Buffer.compare(await node.envBytes(), envBefore)).toBe(0);
  });
});
