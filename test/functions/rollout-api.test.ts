/**
 * The rollout API through the local Function URL: SigV4 checks (403), every bad body a 400 naming the
 * field, 404s, and the rollout rules (409 with the reason). Nothing is changed by a refused request.
 */
import { request } from "node:http";
import { Sha256 } from "@aws-crypto/sha256-js";
import { CreateThingGroupCommand, DescribeJobCommand } from "@aws-sdk/client-iot";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ApiClient,
  ApiError,
  getFleetStatus,
  getRolloutView,
  listAllRollouts,
  listAudit,
} from "../../cli/api-client.ts";
import type { Rollout } from "../../functions/rollout/model.ts";
import type { AuditEntry } from "../../functions/rollout-api/contract.ts";
import type { Store } from "../../functions/store.ts";
import { LOCAL_CREDENTIALS } from "../../local/contracts.ts";
import { type FunctionsWiring, startFunctionsWiring } from "../../local/functions-wiring.ts";
import { startTestCloud, type TestCloud } from "./cloud.ts";
import { makeRelease, makeTrust, putBytes, putJson } from "./fixtures.ts";

let cloud: TestCloud;
let wiring: FunctionsWiring;
let api: ApiClient;
let store: Store;
const trust = makeTrust();
const image = new Uint8Array(1024).fill(1);

beforeAll(async () => {
  cloud = await startTestCloud();
  wiring = await startFunctionsWiring(cloud, {
    tickSeconds: 3600,
    logLevel: "silent",
    fleets: ["edge", "lab"],
  });
  api = new ApiClient({ apiUrl: wiring.apiUrl, region: cloud.info.region, credentials: LOCAL_CREDENTIALS });
  store = cloud.store;
  await putJson(cloud.s3, cloud.info.bucket, "trust/root.1.json", trust.root1);
  await putBytes(cloud.s3, cloud.info.bucket, "releases/2.0.0/image.squashfs", image);
  await putJson(
    cloud.s3,
    cloud.info.bucket,
    "releases/2.0.0/release.json",
    makeRelease({ version: "2.0.0", counter: 2, image, key: trust.key }),
  );
  // 2.1.0 has no image: REJECTED.
  await putJson(
    cloud.s3,
    cloud.info.bucket,
    "releases/2.1.0/release.json",
    makeRelease({ version: "2.1.0", counter: 3, image, key: trust.key }),
  );
  // A device that never connects: fleet edge exists, so bodies reach every later check.
  await api.post("/fleets/edge/things", { thingName: "edge-1" });
  await vi.waitFor(
    async () => {
      expect((await store.getRelease("2.0.0"))?.status).toBe("VERIFIED");
      expect((await store.getRelease("2.1.0"))?.status).toBe("REJECTED");
    },
    { timeout: 15_000, interval: 50 },
  );
});

afterAll(async () => {
  await wiring?.stop();
  await cloud?.stop();
});

