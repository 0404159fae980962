/** The Lambda entry points infra bundles: each reads its environment once, at load, through one schema. */
import { afterEach, describe, expect, it, vi } from "vitest";

const BASE = {
  TABLE_NAME: "keel",
  BUCKET_NAME: "keel-releases",
  PRESIGN_ROLE_ARN: "arn:aws:iam::123456789012:role/presign",
  AWS_REGION: "eu-west-1",
  LOG_LEVEL: "silent",
};

afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});

function stub(env: Record<string, string | undefined>) {
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
}

describe("handler entry points", () => {
  it("load with the documented variables and export `handler`", async () => {
    stub(BASE);
    for (const name of ["register-release", "rollout-api", "advance-rollout"]) {
      const mod = (await import(`../../functions/${name}/handler.ts`)) as { handler: unknown };
      expect(typeof mod.handler).toBe("function");
    }
  });

  it("refuse to load without TABLE_NAME, naming it", async () => {
    stub({ ...BASE, TABLE_NAME: undefined });
    await expect(import("../../functions/register-release/handler.ts")).rejects.toThrow(/TABLE_NAME/);
  });

  it("refuse to load the rollout functions without PRESIGN_ROLE_ARN", async () => {
    stub({ ...BASE, PRESIGN_ROLE_ARN: undefined });
    await expect(import("../../functions/advance-rollout/handler.ts")).rejects.toThrow(
      /PRESIGN_ROLE_ARN is required/,
    );
    vi.resetModules();
    await expect(import("../../functions/rollout-api/handler.ts")).rejects.toThrow(
      /PRESIGN_ROLE_ARN is required/,
    );
  });

  it("refuse a malformed local endpoint", async () => {
    stub({ ...BASE, S3_ENDPOINT: "not a url" });
    await expect(import("../../functions/register-release/handler.ts")).rejects.toThrow(/S3_ENDPOINT/);
  });

  it("the rollout API answers a malformed Function URL event with a 400, not a crash", async () => {
    stub(BASE);
    const { handler } = (await import("../../functions/rollout-api/handler.ts")) as {
      handler: (e: unknown) => Promise<{ statusCode: number; body: string }>;
    };
    const res = await handler({ rawPath: "/rollouts" });
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body).issues[0].path).toBe("requestContext");
  });
});
