/**
 * An end-to-end delta rollout in the local cloud: a node whose slot A holds the factory image (1.0.0, built
 * by `keel release build`, index appended) installs 1.0.1 — the same tree with its release files changed,
 * built, signed and published by the CLI's code paths — through IoT Jobs, presigned S3 URLs on s3rver and
 * Range requests. It fetches only what it lacks, the job succeeds, and the execution's status details say
 * how many bytes crossed the network.
 */
import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RolloutSchema } from "../../functions/rollout/model.ts";
import { imagePath, manifestPath, SIM_HARDWARE } from "../../local/fleet/environment.ts";
import { type E2E, executionDetails, executions, onDisk, startE2E, until } from "../e2e/helpers.ts";

const FLEET = "e2edelta";
const RELEASE = "1.0.1";

describe("delta rollout through the local cloud", () => {
  let e: E2E;

  beforeAll(async () => {
    e = await startE2E(FLEET, 1);
    await e.env.fleet.waitSettled(60_000);
    // 1.0.1: the factory tree with its version files changed (the payload, most of the image, stays).
    const { paths, tooling } = e.env;
    const tree = join(e.tmp, "tree-1.0.1");
    execFileSync("unsquashfs", ["-q", "-n", "-d", tree, imagePath(paths, "1.0.0")]);
    for (const f of ["etc/keelos-release", "etc/os-release"]) {
      const text = await readFile(join(tree, f), "utf8");
      await writeFile(join(tree, f), text.replaceAll("1.0.0", RELEASE));
    }
    await mkdir(join(paths.releases, RELEASE), { recursive: true });
    await tooling.buildImage(tree, imagePath(paths, RELEASE));
    await tooling.signRelease(imagePath(paths, RELEASE), {
      version: RELEASE,
      counter: 2,
      compatible: [SIM_HARDWARE],
      key: paths.releaseKey,
      out: manifestPath(paths, RELEASE),
    });
    await tooling.publish(imagePath(paths, RELEASE), manifestPath(paths, RELEASE), paths.rootFile, () => {});
  }, 120_000);

  afterAll(async () => {
    await e?.stop();
  });

  it("installs 1.0.1 as a delta and reports bytes fetched well below the image size", async () => {
    // Prepare
    const [thing = ""] = e.env.fleet.thingNames();
    // Act
    const created = RolloutSchema.parse(
      await e.env.tooling.api.post("/rollouts", {
        release: RELEASE,
        fleets: [FLEET],
        waves: [{ percent: 100, successThresholdPercent: 100 }],
        healthDeadlineSeconds: 20,
      }),
    );
    const jobId = created.waves[0]?.jobId ?? "";
    await until(
      "the node to succeed",
      async () => ((await executions(e.iot, jobId)).get(thing) === "SUCCEEDED" ? true : undefined),
      90_000,
    );
    // Assess: the job's own status details, as IoT Jobs keeps them
    const d = await executionDetails(e.iot, jobId, thing);
    expect(d.details.transfer).toBe("delta");
    const fetched = Number(d.details.bytesFetched);
    const size = Number(d.details.imageBytes);
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThan(size / 2);
    const disk = await onDisk(e.env, thing);
    expect(disk.versions[disk.booted]).toBe(RELEASE);
  }, 120_000);
});
