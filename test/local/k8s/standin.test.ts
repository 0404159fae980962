/**
 * The stand-in's API semantics, each kind of bad input answered with the real status code and reason and
 * changing nothing: leases with resourceVersion conflicts, evictions with PDB rules, selectors, the three
 * patch types, authentication, and persistence across a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCluster, type TestCluster, until } from "./helpers.ts";

let c: TestCluster;
const lease = (name: string, holder: string, rv?: string) => ({
  apiVersion: "coordination.k8s.io/v1",
  kind: "Lease",
  metadata: { name, ...(rv ? { resourceVersion: rv } : {}) },
  spec: { holderIdentity: holder, leaseDurationSeconds: 30, renewTime: "2026-01-01T00:00:00.000000Z" },
});
const LEASES = "/apis/coordination.k8s.io/v1/namespaces/keel-system/leases";
const eviction = (name: string) => ({
  apiVersion: "policy/v1",
  kind: "Eviction",
  metadata: { name, namespace: "default" },
});

beforeAll(async () => {
  c = await startTestCluster({ nodes: ["n1", "n2", "n3"] });
  c.standin.cluster.addReplicaSet("default", "web", { app: "web" }, 3);
  c.standin.cluster.addPdb("default", "web", { minAvailable: 3, selector: { matchLabels: { app: "web" } } });
  c.standin.cluster.addReplicaSet("default", "db", { app: "db", tier: "data" }, 1);
  c.standin.cluster.addPdb("default", "db-a", {
    maxUnavailable: 1,
    selector: { matchLabels: { app: "db" } },
  });
  c.standin.cluster.addPdb("default", "db-b", {
    maxUnavailable: 1,
    selector: { matchLabels: { tier: "data" } },
  });
  await until(
    () => c.standin.cluster.listPods().every((p) => p.status.conditions?.[0]?.status === "True"),
    "pods ready",
  );
});
afterAll(() => c.stop());

describe("leases", () => {
  it("create, AlreadyExists, stale resourceVersion → 409 Conflict, current one → updated", async () => {
    const created = await c.api("POST", LEASES, lease("slot", "a"));
    expect(created.status).toBe(201);
    const rv = (created.body.metadata as { resourceVersion: string }).resourceVersion;
    const again = await c.api("POST", LEASES, lease("slot", "b"));
    expect([again.status, again.body.reason]).toEqual([409, "AlreadyExists"]);
    const ok = await c.api("PUT", `${LEASES}/slot`, lease("slot", "b", rv));
    expect(ok.status).toBe(200);
    const stale = await c.api("PUT", `${LEASES}/slot`, lease("slot", "c", rv));
    expect([stale.status, stale.body.reason]).toEqual([409, "Conflict"]);
    expect(c.standin.cluster.getLease("keel-system", "slot").spec.holderIdentity).toBe("b");
  });

  it("refuses a lease with a bad field or a name that does not match the URL, changing nothing", async () => {
    const bad = await c.api("PUT", `${LEASES}/slot`, {
      ...lease("slot", "x"),
      spec: { leaseDurationSeconds: -1 },
    });
    expect([bad.status, bad.body.reason]).toEqual([422, "Invalid"]);
    const other = await c.api("PUT", `${LEASES}/slot`, lease("other", "x"));
    expect(other.status).toBe(400);
    const garbage = await c.api("POST", LEASES, "{not json");
    expect(garbage.status).toBe(400);
    expect(c.standin.cluster.getLease("keel-system", "slot").spec.holderIdentity).toBe("b");
  });
});

describe("evictions", () => {
  it("429 TooManyRequests when the budget forbids, naming the budget; the pod stays", async () => {
    const pod = c.standin.cluster.listPods().find((p) => p.metadata.labels?.app === "web");
    const r = await c.api(
      "POST",
      `/api/v1/namespaces/default/pods/${pod?.metadata.name}/eviction`,
      eviction(pod?.metadata.name ?? ""),
    );
    expect([r.status, r.body.reason]).toEqual([429, "TooManyRequests"]);
    expect(JSON.stringify(r.body.details)).toContain(
      "The disruption budget web needs 3 healthy pods and has 3 currently",
    );
    expect(
      c.standin.cluster.getPod("default", pod?.metadata.name ?? "").metadata.deletionTimestamp,
    ).toBeUndefined();
  });

  it("500 when more than one budget selects the pod", async () => {
    const pod = c.standin.cluster.listPods().find((p) => p.metadata.labels?.app === "db");
    const r = await c.api(
      "POST",
      `/api/v1/namespaces/default/pods/${pod?.metadata.name}/eviction`,
      eviction(pod?.metadata.name ?? ""),
    );
    expect(r.status).toBe(500);
    expect(r.body.message).toMatch(/more than one PodDisruptionBudget/);
  });

  it("404 for a pod that is gone; 422 for a body that is not an Eviction; 400 for a name mismatch", async () => {
    expect(
      (await c.api("POST", "/api/v1/namespaces/default/pods/nope/eviction", eviction("nope"))).status,
    ).toBe(404);
    const pod = c.standin.cluster.listPods()[0]?.metadata.name ?? "";
    const wrongKind = await c.api("POST", `/api/v1/namespaces/default/pods/${pod}/eviction`, {
      ...eviction(pod),
      kind: "Pod",
    });
    expect(wrongKind.status).toBe(422);
    const mismatch = await c.api(
      "POST",
      `/api/v1/namespaces/default/pods/${pod}/eviction`,
      eviction("someone-else"),
    );
    expect(mismatch.status).toBe(400);
    expect(c.standin.cluster.listPods().filter((p) => p.metadata.deletionTimestamp)).toHaveLength(0);
  });
});

describe("selectors, patches, auth", () => {
  it("filters pods by spec.nodeName and refuses fields the server does not index", async () => {
    const r = await c.api("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn2");
    const items = r.body.items as Array<{ spec: { nodeName: string } }>;
    expect(items.length).toBeGreaterThan(0);
    expect(items.every((p) => p.spec.nodeName === "n2")).toBe(true);
    const bad = await c.api("GET", "/api/v1/pods?fieldSelector=spec.hostname%3Dx");
    expect([bad.status, bad.body.message]).toEqual([400, "field label not supported: spec.hostname"]);
    const labels = await c.api("GET", "/api/v1/pods?labelSelector=app%3Ddb");
    expect((labels.body.items as unknown[]).length).toBe(1);
  });

  it("merge, strategic merge and JSON patch cordon a node; an unknown type is 415 and an invalid result 422", async () => {
    const path = "/api/v1/nodes/n3";
    const merge = await c.api(
      "PATCH",
      path,
      { spec: { unschedulable: true } },
      { contentType: "application/merge-patch+json" },
    );
    expect((merge.body.spec as { unschedulable: boolean }).unschedulable).toBe(true);
    await c.api(
      "PATCH",
      path,
      { spec: { unschedulable: null } },
      { contentType: "application/strategic-merge-patch+json" },
    );
    expect(c.standin.cluster.getNode("n3").spec.unschedulable).toBeUndefined();
    await c.api("PATCH", path, [{ op: "add", path: "/spec/unschedulable", value: true }], {
      contentType: "application/json-patch+json",
    });
    expect(c.standin.cluster.getNode("n3").spec.unschedulable).toBe(true);
    const yaml = await c.api("PATCH", path, "spec: {}", { contentType: "application/apply-patch+yaml" });
    expect(yaml.status).toBe(415);
    const invalid = await c.api(
      "PATCH",
      path,
      { spec: { unschedulable: "yes" } },
      { contentType: "application/merge-patch+json" },
    );
    expect(invalid.status).toBe(422);
    const directive = await c.api(
      "PATCH",
      path,
      { spec: { $retainKeys: [] } },
      { contentType: "application/strategic-merge-patch+json" },
    );
    expect(directive.status).toBe(400);
    expect(c.standin.cluster.getNode("n3").spec.unschedulable).toBe(true);
    await c.api(
      "PATCH",
      path,
      { spec: { unschedulable: false } },
      { contentType: "application/merge-patch+json" },
    );
  });

  it("401 without the token", async () => {
    const r = await c.api("GET", "/api/v1/nodes", undefined, { token: null });
    expect([r.status, r.body.reason]).toEqual([401, "Unauthorized"]);
    expect((await c.api("GET", "/api/v1/nodes", undefined, { token: "wrong" })).status).toBe(401);
  });

  it("keeps nodes, pods, leases and the token across a restart", async () => {
    const before = c.standin.cluster
      .listPods()
      .map((p) => p.metadata.name)
      .sort();
    const token = c.standin.token;
    await c.restart();
    expect(c.standin.token).toBe(token);
    expect(
      c.standin.cluster
        .listPods()
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual(before);
    expect((await c.client.getLease("keel-system", "slot"))?.holder).toBe("b");
    expect((await c.client.listNodes()).map((n) => n.name)).toEqual(["n1", "n2", "n3"]);
  });
});
