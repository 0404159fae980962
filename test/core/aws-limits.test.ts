import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  checkIotField,
  checkIotInput,
  compileIotPattern,
  decimalsOf,
  IOT_LIMITS,
  type IotOperation,
  iotFieldRefinement,
  iotLimitsOf,
} from "../../core/aws-limits.ts";

const kinds = (op: IotOperation, input: Record<string, unknown>) =>
  checkIotInput(op, input).map((v) => [v.path, v.kind, v.limit]);

describe("the AWS IoT limits table", () => {
  it("compiles every pattern it holds (Java classes translated, whole-value match)", () => {
    for (const op of Object.keys(IOT_LIMITS) as IotOperation[]) {
      for (const row of iotLimitsOf(op)) {
        const pattern = row.pattern;
        if (pattern !== undefined) {
          expect(() => compileIotPattern(pattern), `${op} ${row.path}`).not.toThrow();
        }
      }
    }
    expect(compileIotPattern("[\\p{Upper}\\p{Digit}_]+").test("KEEL_ROLLOUT_ABORTED")).toBe(true);
    expect(compileIotPattern("[\\p{Upper}\\p{Digit}_]+").test("Keel")).toBe(false);
    expect(compileIotPattern("[a-zA-Z0-9_-]+").test("ok-id but-space")).toBe(false);
    expect(compileIotPattern("[a-zA-Z0-9_-]+|^\\$next").test("$next")).toBe(true);
    expect(compileIotPattern("[\\p{Graph}\\x20]*").test("a group, described")).toBe(true);
    expect(compileIotPattern("[\\p{Graph}\\x20]*").test("tab\there")).toBe(false);
  });

  it("accepts what Keel sends", () => {
    expect(
      checkIotInput("iot:CreateJob", {
        jobId: "keel-r1-w0",
        targets: ["arn:aws:iot:eu-west-1:000000000000:thinggroup/edge-b00"],
        document: JSON.stringify({ operation: "keel.install", version: "1.2.3" }),
        description: "Keel rollout r1: 1.2.3, wave 1 of 3",
        targetSelection: "SNAPSHOT",
        abortConfig: {
          criteriaList: [
            {
              failureType: "ALL",
              action: "CANCEL",
              thresholdPercentage: 10.25,
              minNumberOfExecutedThings: 1,
            },
          ],
        },
        jobExecutionsRolloutConfig: {
          exponentialRate: {
            baseRatePerMinute: 10,
            incrementFactor: 1.5,
            rateIncreaseCriteria: { numberOfSucceededThings: 5 },
          },
        },
        timeoutConfig: { inProgressTimeoutInMinutes: 60 },
      }),
    ).toEqual([]);
  });

  it("names each kind of violation with its concrete path and limit", () => {
    expect(kinds("iot:CancelJob", { jobId: "j", comment: "two\nlines" })).toEqual([
      ["comment", "pattern", "pattern=[^\\p{C}]+"],
    ]);
    expect(kinds("iot:CancelJob", { jobId: "x".repeat(65) })).toEqual([["jobId", "length", "max=64"]]);
    expect(kinds("iot:CancelJob", { jobId: "" })).toEqual([
      ["jobId", "length", "min=1"],
      ["jobId", "pattern", "pattern=[a-zA-Z0-9_-]+"],
    ]);
    expect(kinds("iot:CancelJob", {})).toEqual([["jobId", "required", "required"]]);
    expect(kinds("iot:CancelJob", { jobId: 7 })).toEqual([["jobId", "type", "type=string"]]);
    expect(
      kinds("iot:CreateJob", {
        jobId: "j",
        targets: ["t"],
        targetSelection: "SOMETIMES",
        abortConfig: {
          criteriaList: [
            {
              failureType: "ALL",
              action: "CANCEL",
              thresholdPercentage: 10.999,
              minNumberOfExecutedThings: 0,
            },
          ],
        },
        timeoutConfig: { inProgressTimeoutInMinutes: 10081 },
      }),
    ).toEqual([
      ["targetSelection", "enum", "enum=CONTINUOUS|SNAPSHOT"],
      ["abortConfig.criteriaList[0].thresholdPercentage", "decimals", "decimals<=2"],
      ["abortConfig.criteriaList[0].minNumberOfExecutedThings", "range", "min=1"],
      ["timeoutConfig.inProgressTimeoutInMinutes", "range", "max=10080"],
    ]);
    expect(kinds("iot:CreateJob", { jobId: "j", targets: [] })).toEqual([["targets", "size", "min=1"]]);
    expect(kinds("iot:CreateJob", { jobId: "j", targets: ["t"], document: "é".repeat(16385) })).toEqual([
      ["document", "bytes", "utf8<=32768"],
    ]);
  });

  it("checks map keys and values (statusDetails: 10 pairs, key pattern, value length and pattern)", () => {
    const eleven = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, "v"]));
    expect(
      kinds("iot-jobs-data:UpdateJobExecution", {
        jobId: "j",
        thingName: "t",
        status: "FAILED",
        statusDetails: eleven,
      }),
    ).toEqual([["statusDetails", "size", "max=10"]]);
    expect(
      kinds("iot-jobs-data:UpdateJobExecution", {
        jobId: "j",
        thingName: "t",
        status: "FAILED",
        statusDetails: { "bad key": "v", long: "x".repeat(1025), ctl: "a\u0000b" },
      }),
    ).toEqual([
      ["statusDetails{bad key}", "pattern", "pattern=[a-zA-Z0-9:_-]+"],
      ["statusDetails.long", "length", "max=1024"],
      ["statusDetails.ctl", "pattern", "pattern=[^\\p{C}]+"],
    ]);
  });

  it("accepts a sentinel outside the range only where the table says so", () => {
    const base = { jobId: "j", thingName: "t", status: "IN_PROGRESS" };
    expect(kinds("iot-jobs-data:UpdateJobExecution", { ...base, stepTimeoutInMinutes: -1 })).toEqual([]);
    expect(kinds("iot-jobs-data:UpdateJobExecution", { ...base, stepTimeoutInMinutes: 0 })).toEqual([
      ["stepTimeoutInMinutes", "range", "min=1"],
    ]);
    expect(
      kinds("iot-jobs-data:StartNextPendingJobExecution", { thingName: "t", stepTimeoutInMinutes: -1 }),
    ).toEqual([["stepTimeoutInMinutes", "range", "min=1"]]);
  });

  it("counts decimals as printed, exponents included", () => {
    expect([
      decimalsOf(10),
      decimalsOf(10.9),
      decimalsOf(10.99),
      decimalsOf(1e-7),
      decimalsOf(1.5e-3),
    ]).toEqual([0, 1, 2, 7, 4]);
  });

  it("checks one member by its model path, and as a zod refinement", () => {
    expect(
      checkIotField("iot:CreateJob", "abortConfig.criteriaList[].thresholdPercentage", 12.345).map(
        (v) => v.path,
      ),
    ).toEqual(["abortConfig.criteriaList[].thresholdPercentage"]);
    const Reason = z.string().superRefine(iotFieldRefinement("iot:CancelJob", "comment"));
    expect(Reason.safeParse("fine").success).toBe(true);
    const bad = Reason.safeParse("line\nbreak");
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toBe(
      'AWS IoT iot:CancelJob refuses this: comment: "line\\nbreak" does not match (pattern=[^\\p{C}]+)',
    );
    expect(() => iotFieldRefinement("iot:CancelJob", "nope")).toThrow(RangeError);
  });
});
