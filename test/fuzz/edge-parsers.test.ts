/**
 * Fuzzing every parser at the device's and core's edge (docs/security.md): the signed manifest, the trust
 * root, the job document, agent.json and every MQTT jobs payload the agent parses. Each input is refused
 * with a named error, or accepted and equal after a JSON round trip; nothing crashes. Runs are bounded
 * (the whole suite well under 30 s); KEEL_FUZZ_RUNS=N multiplies them.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalize } from "../../core/canonical-json.ts";
import { JobDocumentSchema } from "../../core/job-document.ts";
import { parseJsonText, parseJsonWith } from "../../core/parse.ts";
import {
  parseReleaseEnvelope,
  parseRootEnvelope,
  verifyInitialRoot,
  verifyRelease,
} from "../../core/verify.ts";
import { parseAgentConfig } from "../../device/config.ts";
import { type JobExecution, JobExecutionSchema, JobsClient } from "../../device/jobs-client.ts";
import { createLogger } from "../../device/logger.ts";
import { key, makeRelease, makeRoot, NOW, sign, wire } from "../core/fixtures.ts";
import { recordingClock } from "../device/helpers/node.ts";
import { documentBytes, expectNamed, mutated, refusedOrRoundTrips } from "./generators.ts";
import { fuzzRuns } from "./runs.ts";

const [rootKey, releaseKey] = [key(21), key(22)] as [ReturnType<typeof key>, ReturnType<typeof key>];
const root = makeRoot({ rootKeys: [rootKey], releaseKeys: [releaseKey] });
const rootEnvelope = wire(sign(root, [rootKey]));
const release = makeRelease();
const manifest = wire(sign(release, [releaseKey]));
const time = { now: NOW };

describe("fuzz: signed metadata", () => {
  it("release manifest: refused by name, or exactly the signed release", () => {
    fc.assert(
      fc.property(documentBytes(manifest), (bytes) => {
        const v = refusedOrRoundTrips(
          () => verifyRelease(parseJsonText(bytes, "release manifest"), root, time).release,
          (text) => parseReleaseEnvelope({ signed: parseJsonText(text, "again"), signatures: [] }).signed,
        );
        // Whatever got through verification is byte for byte what the release key signed.
        if (v !== undefined) expect(canonicalize(v)).toBe(canonicalize(release));
      }),
      { numRuns: fuzzRuns(300) },
    );
  });

  it("manifest envelope shape: refused by name or round-trips (signatures not checked)", () => {
    fc.assert(
      fc.property(documentBytes(manifest), (bytes) => {
        refusedOrRoundTrips(
          () => parseReleaseEnvelope(parseJsonText(bytes, "release manifest")),
          (text) => parseReleaseEnvelope(parseJsonText(text, "again")),
        );
      }),
      { numRuns: fuzzRuns(300) },
    );
  });

  it("trust root: refused by name, or exactly the signed root", () => {
    fc.assert(
      fc.property(documentBytes(rootEnvelope), (bytes) => {
        const v = refusedOrRoundTrips(
          () => verifyInitialRoot(parseJsonText(bytes, "trust root"), time),
          (text) => parseRootEnvelope({ signed: parseJsonText(text, "again"), signatures: [] }).signed,
        );
        if (v !== undefined) expect(canonicalize(v)).toBe(canonicalize(root));
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});

const jobDocument = {
  operation: "keel.update",
  schemaVersion: 1,
  rolloutId: "r-1",
  version: "1.2.0",
  manifestUrl: "https://bucket.s3.amazonaws.com/releases/1.2.0/release.json?X-Amz-Signature=abc",
  imageUrl: "https://bucket.s3.amazonaws.com/releases/1.2.0/image.squashfs",
  rootUrls: ["https://bucket.s3.amazonaws.com/trust/root.2.json"],
  policy: { healthDeadlineSeconds: 120, readBack: true },
};

describe("fuzz: job document and agent.json", () => {
  it("job document: refused by name or round-trips", () => {
    fc.assert(
      fc.property(documentBytes(jobDocument), (bytes) => {
        refusedOrRoundTrips(
          () => parseJsonWith(JobDocumentSchema, bytes, "job document"),
          (text) => parseJsonWith(JobDocumentSchema, text, "again"),
        );
      }),
      { numRuns: fuzzRuns(300) },
    );
  });

  const agentJson = {
    thingName: "node-1",
    hardware: "rpi4",
    stateDir: "state",
    trustRoot: "root.json",
    slots: { A: "/dev/disk/by-partlabel/keel-a", B: "/dev/disk/by-partlabel/keel-b" },
    bootloader: { type: "grub", envFile: "grubenv" },
    mqtt: { endpoint: "mqtts://iot.example:8883", cert: "c.pem", key: "k.pem", ca: "ca.pem" },
    health: [{ type: "command", command: "true", retries: 0, intervalSeconds: 0 }],
    factory: { version: "1.0.0", releaseCounter: 1 },
    download: { retries: 3, idleTimeoutMs: 1000 },
    trustedTime: { maxAheadHours: 1 },
  };

  it("agent.json: refused with AgentConfigError or round-trips", () => {
    fc.assert(
      fc.property(documentBytes(agentJson), (bytes) => {
        refusedOrRoundTrips(
          () => parseAgentConfig(parseJsonText(bytes, "agent config"), "/etc/keel"),
          (text) => parseAgentConfig(parseJsonText(text, "again"), "/etc/keel"),
        );
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});

describe("fuzz: MQTT jobs payloads", () => {
  const thing = "node-1";
  const execution = {
    execution: {
      jobId: "keel-r-1-w1",
      status: "QUEUED",
      executionNumber: 1,
      versionNumber: 1,
      statusDetails: { progress: "0%" },
      jobDocument,
    },
    clientToken: "t-1",
  };
  const rejected = { code: "InvalidStateTransition", message: "no", clientToken: "t-1" };
  const topics = [
    "notify-next",
    "$next/get/accepted",
    "start-next/accepted",
    "keel-r-1-w1/get/accepted",
    "keel-r-1-w1/update/accepted",
    "start-next/rejected",
    "keel-r-1-w1/update/rejected",
    "notify",
    "keel-r-1-w1/get",
  ].map((t) => `$aws/things/${thing}/jobs/${t}`);

  it("every topic kind: never throws, and only valid executions reach the agent, unchanged", () => {
    const seen: JobExecution[] = [];
    const logger = createLogger({ write: () => {}, level: "error" });
    const client = new JobsClient({
      thingName: thing,
      mqtt: { endpoint: "mqtts://unused:8883", cert: "", key: "", ca: "" },
      clock: recordingClock(),
      logger,
      onExecution: (e) => void seen.push(e),
      onNextChanged: (e) => void (e && seen.push(e)),
    });
    // The private switch every MQTT message goes through (the broker is not what is under test here).
    const dispatch = (topic: string, payload: Buffer) =>
      (client as unknown as { dispatch(t: string, p: Buffer): void }).dispatch(topic, payload);
    const payload = fc.oneof(documentBytes(execution), documentBytes(rejected));
    fc.assert(
      fc.property(fc.constantFrom(...topics), payload, (topic, bytes) => {
        seen.length = 0;
        dispatch(topic, Buffer.from(bytes));
        for (const e of seen) {
          // What the agent is handed passes the schema again and survives a JSON round trip.
          expect(JobExecutionSchema.parse(JSON.parse(JSON.stringify(e)))).toEqual(e);
        }
      }),
      { numRuns: fuzzRuns(300) },
    );
  });

  it("a job execution: refused by name or round-trips", () => {
    fc.assert(
      fc.property(documentBytes(execution.execution), (bytes) => {
        try {
          const v = parseJsonText(bytes, "execution");
          const r = JobExecutionSchema.safeParse(v);
          if (r.success) expect(JobExecutionSchema.parse(JSON.parse(JSON.stringify(r.data)))).toEqual(r.data);
        } catch (err) {
          expectNamed(err);
        }
      }),
      { numRuns: fuzzRuns(200) },
    );
  });
});

describe("fuzz: the generators reach what they must", () => {
  it("produce __proto__ members, repeated members and truncations", () => {
    const texts = fc
      .sample(documentBytes(manifest), { numRuns: 2000, seed: 1 })
      .map((b) => Buffer.from(b).toString("utf8"));
    expect(texts.some((t) => t.includes('"__proto__"'))).toBe(true);
    expect(texts.some((t) => /"([^"]+)":null,"\1":/.test(t))).toBe(true);
    expect(texts.some((t) => !t.endsWith("}"))).toBe(true);
    expect(fc.sample(mutated({ a: { b: 1 } }), { numRuns: 200, seed: 2 }).length).toBe(200);
  });
});
