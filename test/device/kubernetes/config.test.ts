/**
 * The `kubernetes` and `metrics` sections of agent.json: defaults, a relative kubeconfig resolved against
 * the file, each kind of bad value refused with the field named, and a kubeconfig that cannot be loaded.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../../device/config.ts";
import { AgentConfigError } from "../../../device/errors.ts";
import { loadKubeConfig } from "../../../device/kubernetes/client.ts";
import { nodeNameOf } from "../../../device/kubernetes/config.ts";
import { KubernetesConfigError } from "../../../device/kubernetes/errors.ts";

const base = {
  thingName: "Edge_01",
  hardware: "rpi4",
  slots: { A: "/dev/a", B: "/dev/b" },
  bootloader: { type: "grub", envFile: "/boot/grubenv" },
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keel-k8s-config-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("kubernetes section", () => {
  it("is off when absent; defaults otherwise; a relative kubeconfig resolves against the config file", () => {
    expect(parseAgentConfig(base, "/etc/keel").kubernetes).toBeUndefined();
    const c = parseAgentConfig(
      { ...base, kubernetes: { kubeconfig: "kube/config" }, metrics: { port: 9101 } },
      "/etc/keel",
    );
    expect(c.kubernetes).toMatchObject({
      kubeconfig: "/etc/keel/kube/config",
      namespace: "keel-system",
      maxUnavailable: 1,
      leaseDurationSeconds: 600,
      drainTimeoutSeconds: 900,
      minSecondsBetweenReboots: 0,
    });
    expect(c.metrics).toEqual({ port: 9101, host: "127.0.0.1" });
    // The thing name becomes a valid node name unless one is given.
    expect(nodeNameOf(c.kubernetes ?? ({} as never), c.thingName)).toBe("edge-01");
  });

  it.each([
    [{ maxUnavailable: 0 }, "kubernetes.maxUnavailable"],
    [{ drainTimeoutSeconds: 1.5 }, "kubernetes.drainTimeoutSeconds"],
    [{ nodeName: "Not_A_Node" }, "kubernetes.nodeName"],
    [{ namespace: "" }, "kubernetes.namespace"],
    [{ leaseDurationSeconds: 1 }, "kubernetes.leaseDurationSeconds"],
    [{ drain: true }, "kubernetes"],
  ])("refuses %j naming %s", (kubernetes, path) => {
    expect(() => parseAgentConfig({ ...base, kubernetes }, "/")).toThrow(AgentConfigError);
    expect(() => parseAgentConfig({ ...base, kubernetes }, "/")).toThrow(path);
  });

  it("refuses a metrics port out of range", () => {
    expect(() => parseAgentConfig({ ...base, metrics: { port: 70000 } }, "/")).toThrow("metrics.port");
  });

  it("a kubeconfig that is missing or not a kubeconfig is a KubernetesConfigError naming the file", async () => {
    expect(() => loadKubeConfig(join(dir, "missing"))).toThrow(KubernetesConfigError);
    const garbage = join(dir, "garbage");
    await writeFile(garbage, "{ not: yaml: [");
    expect(() => loadKubeConfig(garbage)).toThrow(garbage);
    const empty = join(dir, "empty");
    await writeFile(
      empty,
      JSON.stringify({ apiVersion: "v1", kind: "Config", clusters: [], users: [], contexts: [] }),
    );
    expect(() => loadKubeConfig(empty)).toThrow(/no current cluster/);
  });
});
