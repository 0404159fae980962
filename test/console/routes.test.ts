/**
 * The console proxy's allow-list on its own (no servers): which browser requests become which API calls,
 * and that each kind of bad request is refused with a named reason before anything is sent.
 */
import { describe, expect, it } from "vitest";
import { ConsoleRequestError } from "../../cli/console/errors.ts";
import { checkRequest } from "../../cli/console/routes.ts";
import { SchemaError } from "../../core/errors.ts";

const q = (s = "") => new URLSearchParams(s);
const ID = "r20261129051250-e56e4b";

function refusal(fn: () => unknown): { name: string; status?: number; message: string } {
  try {
    fn();
  } catch (err) {
    const e = err as Error;
    return {
      name: e.name,
      message: e.message,
      ...(err instanceof ConsoleRequestError ? { status: err.status } : {}),
    };
  }
  throw new Error("expected a refusal");
}

describe("checkRequest", () => {
  it("maps allowed requests to API calls, paging parameters passed on", () => {
    expect(checkRequest("GET", "/rollouts", q("limit=20&cursor=abc="), undefined).path).toBe(
      "/rollouts?cursor=abc%3D&limit=20",
    );
    expect(checkRequest("GET", `/rollouts/${ID}`, q(), undefined).path).toBe(`/rollouts/${ID}`);
    const pause = checkRequest("POST", `/rollouts/${ID}/pause`, q(), {});
    expect(pause).toMatchObject({ method: "POST", path: `/rollouts/${ID}/pause`, body: {} });
    expect(checkRequest("POST", `/rollouts/${ID}/abort`, q(), { reason: "bad canary" }).body).toEqual({
      reason: "bad canary",
    });
    expect(checkRequest("GET", "/fleets/demo", q(), undefined).path).toBe("/fleets/demo");
    expect(checkRequest("GET", "/releases", q(), undefined).path).toBe("/releases");
  });

  it("refuses each kind of bad request, naming what is wrong", () => {
    expect(refusal(() => checkRequest("POST", "/fleets/demo/things", q(), { thingName: "x" }))).toMatchObject(
      {
        name: "ConsoleRequestError",
        status: 404,
      },
    );
    expect(refusal(() => checkRequest("DELETE", `/rollouts/${ID}`, q(), undefined))).toMatchObject({
      status: 405,
      message: expect.stringContaining("allowed: GET"),
    });
    expect(refusal(() => checkRequest("GET", "/rollouts/a%2Fb", q(), undefined)).message).toMatch(
      /id in the path/,
    );
    expect(refusal(() => checkRequest("GET", "/rollouts/%E0%A4%A", q(), undefined))).toMatchObject({
      status: 400,
      message: expect.stringContaining("malformed path"),
    });
    expect(refusal(() => checkRequest("GET", "/fleets/bad.name", q(), undefined)).message).toMatch(
      /fleet in the path/,
    );
    expect(refusal(() => checkRequest("GET", "/rollouts", q("limit=0"), undefined)).message).toMatch(/limit/);
    expect(refusal(() => checkRequest("GET", "/rollouts", q("cursor=a b"), undefined)).message).toMatch(
      /cursor/,
    );
    expect(refusal(() => checkRequest("GET", "/releases", q("x=1"), undefined)).name).toBe("SchemaError");
    expect(refusal(() => checkRequest("GET", "/releases", q(), { a: 1 }))).toMatchObject({ status: 400 });
    expect(refusal(() => checkRequest("POST", `/rollouts/${ID}/pause`, q(), { reason: "" })).message).toMatch(
      /reason/,
    );
    const bad = refusal(() =>
      checkRequest("POST", "/rollouts", q(), {
        release: "1.1.0",
        fleets: ["demo"],
        waves: [{ percent: 50 }],
      }),
    );
    expect(bad.name).toBe("SchemaError");
    expect(bad.message).toMatch(/waves\[0\].*last wave must be \{percent: 100\}/);
  });

  it("a SchemaError lists every issue", () => {
    try {
      checkRequest("POST", "/rollouts", q(), { release: "x", waves: [] });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SchemaError);
      expect((err as SchemaError).issues.map((i) => i.path)).toEqual(
        expect.arrayContaining(["release", "waves"]),
      );
    }
  });
});
