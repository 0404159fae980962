/**
 * cdk-nag AwsSolutionsChecks over the whole app, as `cdk synth` runs it: no finding is left
 * unacknowledged, every acknowledgement gives its reason, and none is stale (each one matches a finding
 * the pack really reports on that construct).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Stack, Validations } from "aws-cdk-lib";
import * as s3 from "aws-cdk-lib/aws-s3";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { type Synthesized, synthKeel } from "./synth.ts";

interface ValidationReport {
  pluginReports: Array<{ pluginName: string; violations: Array<{ ruleName: string; severity: string }> }>;
}

const readReport = (outdir: string) =>
  JSON.parse(readFileSync(join(outdir, "validation-report.json"), "utf8")) as ValidationReport;

interface Acknowledgement {
  path: string;
  id: string;
  reason: string;
}

function acknowledgements(root: IConstruct): Acknowledgement[] {
  return root.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) =>
        Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({
          path: c.node.path,
          id: id.replace(/^annotation::/i, ""),
          reason,
        })),
      ),
  );
}

/** Runs the pack with acknowledgements ignored, to see every finding it would report. */
function rawFindings(root: IConstruct): Array<{ ruleName: string; path: string }> {
  const key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY;
  const statics = Validations as unknown as { ACKNOWLEDGED_RULES_METADATA_KEY: string };
  statics.ACKNOWLEDGED_RULES_METADATA_KEY = "keel-test:no-acknowledgements";
  try {
    const report = new AwsSolutionsChecks().validateScope(root);
    return report.violations.flatMap((v) =>
      v.violatingResources.map((r) => ({ ruleName: v.ruleName, path: String(r.constructPath) })),
    );
  } finally {
    statics.ACKNOWLEDGED_RULES_METADATA_KEY = key;
  }
}

describe.each([
  ["default settings", {}],
  ["removalPolicy=destroy", { removalPolicy: "destroy", fleets: "edge,lab" }],
])("cdk-nag AwsSolutionsChecks with %s", (_name, context) => {
  let keel: Synthesized;
  beforeAll(() => {
    // GIVEN the app built as `cdk synth` builds it, WHEN it is synthesized (this throws on any error)
    keel = synthKeel(context);
  });

  it("reports no unacknowledged error or warning", () => {
    // THEN the policy-validation report the CLI prints is empty
    const report = readReport(keel.outdir);
    expect(report.pluginReports.flatMap((p) => p.violations)).toEqual([]);
  });

  it("gives every acknowledgement a reason", () => {
    const acks = acknowledgements(keel.app);
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) {
      expect(a.id).toMatch(/^AwsSolutions-/);
      expect(a.reason.trim().length, `${a.path} ${a.id}`).toBeGreaterThanOrEqual(40);
    }
  });

  it("acknowledges only findings the pack really reports on that construct", () => {
    const findings = rawFindings(keel.app);
    const stale = acknowledgements(keel.app).filter(
      (a) =>
        !findings.some((f) => f.ruleName === a.id && (f.path === a.path || f.path.startsWith(`${a.path}/`))),
    );
    expect(stale).toEqual([]);
  });
});

describe("the check itself", () => {
  it("reports the findings of a non-compliant bucket (so an empty report means something)", () => {
    // GIVEN a stack with a bucket that is neither access-logged nor TLS-only
    const outdir = mkdtempSync(join(tmpdir(), "keel-cdk-"));
    const app = new App({ outdir });
    new s3.Bucket(new Stack(app, "Bad"), "Bucket");
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    // WHEN it is synthesized THEN synthesis fails and the report names the rules
    expect(() => app.synth()).toThrow(/AwsSolutions-S1/);
    const rules = readReport(outdir).pluginReports.flatMap((p) => p.violations.map((v) => v.ruleName));
    expect(rules).toEqual(expect.arrayContaining(["AwsSolutions-S1", "AwsSolutions-S10"]));
  });
});
