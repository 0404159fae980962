/**
 * Fuzzing the rollout API handler (the real one, over dynalite and the IoT stand-in): generated methods,
 * paths (route shapes with hostile segments: %-escapes, unicode, over-long ids), query strings and bodies
 * (near-valid rollout requests with extreme numbers and strings, arbitrary JSON, non-JSON text). Every
 * answer is a 2xx, or a 4xx whose body names what is wrong; never a 5xx, never a throw.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClients, destroyClients } from "../../functions/clients.ts";
import { parseEnv } from "../../functions/env.ts";
import { createRolloutApiHandler } from "../../functions/rollout-api/app.ts";
import { startTestCloud, type TestCloud } from "./cloud.ts";
import { envFor } from "./fixtures.ts";

let cloud: TestCloud;
let clients: ReturnType<typeof createClients>;
let handler: ReturnType<typeof createRolloutApiHandler>;

beforeAll(async () => {
  cloud = await startTestCloud();
  const env = parseEnv(envFor(cloud.info, { FLEETS: "fz,edge" }));
  clients = createClients(env);
  handler = createRolloutApiHandler(env, { clients, now: () => cloud.clock.now() });
  // A registered device, so rollout bodies can get past the "fleet has devices" check.
  const r = await handler(event("POST", "/fleets/fz/things", "", JSON.stringify({ thingName: "fz-1" })));
  expect(r.statusCode).toBe(201);
});

afterAll(async () => {
  if (clients) destroyClients(clients);
  await cloud?.stop();
});

function event(method: string, rawPath: string, rawQueryString: string, body?: string) {
  return {
    version: "2.0",
    rawPath,
    rawQueryString,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body }),
    isBase64Encoded: false,
    requestContext: {
      http: { method, path: rawPath },
      authorizer: { iam: { userArn: "arn:aws:iam::000000000000:user/fuzz" } },
    },
  };
}

const hostile = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 10 }),
  fc.constantFrom("%", "%zz", "%E0%A4%A", "%2F", "..", "", "r1", "fz", "edge", "x".repeat(300), "\u0000"),
  fc.stringMatching(/^r[0-9a-z-]{1,50}$/),
);
const segment = hostile.map((s) => s.replace(/[/?#]/g, ""));

const path = fc.oneof(
  fc.constantFrom("/rollouts", "/releases", "/audit", "/", "/rollouts/", "//rollouts"),
  segment.map((id) => `/rollouts/${id}`),
  fc
    .tuple(segment, fc.constantFrom("pause", "resume", "abort", "stop", ""))
    .map(([id, a]) => `/rollouts/${id}/${a}`),
  segment.map((f) => `/fleets/${f}`),
  segment.map((f) => `/fleets/${f}/things`),
  fc.array(segment, { maxLength: 5 }).map((s) => `/${s.join("/")}`),
);

const queryValue = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer({ min: -5, max: 5000 }).map(String),
  fc.constantFrom("eyJrIjoiYSJ9", "eyJrIjoyfQ", "%zz", "2026-01-01T00:00:00Z", "1e3", " 1"),
);
const query = fc
  .array(
    fc.tuple(fc.constantFrom("limit", "cursor", "since", "until", "rollout", "fleet", "x", ""), queryValue),
    {
      maxLength: 4,
    },
  )
  .map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&"));

const num = fc.oneof(
  fc.double({ noNaN: true }),
  fc.integer({ min: -10, max: 200 }),
  fc.constantFrom(0, 100, 10.125, 99.99, 1e-7, 1e308, -0),
);
const wave = fc.oneof(
  fc.record(
    { percent: num, failureThresholdPercent: num, successThresholdPercent: num, bakeSeconds: num },
    { requiredKeys: ["percent"] },
  ),
  fc.record({ canary: fc.array(hostile, { maxLength: 3 }), bakeMinutes: num }, { requiredKeys: ["canary"] }),
);
const rolloutBody = fc.record(
  {
    release: fc.oneof(fc.constantFrom("1.0.0", "2.0.0-rc.1"), hostile),
    fleets: fc.array(fc.oneof(fc.constant("fz"), hostile), { maxLength: 3 }),
    thingGroups: fc.array(hostile, { maxLength: 2 }),
    waves: fc.array(wave, { maxLength: 4 }),
    rolloutRate: fc.record({ maximumPerMinute: num }),
    inProgressTimeoutMinutes: num,
    healthDeadlineSeconds: num,
    force: fc.boolean(),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  rolloutBody.map((b) => JSON.stringify(b)),
  fc.record({ reason: hostile }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
  fc.record({ thingName: hostile, version: hostile }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 30 }),
);

describe("the rollout API under generated requests", () => {
  it("answers every one with a 2xx or a 4xx naming the problem; never a 5xx, never a throw", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE"),
        path,
        query,
        fc.option(body, { nil: undefined }),
        async (method, rawPath, rawQueryString, text) => {
          const res = await handler(event(method, rawPath, rawQueryString, text));
          expect(
            res.statusCode,
            `${method} ${rawPath}?${rawQueryString} ${text ?? ""}\n${res.body}`,
          ).toBeLessThan(500);
          const answer = JSON.parse(res.body) as { error?: unknown };
          if (res.statusCode >= 400) expect(answer.error).toEqual(expect.any(String));
        },
      ),
      // Bounded: a fixed number of runs keeps this a few seconds of the suite.
      { numRuns: 150, seed: 1129 },
    );
  });
});