async function failure(p: Promise<unknown>): Promise<ApiError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(e)}`);
  return e;
}

function raw(method: string, path: string, headers: Record<string, string>, body = ""): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, wiring.apiUrl), { method, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** SigV4 headers for POST /rollouts with `body` (extra headers signed too), as the CLI would send them. */
async function signedPost(
  body: string,
  headers: Record<string, string> = {},
): Promise<Record<string, string>> {
  const url = new URL("/rollouts", wiring.apiUrl);
  const signer = new SignatureV4({
    credentials: LOCAL_CREDENTIALS,
    region: cloud.info.region,
    service: "lambda",
    sha256: Sha256,
  });
  const signed = await signer.sign({
    method: "POST",
    protocol: "http:",
    hostname: url.hostname,
    port: Number(url.port),
    path: url.pathname,
    query: {},
    headers: { host: url.host, ...headers },
    ...(body ? { body } : {}),
  });
  return signed.headers;
}

const good = { release: "2.0.0", fleets: ["edge"], waves: [{ percent: 10 }, { percent: 100 }] };

describe("SigV4 on the Function URL", () => {
  it("accepts a request signed with the local credentials", async () => {
    expect(await api.get("/releases")).toMatchObject({ releases: expect.any(Array) });
  });

  it("answers 403 to an unsigned request", async () => {
    expect(await raw("GET", "/releases", {})).toBe(403);
  });

  it("answers 403 to a request signed with another secret", async () => {
    const other = new ApiClient({
      apiUrl: wiring.apiUrl,
      region: cloud.info.region,
      credentials: { accessKeyId: LOCAL_CREDENTIALS.accessKeyId, secretAccessKey: "wrong" },
    });
    expect((await failure(other.get("/releases"))).status).toBe(403);
  });

  it("answers 403 when the body was changed after signing", async () => {
    const body = JSON.stringify(good);
    const signed = { headers: await signedPost(body, { "content-type": "application/json" }) };
    const tampered = body.replace("edge", "lab!");
    expect(await raw("POST", "/rollouts", signed.headers, tampered)).toBe(403);
    // Without the content hash header, the signature itself no longer matches.
    const { "x-amz-content-sha256": _drop, ...noHash } = signed.headers;
    expect(await raw("POST", "/rollouts", noHash, tampered)).toBe(403);
    expect(await store.listRollouts("all")).toEqual([]);
  });
});

describe("bad bodies get a 400 naming the field, and change nothing", () => {
  const cases: Array<[string, unknown, string]> = [
    ["missing release", { fleets: ["edge"], waves: [{ percent: 100 }] }, "release"],
    ["release not semver", { ...good, release: "v2" }, "release"],
    ["neither fleets nor thingGroups", { release: "2.0.0", waves: [{ percent: 100 }] }, "fleets"],
    ["fleet name with a slash", { ...good, fleets: ["ed/ge"] }, "fleets[0]"],
    ["fleet not in FLEETS", { ...good, fleets: ["prod"] }, "fleets[0]"],
    ["no waves", { ...good, waves: [] }, "waves"],
    ["percent above 100", { ...good, waves: [{ percent: 150 }] }, "waves[0].percent"],
    [
      "percents not increasing",
      { ...good, waves: [{ percent: 50 }, { percent: 20 }, { percent: 100 }] },
      "waves[1].percent",
    ],
    ["last wave short of 100", { ...good, waves: [{ percent: 50 }] }, "waves[0]"],
    ["wave with an unknown field", { ...good, waves: [{ percent: 100, bake: 3 }] }, "waves[0]"],
    [
      "canary with a bad thing name",
      { ...good, waves: [{ canary: ["a b"] }, { percent: 100 }] },
      "waves[0].canary[0]",
    ],
    [
      "both bake units",
      { ...good, waves: [{ percent: 100, bakeMinutes: 1, bakeSeconds: 5 }] },
      "waves[0].bakeSeconds",
    ],
    [
      "negative threshold",
      { ...good, waves: [{ percent: 100, failureThresholdPercent: -1 }] },
      "waves[0].failureThresholdPercent",
    ],
    [
      "rollout rate out of range",
      { ...good, rolloutRate: { maximumPerMinute: 0 } },
      "rolloutRate.maximumPerMinute",
    ],
    ["timeout out of range", { ...good, inProgressTimeoutMinutes: 0 }, "inProgressTimeoutMinutes"],
    ["health deadline not an integer", { ...good, healthDeadlineSeconds: 1.5 }, "healthDeadlineSeconds"],
    ["force not a boolean", { ...good, force: "yes" }, "force"],
    ["unknown top-level field", { ...good, colour: "red" }, ""],
    [
      "a wave that adds no bucket",
      { ...good, waves: [{ percent: 10.2 }, { percent: 10.5 }, { percent: 100 }] },
      "waves[1].percent",
    ],
  ];
  it.each(cases)("%s → 400 at %s", async (_name, body, path) => {
    const e = await failure(api.post("/rollouts", body));
    expect(e.status).toBe(400);
    expect(e.issues.map((i) => i.path)).toContain(path);
    expect(await store.listRollouts("all")).toEqual([]);
  });

  it("canary things that do not exist → 400 naming them", async () => {
    const e = await failure(
      api.post("/rollouts", { ...good, waves: [{ canary: ["edge-1", "ghost"] }, { percent: 100 }] }),
    );
    expect(e.status).toBe(400);
    expect(e.issues).toEqual([{ path: "waves[0].canary[1]", message: "thing ghost does not exist" }]);
    expect(await store.listRollouts("all")).toEqual([]);
  });

  it("a wave item of the wrong type names the field and what was expected", async () => {
    const e = await failure(api.post("/rollouts", { ...good, waves: [{ percent: "x" }, { canary: [5] }] }));
    expect(e.status).toBe(400);
    expect(e.issues).toEqual([
      { path: "waves[0].percent", message: "Invalid input: expected number, received string" },
      { path: "waves[1].canary[0]", message: "Invalid input: expected string, received number" },
    ]);
  });

  it("a body that is not JSON → 400", async () => {
    expect(await raw("POST", "/rollouts", await signedPost("{oops"), "{oops")).toBe(400);
  });

  it("pause/abort bodies and thing registrations are checked too", async () => {
    expect((await failure(api.post("/rollouts/nope/abort", { reason: 5 }))).issues[0]?.path).toBe("reason");
    expect((await failure(api.post("/fleets/edge/things", { thingName: "bad name" }))).issues[0]?.path).toBe(
      "thingName",
    );
    expect(
      (await failure(api.post("/fleets/edge/things", { thingName: "ok", version: "one" }))).issues[0]?.path,
    ).toBe("version");
  });
});

describe("404 and 409", () => {
  it("404 naming the fleet when it has no registered device, or the thing group that does not exist", async () => {
    // lab is one of this deployment's fleets, but nobody registered a device in it (yet): a typo or a
    // forgotten registration must not give an empty rollout that reports SUCCEEDED.
    const empty = await failure(api.post("/rollouts", { ...good, fleets: ["edge", "lab"] }));
    expect(empty.status).toBe(404);
    expect(empty.message).toContain("fleet lab has no registered devices");
    expect(empty.message).not.toContain("fleet edge");
    const group = await failure(
      api.post("/rollouts", { release: "2.0.0", thingGroups: ["no-such-group"], waves: [{ percent: 100 }] }),
    );
    expect(group.status).toBe(404);
    expect(group.message).toContain("thing group no-such-group does not exist");
    expect(await store.listRollouts("all")).toEqual([]);
  });

  it("404 for an unknown rollout, route or fleet", async () => {
    expect((await failure(api.get("/rollouts/r-unknown"))).status).toBe(404);
    expect((await failure(api.post("/rollouts/r-unknown/pause"))).status).toBe(404);
    expect((await failure(api.get("/nothing"))).status).toBe(404);
    expect((await failure(api.get("/fleets/prod"))).status).toBe(404);
  });

  it("409 with the reason for a release that is REJECTED or unknown", async () => {
    const rejected = await failure(api.post("/rollouts", { ...good, release: "2.1.0" }));
    expect(rejected.status).toBe(409);
    expect(rejected.message).toMatch(
      /release 2.1.0 is REJECTED: image object releases\/2.1.0\/image.squashfs does not exist/,
    );
    expect((await failure(api.post("/rollouts", { ...good, release: "9.9.9" }))).message).toMatch(
      /not registered/,
    );
  });

  it("one rollout at a time per fleet unless forced", async () => {
    // A device that never connects keeps the canary wave, and so the rollout, running.
    await api.post("/fleets/edge/things", { thingName: "edge-offline" });
    const first = (await api.post("/rollouts", {
      ...good,
      waves: [{ canary: ["edge-offline"] }, { percent: 100 }],
    })) as Rollout;
    expect(first.status).toBe("RUNNING");
    const busy = await failure(api.post("/rollouts", good));
    expect(busy.status).toBe(409);
    expect(busy.message).toContain(`edge already has rollout ${first.id}`);
    const forced = (await api.post("/rollouts", { ...good, force: true })) as Rollout;
    expect(forced.forced).toBe(true);
    // Abort applies once; the second is a 409.
    await api.post(`/rollouts/${first.id}/abort`, { reason: "superseded" });
    const again = await failure(api.post(`/rollouts/${first.id}/abort`));
    expect(again.status).toBe(409);
    const view = (await api.get(`/rollouts/${first.id}`)) as Rollout;
    expect(view.reason).toBe("aborted by arn:aws:iam::000000000000:user/keel-local: superseded");
    const list = (await api.get("/rollouts")) as { rollouts: Rollout[] };
    expect(list.rollouts.map((r) => r.id).sort()).toEqual([first.id, forced.id].sort());
    // The abort is audited once, with its caller and reason; the refused second abort is not.
    const aborts = (await store.listAudit()).filter((a) => a.action === "rollout.abort");
    expect(aborts).toEqual([
      {
        at: expect.any(String),
        who: "arn:aws:iam::000000000000:user/keel-local",
        action: "rollout.abort",
        target: first.id,
        fleets: ["edge"],
        detail: { reason: "superseded" },
      },
    ]);
  });

  it("a rollout to an existing thing group targets the group itself", async () => {
    await cloud.iotClient.send(new CreateThingGroupCommand({ thingGroupName: "lab-bench" }));
    const r = (await api.post("/rollouts", {
      release: "2.0.0",
      thingGroups: ["lab-bench"],
      waves: [{ percent: 100 }],
    })) as Rollout;
    const job = await cloud.iotClient.send(new DescribeJobCommand({ jobId: `keel-${r.id}-w1` }));
    expect(job.job?.targets).toEqual([
      `arn:aws:iot:${cloud.info.region}:${cloud.info.account}:thinggroup/lab-bench`,
    ]);
  });

  it("registering a thing twice is a 409", async () => {
    const t = (await api.post("/fleets/lab/things", { thingName: "lab-1", version: "2.0.0" })) as {
      certificatePem: string;
      privateKey: string;
      group: string;
      endpoint: string;
    };
    expect(t.certificatePem).toMatch(/BEGIN CERTIFICATE/);
    expect(t.privateKey).toMatch(/PRIVATE KEY/);
    expect(t.group).toMatch(/^lab-b\d\d$/);
    expect(t.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
    expect((await failure(api.post("/fleets/lab/things", { thingName: "lab-1" }))).status).toBe(409);
    // Registration is audited once (the refused second one is not), naming the certificate it made.
    const registrations = (await store.listAudit()).filter(
      (a) => a.action === "thing.register" && a.target === "lab-1",
    );
    expect(registrations).toEqual([
      {
        at: expect.any(String),
        who: "arn:aws:iam::000000000000:user/keel-local",
        action: "thing.register",
        target: "lab-1",
        fleets: ["lab"],
        detail: {
          fleet: "lab",
          group: t.group,
          certificateId: expect.stringMatching(/^[0-9a-f]{64}$/),
          keyMadeOn: "cloud",
        },
      },
    ]);
    const fleet = (await api.get("/fleets/lab")) as { devices: number; versions: Record<string, number> };
    expect(fleet).toMatchObject({ devices: 1, versions: { "2.0.0": 1 } });
  });
});

describe("client errors in paths, query strings and bodies are 4xx with a message", () => {
  const cases: Array<[string, string, number, string]> = [
    ["a malformed %-escape in the path", "/rollouts/%zz", 400, "path"],
    ["a rollout id longer than any rollout id", `/rollouts/r${"x".repeat(300)}`, 400, "id"],
    ["a rollout id with characters no id has", "/rollouts/R%20x", 400, "id"],
    ["a fleet name with a slash", "/fleets/a%2Fb", 400, "fleet"],
    ["a limit of 0", "/rollouts?limit=0", 400, "limit"],
    ["a limit that is not a number", "/rollouts?limit=ten", 400, "limit"],
    ["a limit above the maximum", "/rollouts?limit=5000", 400, "limit"],
    ["a parameter given twice", "/rollouts?limit=1&limit=2", 400, "limit"],
    ["an unknown parameter", "/rollouts?colour=red", 400, ""],
    ["a parameter on a route that takes none", "/releases?all=1", 400, ""],
    ["a cursor that is not one", "/rollouts?cursor=not-a-cursor", 400, "cursor"],
    ["an audit time that is not an instant", "/audit?since=yesterday", 400, "since"],
    [
      "an audit window that ends before it starts",
      "/audit?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
      400,
      "until",
    ],
  ];
  it.each(cases)("%s (%s) → %i at %s", async (_name, path, status, field) => {
    const e = await failure(api.get(path));
    expect(e.status).toBe(status);
    expect(e.message).toMatch(/invalid (request path|query string)/);
    expect(e.issues.map((i) => i.path)).toContain(field);
  });

  it("a cursor from another listing is refused, not followed", async () => {
    const things = (await api.get("/fleets/edge?limit=1")) as { nextCursor?: string };
    expect(things.nextCursor).toEqual(expect.any(String));
    const e = await failure(api.get(`/rollouts?cursor=${things.nextCursor}`));
    expect(e.status).toBe(400);
    expect(e.issues).toEqual([{ path: "cursor", message: expect.stringContaining("GET /rollouts") }]);
  });

  it("a known path with another method is a 405 naming the allowed one", async () => {
    const e = await failure(api.post("/releases", {}));
    expect(e.status).toBe(405);
    expect(e.message).toContain("use GET");
  });
});

describe("AWS IoT's limits at the API's edge", () => {
  it("a failure threshold with more decimals than CreateJob takes → 400, nothing created", async () => {
    const before = (await store.listRollouts("all")).length;
    const e = await failure(
      api.post("/rollouts", {
        ...good,
        force: true,
        waves: [{ percent: 100, failureThresholdPercent: 10.125 }],
      }),
    );
    expect(e.status).toBe(400);
    expect(e.issues).toEqual([
      {
        path: "waves[0].failureThresholdPercent",
        message: expect.stringMatching(/AWS IoT iot:CreateJob refuses this: .*thresholdPercentage/),
      },
    ]);
    expect(await store.listRollouts("all")).toHaveLength(before);
  });

  it("an abort reason CancelJob would refuse as a comment (a newline) → 400; the rollout keeps running", async () => {
    const r = (await api.post("/rollouts", {
      ...good,
      force: true,
      waves: [{ canary: ["edge-offline"] }, { percent: 100 }],
    })) as Rollout;
    const e = await failure(api.post(`/rollouts/${r.id}/abort`, { reason: "bad build\nrolling back" }));
    expect(e.status).toBe(400);
    expect(e.issues).toEqual([
      { path: "reason", message: expect.stringMatching(/AWS IoT iot:CancelJob refuses this: .*comment/) },
    ]);
    expect(((await api.get(`/rollouts/${r.id}`)) as Rollout).status).toBe("RUNNING");
    const aborted = (await api.post(`/rollouts/${r.id}/abort`, {
      reason: "bad build; rolling back",
    })) as Rollout;
    expect(aborted.status).toBe("ABORTED");
  });
});

describe("pagination", () => {
  /** Every page of `path` at `limit` per page, following nextCursor. */
  async function walk<T>(path: string, limit: number, items: (page: Record<string, unknown>) => T[]) {
    const pages: Array<Record<string, unknown>> = [];
    let cursor: string | undefined;
    do {
      const sep = path.includes("?") ? "&" : "?";
      const page = (await api.get(
        `${path}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`,
      )) as Record<string, unknown>;
      pages.push(page);
      cursor = page.nextCursor as string | undefined;
    } while (cursor);
    return { pages, items: pages.flatMap(items) };
  }

  it("GET /rollouts: one per page gives every rollout once, newest first, as one big page does", async () => {
    const all = await listAllRollouts(api);
    expect(all.length).toBeGreaterThanOrEqual(3);
    const created = all.map((r) => r.createdAt);
    expect(created).toEqual([...created].sort().reverse());
    const { pages, items } = await walk("/rollouts", 1, (p) => (p.rollouts as Rollout[]).map((r) => r.id));
    expect(items).toEqual(all.map((r) => r.id));
    // The last page hands out no cursor (no empty page at the end).
    expect(pages).toHaveLength(all.length);
  });

  it("GET /fleets/{fleet}: things by name a page at a time; the summary comes with the first page", async () => {
    const { pages, items } = await walk("/fleets/edge", 1, (p) =>
      (p.things as Array<{ thingName: string }>).map((t) => t.thingName),
    );
    expect(items).toEqual(["edge-1", "edge-offline"]);
    expect(pages[0]).toMatchObject({ devices: 2, versions: { unknown: 2 } });
    expect(pages[1]).not.toHaveProperty("devices");
    expect((await getFleetStatus(api, "edge")).things.map((t) => t.thingName)).toEqual(items);
  });

  it("GET /rollouts/{id}: devices by name a page at a time; totals come with the first page", async () => {
    // The thing-group rollout: its group has no devices, so no job execution adds outcomes of its own.
    const r = (await listAllRollouts(api)).find((x) => x.thingGroups.includes("lab-bench"));
    const id = r?.id ?? "";
    for (const name of ["pg-c", "pg-a", "pg-b"]) {
      await store.recordDeviceOutcome(id, { thingName: name, wave: 1, status: "SUCCEEDED", at: 1 });
    }
    const { pages, items } = await walk(`/rollouts/${id}`, 2, (p) =>
      (p.devices as Array<{ thingName: string }>).map((d) => d.thingName),
    );
    expect(items).toEqual(["pg-a", "pg-b", "pg-c"]);
    expect(pages[0]?.totals).toMatchObject({ devices: 3, succeeded: 3 });
    expect(pages[1]).not.toHaveProperty("totals");
    expect((await getRolloutView(api, id)).devices.map((d) => d.thingName)).toEqual(items);
  });

  it("GET /audit: newest first, filtered by rollout, fleet and time, a page at a time", async () => {
    const all = await listAudit(api);
    expect(all.length).toBeGreaterThanOrEqual(5);
    expect(all.map((e) => e.at)).toEqual(
      all
        .map((e) => e.at)
        .sort()
        .reverse(),
    );
    const { items } = await walk("/audit", 2, (p) => p.entries as AuditEntry[]);
    expect(items).toEqual(all);
    const lab = await listAudit(api, { fleet: "lab" });
    expect(lab.map((e) => e.target)).toContain("lab-1");
    expect(lab.every((e) => e.fleets?.includes("lab"))).toBe(true);
    const create = all.find((e) => e.action === "rollout.create");
    const one = await listAudit(api, { rollout: create?.target });
    expect(one.length).toBeGreaterThanOrEqual(1);
    expect(one.every((e) => e.target === create?.target)).toBe(true);
    const oldest = all.at(-1)?.at ?? "";
    expect(await listAudit(api, { until: oldest })).toEqual([]);
    expect(await listAudit(api, { since: oldest })).toEqual(all);
  });
});

describe("the local Function URL reads no body before the signature headers pass", () => {
  const big = String(7 * 1024 * 1024);

  it("refuses an unsigned request that announces 7 MB with a 403, without waiting for the body", async () => {
    expect(await raw("POST", "/rollouts", { "content-length": big })).toBe(403);
  });

  it("refuses a signed request over 6 MB with a 413, without reading it", async () => {
    expect(await raw("POST", "/rollouts", { ...(await signedPost("")), "content-length": big })).toBe(413);
  });
});
