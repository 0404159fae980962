/**
 * The `keel` CLI drops the AWS SDK's eight-line Node-version notice from stderr — and nothing else. Run as
 * a user runs it (a child process of bin/keel.mjs) with the SDK's own opt-out switched off, so the filter
 * is what keeps the notice away; a control run without the filter shows the notice is really emitted here.
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const KEEL = resolve(ROOT, "bin/keel.mjs");
/** Node majors below this get the notice from the SDK (@aws-sdk/core's emitWarningIfUnsupportedVersion). */
const SDK_WANTS_NODE = 22;
const major = Number(process.versions.node.split(".")[0]);

const env = {
  ...process.env,
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "false",
  AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
  AWS_SECRET_ACCESS_KEY: "secret",
  // A closed port: the command fails at once, after the SDK client was created.
  AWS_ENDPOINT_URL: "http://127.0.0.1:9",
  AWS_MAX_ATTEMPTS: "1",
};

function node(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stderr: r.stderr };
}

describe("the AWS SDK's Node-version notice", () => {
  it("is not printed by a keel command that creates an SDK client, whose own error still is", () => {
    // Act
    const r = node([KEEL, "rollout", "list", "--region", "us-east-1", "--stack", "NoSuchStack"]);

    // Assess
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("keel: cannot read stack NoSuchStack in us-east-1");
    expect(r.stderr).not.toContain("NodeVersionSupportWarning");
    expect(r.stderr).not.toContain("AWS SDK for JavaScript");
  });

  it("is emitted without the filter (control), and with it only that warning is dropped", () => {
    const script = (filtered: boolean) => `
      ${filtered ? 'const { filterSdkNodeVersionWarning } = await import("./bin/sdk-warning-filter.mjs"); filterSdkNodeVersionWarning();' : ""}
      const { emitWarningIfUnsupportedVersion } = await import("@aws-sdk/core/client");
      emitWarningIfUnsupportedVersion(process.version);
      process.emitWarning("an unrelated warning that must still show");
      process.emitWarning(new Error("NodeVersionSupportWarning: something else the SDK may say one day"));
    `;

    // Act
    const control = node(["--input-type=module", "-e", script(false)]);
    const filtered = node(["--input-type=module", "-e", script(true)]);

    // Assess
    expect(control.stderr.includes("NodeVersionSupportWarning: The AWS SDK for JavaScript (v3)")).toBe(
      major < SDK_WANTS_NODE,
    );
    expect(filtered.stderr).not.toContain("The AWS SDK for JavaScript (v3)");
    expect(filtered.stderr).toContain("an unrelated warning that must still show");
    expect(filtered.stderr).toContain("something else the SDK may say one day");
  });
});
